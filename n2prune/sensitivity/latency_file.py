"""The per-cell latency model kept beside ``sensitivity.csv`` (``sensitivity.latency.json``), so
that a resumed analysis reuses it instead of timing every cell's compacted networks again.

The file names what it belongs to: the CSV's first line (the weights' digest, the grid, the
cells and how each is pruned, the evaluation), the widths measured and the clock (``default``:
the CPU clock of ``default_timer``; else the timer's name). A file that differs in any of them
is measured anew and rewritten (atomically), never reused.

    {"analysis": "# n2prune-sensitivity net=3f2a... grid=...", "widths": [0.25, 0.5, 0.75, 0.9],
     "clock": "default", "dense": 0.00121, "saved": {"conv1": [[0, 0.25, ...], [0, 1.2e-05, ...]]}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from n2prune.atomic import atomic_write_text

SUFFIX = ".latency.json"
Saved = Dict[str, Tuple[np.ndarray, np.ndarray]]


def latency_path(csv: Path) -> Path:
    """``sensitivity.csv`` -> ``sensitivity.latency.json`` (beside it)."""
    return csv.with_name(csv.stem + SUFFIX)


def clock_name(timer: Any) -> str:
    """How the file names a timer: ``default`` for None, else its name."""
    if timer is None:
        return "default"
    return str(getattr(timer, "__qualname__", None) or type(timer).__name__)


class LatencyFile:
    """The latency model of the analysis written to ``csv``, measured at ``widths`` by
    ``clock``."""

    def __init__(self, csv: Path, widths: Sequence[float], clock: str):
        self.csv, self.path = Path(csv), latency_path(Path(csv))
        self.key = {"widths": [float(w) for w in widths], "clock": clock}

    def _analysis(self) -> Optional[str]:
        if not self.csv.exists():
            return None
        return self.csv.read_text(encoding="utf-8").partition("\n")[0]

    def load(self, cells: Sequence[str]) -> Optional[Tuple[float, Saved]]:
        """(dense seconds, each cell's (sparsities, seconds saved)) when the file holds the
        model of this analysis, widths and clock for every cell of ``cells``; else None."""
        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None   # unreadable: measured anew and rewritten
        analysis = self._analysis()
        if not isinstance(data, dict) or analysis is None or data.get("analysis") != analysis \
                or any(data.get(k) != v for k, v in self.key.items()) \
                or not all(cell in data.get("saved", {}) for cell in cells):
            return None
        saved = {cell: (np.array(data["saved"][cell][0], dtype=np.float64),
                        np.array(data["saved"][cell][1], dtype=np.float64)) for cell in cells}
        return float(data["dense"]), saved

    def save(self, dense: float, saved: Saved) -> None:
        """Write the model (atomically); nothing when the CSV is gone."""
        analysis = self._analysis()
        if analysis is None:
            return
        data = {"analysis": analysis, **self.key, "dense": float(dense),
                "saved": {cell: [x.tolist(), y.tolist()] for cell, (x, y) in saved.items()}}
        atomic_write_text(self.path, json.dumps(data, indent=1) + "\n")
