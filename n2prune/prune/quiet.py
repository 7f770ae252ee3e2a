"""The Pruner's shortcut for the steps where no schedule is due (nearly all of them).

``PruneCell.update`` on such a step only counts: for N2D2's staircase (``Linear``),
``counter += increment`` while it stays under the period, and ``position += batch_size``.
``QuietSteps.step`` does exactly that for every cell at once when it can tell that no cell's
Gradual step is due, and otherwise declines, so that every ``update`` runs: position-based
schedules, rewind weights still to save, a first step (which sets the increment), a batch size
``update`` would refuse, a PruneCell subclass with its own ``update``, counters off the CPU.

Between two optimiser steps a learning step's Python work runs with cold caches, where each
tensor operation costs microseconds: the counters are therefore read and written through NumPy
views of the 0-d CPU buffers, kept per cell and renewed whenever a cell holds other buffer
tensors (a ``load_state_dict`` writes into the same tensors; ``.to()`` replaces them). The
values are those ``update`` writes (tests/test_pruner_quiet.py).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

from n2prune.prune.options import PRUNE_MODES
from n2prune.prune.prunecell import PruneCell

COUNTERS = ("counter", "increment", "position")
_Views = Tuple[Tuple[torch.Tensor, ...], Tuple[np.ndarray, ...]]


def _views(buffers: Dict[str, Optional[torch.Tensor]]) -> Optional[_Views]:
    """NumPy views of a cell's three counters (None when one is not a 0-d CPU int64)."""
    tensors = tuple(buffers.get(name) for name in COUNTERS)
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu" \
                or tensor.dtype != torch.int64 or tensor.dim() != 0 or tensor.requires_grad:
            return None
    return tensors, tuple(tensor.numpy() for tensor in tensors)


class QuietSteps:
    """``step(cells, batch_size)``: count a step where no cell's schedule is due, as every
    cell's ``update`` would, and return True; or change nothing and return False."""

    def __init__(self) -> None:
        self._views: Dict[int, _Views] = {}

    def counts(self, cells: Iterable[PruneCell], batch_size: int
               ) -> Optional[List[Tuple[np.ndarray, int, np.ndarray, int]]]:
        """(counter view, new counter, position view, new position) of each scheduled cell
        when no schedule is due at this step; None when one is, or when a cell is not one
        this shortcut knows."""
        if type(batch_size) is not int or batch_size <= 0:
            return None  # update checks it (and names what is wrong)
        writes = []
        for cell in cells:
            if type(cell).update is not PruneCell.update:
                return None
            if not PRUNE_MODES.get(cell.prune_mode).scheduled:
                continue   # update counts nothing
            buffers = cell._buffers  # nn.Module's attribute fallback costs more than this
            if not cell.schedule_rule.staircase or \
                    (cell.rewind is not None and buffers["rewind_weight"] is None):
                return None  # a position-based schedule, or rewind weights still to save
            kept = self._views.get(id(cell))
            if kept is None or kept[0][0] is not buffers["counter"] or \
                    kept[0][1] is not buffers["increment"] or \
                    kept[0][2] is not buffers["position"]:
                kept = _views(buffers)
                if kept is None:
                    return None
                self._views[id(cell)] = kept
            counter, increment, position = kept[1]
            step = int(increment)
            count = int(counter) + step
            if step == 0 or count >= cell.period:
                return None  # the first update sets the increment; a step is due
            writes.append((counter, count, position, int(position) + batch_size))
        return writes

    def step(self, cells: Iterable[PruneCell], batch_size: int) -> bool:
        writes = self.counts(cells, batch_size)
        if writes is None:
            return False
        for counter, count, position, stimuli in writes:
            counter[()] = count
            position[()] = stimuli
        return True
