"""Reading configuration files safely: regular files only, with a size limit.

``/dev/zero``, a FIFO or a terminal given as an INI file or template would otherwise block or
fill memory; a file larger than the limit is refused before it is read. Errors are
ConfigErrors naming the file.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import stat
from typing import Iterator, List, Optional, Tuple

from n2prune.errors import ConfigError

# The largest stock N2D2 INI file is about 40 kB and a template about 5 kB: 16 MiB (400 times
# more) keeps a generated file possible while a stray multi-gigabyte file is refused at once.
MAX_INI_BYTES = 16 * 2 ** 20
MAX_TEMPLATE_BYTES = 16 * 2 ** 20

# (path, SHA-256 of the bytes read) of every file read inside recording_reads()
_READS: contextvars.ContextVar[Optional[List[Tuple[str, str]]]] = contextvars.ContextVar(
    "n2prune_ini_reads", default=None)


@contextlib.contextmanager
def recording_reads() -> Iterator[List[Tuple[str, str]]]:
    """Within the block, each file :func:`read_text_file` reads (INI, templates, includes) is
    appended as ``(path, sha256 of its bytes)`` to the list yielded: what defines a network
    (``n2prune.train.identity`` compares it when a run resumes)."""
    reads: List[Tuple[str, str]] = []
    token = _READS.set(reads)
    try:
        yield reads
    finally:
        _READS.reset(token)


def read_text_file(path: str, what: str, limit: int) -> str:
    """The text of ``path`` (UTF-8, undecodable bytes kept as surrogates).

    Raises ConfigError "could not open <what>" when ``path`` is missing, unreadable, not a
    regular file, or larger than ``limit`` bytes.
    """
    try:
        # O_NONBLOCK: opening a FIFO without a writer must not wait for one.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise _error(what, error.strerror, path) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise _error(what, f"not a regular file ({_kind(info.st_mode)})", path)
        if info.st_size > limit:
            raise _error(what, f"{info.st_size} bytes is more than the limit of {limit} "
                               "bytes", path)
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        raise _error(what, error.strerror, path) from None
    finally:
        os.close(descriptor)
    if len(data) > limit:  # the file grew while we read it
        raise _error(what, f"more than the limit of {limit} bytes", path)
    reads = _READS.get()
    if reads is not None:
        reads.append((str(path), hashlib.sha256(data).hexdigest()))
    return data.decode("utf-8", "surrogateescape")


def _error(what: str, detail: str, path: str) -> ConfigError:
    """"could not open <what>: <detail>"; ``detail`` is kept for callers that rephrase."""
    error = ConfigError(f"could not open {what}: {detail}", path=path)
    error.detail = detail
    return error


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"
