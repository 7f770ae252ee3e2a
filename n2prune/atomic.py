"""Atomic file writes: a temporary file beside the target, fsync, then a rename over it.

A reader (or a run killed mid-write) sees either the old file or the new one, never half.
The file gets the permissions the process's umask gives a new file (``mkstemp`` alone would
leave it readable by its owner only).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, List, Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(binary_file)`` on a temporary file, then move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def make_folder(path: PathLike, option: str = "--output") -> Path:
    """Create the output folder ``path`` (and its parents); where it cannot be, a ValueError
    in one line naming the ``option`` that gave it, not the system's errno text."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: a file is there; give a folder (new or existing) "
                         f"for the outputs")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{option} {path}: the folder cannot be created "
                         f"({exc.strerror or exc}); choose another {option}") from None
    return path


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, without changing it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly visible to other threads)
    os.umask(mask)
    return mask


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write(path, lambda out: out.write(text.encode()))


def remove_temporaries(folder: PathLike, depth: int = 1) -> List[Path]:
    """Remove the temporary files :func:`atomic_write` left in ``folder`` (and subfolders down
    to ``depth``) when a process was killed mid-write; returns them. Only safe while no other
    process writes there (``n2prune.train.runlock``)."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.tmp"):
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    if depth > 0:
        for sub in folder.iterdir():
            if sub.is_dir() and not sub.is_symlink():
                removed += remove_temporaries(sub, depth - 1)
    return removed
