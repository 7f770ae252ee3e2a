"""Who may write an output folder: the rules ``n2prune-compact`` shares with ``n2prune-train``.

One process at a time (:class:`n2prune.train.runlock.RunLock`, ``<folder>/.lock``). A folder
holding another command's results is refused whatever the options: ``n2prune-compact`` into a
training run would replace the run's ``weights/`` (which the run's own INI could then no longer
read), ``n2prune-train`` into a compacted network would mix its files with it. A folder holding
an earlier compaction is refused unless ``--overwrite``, which removes that compaction's files
(listed in its ``.compacted.json``) once the new ones are written, so no stale file stays.

>>> lock, earlier = claim_compact_output(Path("small"), overwrite=False)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List, Tuple

from n2prune.compact.writeback import MANIFEST
from n2prune.train.runlock import LOCK_NAME, RunLock

# What n2prune-train leaves in its --output (n2prune.train.report), checkpoint first.
TRAINING_FILES = ("checkpoint.pt", "model.pt", "report.json", "test_report.json", "log.csv")


def training_files(folder: Path) -> List[str]:
    """The files of a training run present in ``folder``."""
    return [name for name in TRAINING_FILES if (Path(folder) / name).exists()]


def refuse_compaction(folder: Path) -> None:
    """``n2prune-train``: refuse an ``--output`` holding a compacted network."""
    if (Path(folder) / MANIFEST).exists():
        raise ValueError(f"--output {folder} holds a compacted network written by "
                         f"n2prune-compact ({MANIFEST}); a run there would mix its weights/ "
                         f"with it: choose another --output")


def claim_compact_output(folder: Path, overwrite: bool) -> Tuple[RunLock, List[Path]]:
    """Lock ``folder`` for ``n2prune-compact`` and check what it holds; returns the lock and
    the files of an earlier compaction to remove once the new one is written (``--overwrite``).
    """
    folder = Path(folder)
    lock = RunLock(folder)
    try:
        return lock, _earlier_files(folder, overwrite)
    except BaseException:
        lock.release(failed=True)
        raise


def remove_stale(folder: Path, earlier: Iterable[Path], written: Iterable[Path]) -> List[Path]:
    """Remove the earlier compaction's files that the new one did not write again."""
    kept = {Path(p).resolve() for p in written}
    removed = []
    for path in earlier:
        if path.resolve() not in kept and path.is_file():
            path.unlink()
            removed.append(path)
    for path in sorted({p.parent for p in removed}, key=lambda p: -len(p.parts)):
        if path != folder and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed


def _earlier_files(folder: Path, overwrite: bool) -> List[Path]:
    training = training_files(folder)
    if training:
        raise ValueError(f"--output {folder} holds a training run ({', '.join(training)}): "
                         f"n2prune-compact would replace its weights/, which the run's own INI "
                         f"could then no longer read; choose another --output (for example "
                         f"{folder / 'compact'})")
    present = sorted(p.name for p in folder.iterdir() if p.name not in (LOCK_NAME, MANIFEST))
    manifest = folder / MANIFEST
    if not manifest.exists():
        if present:
            raise ValueError(f"--output {folder} holds files n2prune-compact did not write "
                             f"({_few(present)}); choose a new or empty --output")
        return []
    try:
        listed = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{manifest}: unreadable ({exc}); remove the folder or choose another "
                         f"--output") from None
    earlier = [folder / name for name in listed]
    if not overwrite:
        raise ValueError(f"--output {folder} already holds a compacted network "
                         f"({_few(present)}): --overwrite replaces it, or choose another "
                         f"--output")
    inside = folder.resolve()
    return [p for p in earlier if inside in p.resolve().parents]


def _few(names: List[str], most: int = 4) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > most else ""
    return ", ".join(names[:most]) + more
