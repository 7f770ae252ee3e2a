"""One run per output folder: an exclusive ``flock`` on ``<output>/.lock`` held by the run.

The kernel drops the lock when the process ends, however it ends (a SIGKILLed run leaves
no stale lock behind); a second run on the same folder is refused with one line naming
the process that holds it. Holding the lock also makes it safe to remove the temporary
files an earlier killed run left (:func:`n2prune.atomic.remove_temporaries`).

>>> with RunLock(Path("runs/lenet")):                                      # doctest: +SKIP
...     pass
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Optional

from n2prune.atomic import make_folder

LOCK_NAME = ".lock"


class RunLock:
    """Takes the lock on ``folder`` (created if needed) at construction; ``release()``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._created = not self.folder.exists()
        make_folder(self.folder)
        self.path = self.folder / LOCK_NAME
        self._file: Optional[IO[str]] = open(self.path, "a+")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: another process (or another Trainer) holds it
            self._file.seek(0)
            holder = self._file.read().strip() or "unknown"
            self._file.close()
            self._file = None
            raise ValueError(f"{self.folder} is in use by another run (process {holder}); "
                             f"wait for it to end, or choose another --output") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self, failed: bool = False) -> None:
        """Drop the lock; after a ``failed`` start, also remove a folder this lock created
        that holds nothing else."""
        if self._file is None:
            return
        if failed and self._created and [p.name for p in self.folder.iterdir()] == [LOCK_NAME]:
            self.path.unlink()
            self.folder.rmdir()
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.release(failed=kind is not None)
