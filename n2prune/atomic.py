"""Atomic file writes: a temporary file beside the target, fsync, then a rename over it.

A reader (or a run killed mid-write) sees either the old file or the new one, never half.
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
