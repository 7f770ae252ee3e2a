"""Pruning criteria: pure functions scoring weights (importance, larger = keep).

A criterion is registered in ``CRITERIA`` under its INI spelling with
``@register_criterion(name, needs=..., norm=..., level=..., params=...)`` on a function
``score(weight, stats, **params) -> Tensor``: same shape as ``weight`` for ``level="weight"``,
``[out_channels]`` for ``level="channel"``. ``stats`` maps statistic names (``"grad"``,
``"grad_sq"``, ...) to the tensors a Pruner gathered; ``needs`` lists the ones it reads.
``norm`` (``"L1"`` or ``"L2"``) turns member scores into a group score for structured patterns.
``params`` is the criterion's own parameter table (``Key`` with INI name, argument, default and
valid range): ``QWeight.<ini>=`` in INI, ``PruneCell(<arg>=...)`` in Python.

Every criterion name is a valid ``PruneCell(prune_filler=...)`` and ``QWeight.PruningFiller=``
value: the PruneCell ranks the scores (through its pattern and scope) and prunes exactly
``ceil(float32(t)·float32(N))`` of the lowest (ties: lower flat index pruned first).

>>> import torch
>>> @register_criterion("Doctest", norm="L2")
... def doctest_score(weight, stats):
...     return weight.abs()
>>> CRITERIA.get("Doctest").norm
'L2'
>>> _ = CRITERIA._members.pop("Doctest")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch

from n2prune.ini.params import Key
from n2prune.registry import Registry

Score = Callable[..., torch.Tensor]
NORMS = ("L1", "L2")
LEVELS = ("weight", "channel")


@dataclass(frozen=True)
class Criterion:
    """A registered criterion: its score function and what it declares."""

    name: str
    score: Score
    needs: Tuple[str, ...] = ()
    norm: str = "L1"
    level: str = "weight"
    params: Tuple[Key, ...] = ()
    group: str = "Layer"
    reconstruct: Optional[Callable[..., None]] = None
    patterns: Optional[Tuple[str, ...]] = None

    def __call__(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor],
                 **params) -> torch.Tensor:
        return self.score(weight, stats, **params)

    def missing(self, stats: Mapping[str, torch.Tensor]) -> Tuple[str, ...]:
        """The statistics this criterion needs that ``stats`` lacks."""
        return tuple(name for name in self.needs if name not in stats)


CRITERIA: Registry = Registry("pruning criterion")


def register_criterion(name: str, needs: Sequence[str] = (), norm: str = "L1",
                       level: str = "weight", params: Sequence[Key] = (),
                       group: str = "Layer", reconstruct: Optional[Callable[..., None]] = None,
                       patterns: Optional[Sequence[str]] = None) -> Callable:
    """Register ``score(weight, stats, **params)`` as the criterion ``name`` (decorator);
    returns the function unchanged. ``group``: the comparison group used when a PruneCell
    does not choose one (``"Row"``: each output row ranked on its own, where the pattern has
    rows). ``reconstruct(model, cells, runs)``: a one-shot criterion that also rewrites the
    weights (SparseGPT) once ``calibrate`` has its batches (``cells`` ``{name: PruneCell}``,
    ``runs`` callables each pushing one batch through the model); it sets the masks itself.
    ``patterns``: the pattern names it supports (None: all)."""
    if norm not in NORMS:
        raise ValueError(f"criterion {name!r}: norm={norm!r}; allowed: {', '.join(NORMS)}")
    if level not in LEVELS:
        raise ValueError(f"criterion {name!r}: level={level!r}; allowed: {', '.join(LEVELS)}")

    _check_collisions(name, params)

    def decorator(score: Score) -> Score:
        CRITERIA.register(name)(Criterion(
            name, score, tuple(needs), norm, level, tuple(params), group, reconstruct,
            None if patterns is None else tuple(patterns)))
        return score
    return decorator


def _check_collisions(name: str, params: Sequence[Key]) -> None:
    """A ValueError when a parameter has the INI name or argument of another criterion's
    parameter without being the same parameter (the PruneCell could not tell them apart)."""
    for other in CRITERIA.names():
        for theirs in CRITERIA.get(other).params:
            for mine in params:
                if (mine.ini == theirs.ini or mine.arg == theirs.arg) and mine != theirs:
                    raise ValueError(f"criterion {name!r}: parameter {mine.ini} / {mine.arg} "
                                     f"collides with criterion {other!r}'s {theirs.ini} / "
                                     f"{theirs.arg}; rename it, or share the same parameter "
                                     f"object")


def group_norm(scores: torch.Tensor, norm: str, dim: int = -1) -> torch.Tensor:
    """The group score of members along ``dim``: L1 = sum of |s|, L2 = sqrt(sum of s²)."""
    if norm == "L2":
        return scores.double().pow(2).sum(dim).sqrt()
    return scores.double().abs().sum(dim)


@register_criterion("Magnitude", norm="L1")
def magnitude(weight: torch.Tensor, stats: Dict[str, torch.Tensor]) -> torch.Tensor:
    """|w|: the smallest magnitudes are pruned first (groups: L1 norm)."""
    return weight.detach().abs()


@register_criterion("L1Norm", norm="L1")
def l1_norm(weight: torch.Tensor, stats: Dict[str, torch.Tensor]) -> torch.Tensor:
    """|w|, groups ranked by the L1 norm of their weights (Li et al. 2017's filter norm)."""
    return weight.detach().abs()


@register_criterion("L2Norm", norm="L2")
def l2_norm(weight: torch.Tensor, stats: Dict[str, torch.Tensor]) -> torch.Tensor:
    """|w|, groups ranked by the L2 norm of their weights."""
    return weight.detach().abs()


@register_criterion("LAMP", norm="L1")
def lamp(weight: torch.Tensor, stats: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Layer-adaptive magnitude (Lee et al. 2021): w_u² / Σ_{v ≥ u} w_v², the weights of the
    layer (input block) sorted by magnitude, over the unpruned weights (``stats["mask"]``,
    which a PruneCell passes). The largest weight of every layer scores 1, so a ``Global``
    ranking of LAMP scores adapts the sparsity per layer without emptying one. Equal
    magnitudes: the lower flat index scores lower (is pruned first)."""
    w = weight.detach().to(torch.float64)
    if "mask" in stats:
        w = w * stats["mask"].to(torch.float64)
    squares = w.reshape(-1).pow(2)
    order = torch.sort(squares, stable=True).indices
    ascending = squares[order]
    tail = ascending.flip(0).cumsum(0).flip(0)  # Σ of the squares at and above each one
    ratio = torch.where(tail > 0, ascending / tail.clamp_min(1e-300), torch.zeros_like(tail))
    scores = torch.empty_like(squares)
    scores[order] = ratio
    return scores.reshape(weight.shape)
