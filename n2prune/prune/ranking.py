"""Ranking cells: scopes as registry members carrying their behaviour, and the Global ranking.

A scope (``QWeight.PruningScope=`` / ``PruneCell(scope=...)``) is a :class:`Scope`:
``rank(cells)`` sets the masks of the cells sharing it at their current thresholds, and
``shared`` says whether it ranks them together (a Pruner then calls it once for all of them
after their schedules move) or each on its own. ``Layer`` (N2D2's) refills each cell;
``Global`` is :func:`prune_global`, one ranking of every cell's group scores
(:func:`n2prune.prune.scope.global_keep`). A scope registered later works from Python and INI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence,
                    Tuple)

import torch

from n2prune.prune.criteria.combined import (combine_keeps, is_combined, split_criteria,
                                             waiting)
from n2prune.prune.scope import global_keep, pruned_first
from n2prune.registry import Registry


@dataclass(frozen=True)
class Scope:
    """A scope: ``rank(cells)`` sets the masks of cells sharing it at their current
    thresholds; ``shared`` says whether it ranks them together (then a Pruner calls it once
    for all of them after their schedules move) or each on its own (each cell refills itself
    when its threshold moves)."""

    name: str
    rank: Callable[[Sequence[Any]], None]
    shared: bool
    # what the scope reads from the model before ranking a team: bind(model, {layer name:
    # cell}, example) (Coupled: the channel groups traced on example); None: nothing
    bind: Optional[Callable[[Any, Dict[str, Any], Any], None]] = None
    # whether each cell of a team reaches its own current threshold (Coupled: each unit's
    # groups), so a missed target is judged cell by cell (else over the team, as Global)
    per_cell: bool = False
    # what a saved state_dict must agree on, checked before a PruneCell copies it:
    # check_load(cell, state_dict, prefix, metadata) raises a ValueError when the scope's
    # binding contradicts what was saved (Coupled: which cells are coupled); None: nothing
    check_load: Optional[Callable[[Any, Mapping[str, Any], str, Mapping[str, Any]], None]] = None


def _each_alone(cells: Sequence[Any]) -> None:
    for cell in cells:
        cell.refill()


SCOPES: Registry = Registry("pruning scope")


def scope_of(cell: Any) -> Scope:
    """The Scope member of a PruneCell (``Layer`` for cells without one)."""
    return SCOPES.get(getattr(cell, "scope", "Layer"))


def check_saved(cell: Any, state_dict: Mapping[str, Any], prefix: str,
                metadata: Mapping[str, Any]) -> None:
    """Let every scope with a ``check_load`` refuse the state ``cell`` is about to load (each
    scope checks every cell: a cell of another scope must not take its saved entries)."""
    for name in SCOPES.names():
        check = SCOPES.get(name).check_load
        if check is not None:
            check(cell, state_dict, prefix, metadata)


def teams(cells: Iterable[Any]) -> Dict[str, List[Any]]:
    """The cells of shared scopes, by scope name (each team is ranked together)."""
    out: Dict[str, List[Any]] = {}
    for cell in cells:
        if scope_of(cell).shared:
            out.setdefault(cell.scope, []).append(cell)
    return out


def rank_by_scope(cells: Iterable[Any]) -> None:
    """Set every cell's masks at its current threshold, as its scope ranks: the cells of
    unshared scopes first, then each shared team together."""
    by_scope: Dict[str, List[Any]] = {}
    for cell in cells:
        by_scope.setdefault(getattr(cell, "scope", "Layer"), []).append(cell)
    for name in sorted(by_scope, key=lambda n: SCOPES.get(n).shared):
        SCOPES.get(name).rank(by_scope[name])


def prune_global(cells: Sequence, target: Optional[float] = None) -> None:
    """Rank the group scores of ``cells`` (PruneCells) together and set their masks.

    ``target`` defaults to the cells' common current threshold (an error when they differ);
    each cell's ``min_keep`` is its floor. Cells with several inputs rank each block.
    """
    cells = list(cells)
    if not cells or any(waiting(q) for q in cells):
        return  # a criterion still lacks its statistics: a Pruner ranks once they arrive
    if target is None:
        values = {float(q.current_threshold) for q in cells}
        if len(values) != 1:
            raise ValueError(f"prune_global: the cells' current thresholds differ "
                             f"({', '.join(f'{v:g}' for v in sorted(values))}); give target")
        target = values.pop()
    if any(is_combined(q.prune_filler) for q in cells):  # each criterion ranked, then combined
        prune_global_combined(cells, target)
        return
    with _one_thread():   # memory-bound passes over every weight: faster on one thread
        apply_global(cells, rank_cells(cells, target))


class _one_thread:
    """torch's intra-op threads set to 1 for a ``with`` block, then restored: the criterion's
    elementwise passes over 25M weights run ~3x faster on one thread than on two sharing
    two cores (and far faster when other processes compete for them); the masks are the
    same."""

    def __enter__(self) -> None:
        self._threads = torch.get_num_threads()
        if self._threads != 1:
            torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        if self._threads != 1:
            torch.set_num_threads(self._threads)


def rank_cells(cells: Sequence, target: float, criterion: Optional[str] = None
               ) -> List[torch.Tensor]:
    """Group keep-masks of every input block of ``cells`` (in order) from one ranking of
    their group scores by ``criterion`` (default: each cell's filler) at ``target``: each
    cell's ``min_keep`` its floor, its pruned groups first when it is ``sticky``."""
    scores, dead, floors = [], [], []
    for q in cells:
        parts = q.group_scores(criterion)
        scores += parts
        dead += q.dead_groups() if q.sticky else [None] * len(parts)
        floors += [q.min_keep] * len(parts)
    return global_keep(pruned_first(scores, dead, target), target, floors)


def apply_global(cells: Sequence, keeps: Sequence[torch.Tensor]) -> None:
    """Hand each cell its blocks' group keep-masks (``keeps`` in the order of rank_cells)."""
    start = 0
    for q in cells:
        count = len(q.input_parts())
        q.apply_keep(list(keeps[start:start + count]), groups=True)
        start += count




def _common_criteria(cells: Sequence[Any]) -> Tuple[List[str], str]:
    """The criteria and combine mode every Global cell shares; ValueError naming them when
    they differ (each criterion is ranked over all the cells, so each cell must score with
    every one)."""
    kinds = {(frozenset(split_criteria(q.prune_filler)), getattr(q, "combine", "Any"))
             for q in cells}
    if len(kinds) != 1:
        found = ", ".join(sorted({f"{q.prune_filler} ({getattr(q, 'combine', 'Any')})"
                                  for q in cells}))
        raise ValueError(f"scope='Global' with combined criteria: the cells ranked together "
                         f"use {found}; each criterion is ranked over every Global cell, so "
                         f"all of them need the same prune_filler and combine")
    how = cells[0].combine
    if how == "Any" and any(q.min_keep > 0 for q in cells):
        raise ValueError(f"scope='Global' with prune_filler={cells[0].prune_filler!r}, "
                         f"combine='Any': a min_keep floor cannot be guaranteed; use "
                         f"combine='All' or min_keep=0")
    return split_criteria(cells[0].prune_filler), how


def prune_global_combined(cells: Sequence[Any], target: float) -> None:
    """Global scope for combined fillers: each criterion ranks the group scores of all
    ``cells`` together at ``target`` (floors and pruned-first as
    :func:`prune_global`), then each cell's keep-masks are combined."""
    names, how = _common_criteria(cells)
    each = [rank_cells(cells, target, name) for name in names]
    apply_global(cells, [combine_keeps(list(k), how) for k in zip(*each)])


for _member in (Scope("Layer", _each_alone, shared=False),
                Scope("Global", prune_global, shared=True)):
    SCOPES.register(_member.name)(_member)
