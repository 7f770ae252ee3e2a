"""Targets reached: a cell whose masks miss its current target by more than its pattern's
rounding is reported once, naming the layer, the target, what it reached and why.

A pattern prunes whole groups, so a cell may differ from its target by up to one group per
comparison group (a cell, or each output row with ``group="Row"``): that much is rounding.
More than that, or a cell emptied (or left whole) by a target strictly between 0 and 1,
means the pattern cannot express the target on this weight (``2:4`` along a single input
channel keeps everything; a 16×16 block on an 8×8 weight is all or nothing) and a user
asking for the target must hear it. Global-scope cells are judged together (their
own sparsities differ by design).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Tuple

from n2prune.prune.criteria.registry import CRITERIA
from n2prune.prune.ranking import scope_of
from n2prune.prune.sparsity import mask_counts


def slack(cell: Any) -> float:
    """The largest fraction by which the cell's masks may differ from its target through the
    pattern's rounding alone."""
    shape = cell.mask.shape
    weights = max(1, cell.mask.numel())
    group = cell.pattern_rule.group_size(shape)
    rows = shape[0] if getattr(cell, "group", "Layer") == "Row" else 1
    return group * rows / weights + 1e-6


def _counts(cell: Any):
    layer = cell.attached_cell
    return mask_counts(cell.mask, getattr(layer, "connection", None))


def missed(cells: Dict[str, Any]) -> List[Tuple[Any, float, str]]:
    """``(cell, target, message)`` for every cell (or Global team, named by its first cell)
    whose sparsity misses its current target by more than its pattern's rounding; nothing for
    cells that wait for statistics, N2D2's mask fillers (IterNonStruct stops on its δ grid, as
    N2D2 does) and combined criteria (a union or an intersection by design)."""
    messages = []
    teams: Dict[float, List[str]] = {}
    for name, cell in cells.items():
        if cell.prune_filler not in CRITERIA or cell.waiting:
            continue  # N2D2's fillers round as N2D2 does; combinations prune a union
        if scope_of(cell).shared and not scope_of(cell).per_cell:
            teams.setdefault(float(cell.current_threshold), []).append(name)
            continue
        target = float(cell.current_threshold)
        pruned, weights = _counts(cell)
        reached = pruned / weights if weights else 0.0
        extreme = (reached == 1.0 and target < 1.0) or (reached == 0.0 and target > 0.0)
        if weights and (abs(reached - target) > slack(cell) or extreme):
            messages.append((cell, target, _message(name, cell, target, reached)))
    for target, names in teams.items():
        counts = [_counts(cells[name]) for name in names]
        pruned, weights = sum(c[0] for c in counts), sum(c[1] for c in counts)
        group = max(slack(cells[name]) * max(1, c[1]) for name, c in zip(names, counts))
        if weights and abs(pruned / weights - target) > group / weights + 1e-6:
            messages.append((cells[names[0]], target,
                             f"{cells[names[0]].scope} cells {', '.join(names[:3])}"
                             f"{' ...' if len(names) > 3 else ''}: target {target:.4f}, reached "
                             f"{pruned / weights:.4f}: the cells' patterns and min_keep "
                             f"floors cannot reach it"))
    return messages


def _message(name: str, cell: Any, target: float, reached: float) -> str:
    shape = "x".join(str(d) for d in cell.mask.shape)
    pattern = str(cell.pattern_rule)
    why = (f"pattern {pattern} cannot prune this {shape} weight to {target:.4f}"
           if pattern != "Unstructured" else "its comparison groups round it so")
    return (f"{name or '<model>'} ({type(cell.cell).__name__} {shape}): target {target:.4f}, "
            f"reached {reached:.4f}: {why}")


def report(cells: Dict[str, Any]) -> List[str]:
    """Warn once per cell and target about every target missed (:func:`missed`); returns the
    messages warned now."""
    fresh = []
    for cell, target, message in missed(cells):
        seen = cell.__dict__.setdefault("_missed_reported", set())
        if target not in seen:
            seen.add(target)
            fresh.append(message)
            warnings.warn(message, TargetMissedWarning, stacklevel=3)
    return fresh


class TargetMissedWarning(UserWarning):
    """A cell's sparsity misses its target by more than its pattern's rounding."""
