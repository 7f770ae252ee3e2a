"""Comparison groups: which of a cell's group scores compete with each other
(``QWeight.PruningGroup=`` / ``PruneCell(group=...)``).

- ``Layer`` (N2D2's way): every group of the cell (input block) competes; exactly
  ``ceil(t·groups)`` of the lowest are pruned.
- ``Row``: each output row competes on its own, as Wanda does (Sun et al. 2023): every row
  of the group scores (an output channel for Unstructured, a row of blocks for ``KxL``) loses
  exactly ``ceil(t·groups per row)`` of its lowest. Patterns that have no rows of several
  groups (``Channel``, where a row is one group, and ``N:M``, which already prunes within
  each group of M) refuse it.

A member is a :class:`Comparison`: its ``select(groups, target)`` returns the bool keep-mask
of a cell's group scores (output rows first). Ties: the lower index is pruned first.

>>> import torch
>>> scores = torch.tensor([[1.0, 5.0, 3.0], [9.0, 8.0, 2.0]])
>>> COMPARISONS.get("Row").select(scores, 0.3).tolist()
[[False, True, True], [True, True, False]]
>>> COMPARISONS.get("Layer").select(scores, 0.3).tolist()
[[False, True, True], [True, True, False]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from n2prune.prune.fillers import zeros_target
from n2prune.prune.scope import layer_keep
from n2prune.registry import Registry

Select = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class Comparison:
    """A comparison group: ``select(group scores, target) -> bool keep-mask``; ``rows`` says
    whether it needs a pattern whose group scores have rows of several groups."""

    name: str
    select: Select
    rows: bool


COMPARISONS: Registry = Registry("pruning group")


def row_keep(groups: torch.Tensor, target: float) -> torch.Tensor:
    """Keep-mask pruning ``ceil(float32(t)·float32(width))`` lowest scores of every row of
    ``groups`` viewed as [rows, width] (ties: lower index first). NaN scores are an error."""
    lines = groups.detach().reshape(groups.shape[0], -1) if groups.dim() else groups.reshape(1, 1)
    count = zeros_target(target, lines.shape[1])
    keep = torch.ones(lines.shape, dtype=torch.bool, device=lines.device)
    if count:
        wide = lines.to(torch.float64)
        if bool(torch.isnan(wide).any()):
            raise ValueError("pruning scores contain NaN (check the weights and statistics)")
        order = torch.sort(wide, dim=1, stable=True).indices
        keep.scatter_(1, order[:, :count], False)
    return keep.reshape(groups.shape)


for _member in (Comparison("Layer", layer_keep, rows=False),
                Comparison("Row", row_keep, rows=True)):
    COMPARISONS.register(_member.name)(_member)

LAYER: Comparison = COMPARISONS.get("Layer")

