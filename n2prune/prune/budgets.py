"""Layer budgets: each cell's sparsity decided from one global target
(``QWeight.PruningBudget=`` / ``PruneCell(budget=...)``).

- ``Uniform`` (the default): every cell prunes its own ``threshold``.
- ``OWL`` (Yin et al. 2024, outlier-weighed layerwise sparsity): the cells sharing the budget
  and the same target ``t`` are grouped in blocks (a transformer layer: the name up to its
  first index, :func:`block_of`), and each block gets a sparsity that falls with its outlier
  ratio: the fraction of its Wanda scores |W_ij|·‖X_j‖ above ``M`` times their mean. The
  ratios are scaled to [0, 2λ] and each block's sparsity is ``clip(c − D_l, t − λ, t + λ)``
  (within [0, 1]) with ``c`` chosen so that the sparsities, weighted by weight counts,
  average to ``t`` exactly (a bisection: the average is monotone in ``c``). It reads the
  calibration statistic ``input_sq_mean``, so a Pruner gathers it for every cell with the
  budget, whatever its criterion.
- ``Sensitivity``: the cells sharing the budget and the same target ``t`` get the per-cell
  sparsities a sensitivity analysis of their trained weights chooses to prune ``t`` of their
  weights overall at the least predicted loss (``n2prune.sensitivity``). The analysis needs a
  metric and data: ``n2prune-train`` runs it (on the ``-w`` weights, else the first epoch's,
  as ``--budget sensitivity``) and sets each cell's threshold; a Pruner on its own keeps the
  thresholds as they are (``analysed``: the member only marks the cells).

A member is a :class:`Budget`: ``allocate(cells, names, target, **params)`` returns the
sparsity of each cell; ``needs`` lists the statistics it reads and ``params`` its parameter
table.

>>> [round(s, 4) for s in owl_sparsities([0.0, 0.5, 1.0], [1, 1, 2], 0.5, 0.1)]
[0.6, 0.5333, 0.4333]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch

from n2prune.ini.params import Key, Range
from n2prune.ini.values import read_float
from n2prune.prune.criteria.activation import broadcast_inputs
from n2prune.prune.masks import out_view
from n2prune.prune.statistics import gathered
from n2prune.registry import Registry


@dataclass(frozen=True)
class Budget:
    """A layer budget: per-cell sparsities from the cells and their common target."""

    name: str
    allocate: Callable[..., List[float]]
    needs: Tuple[str, ...] = ()
    params: Tuple[Key, ...] = ()
    # the targets come from a sensitivity analysis the trainer runs (n2prune.train.budget)
    analysed: bool = False


BUDGETS: Registry = Registry("pruning budget")


def _uniform(cells: Sequence[Any], names: Sequence[str], target: float, **_: Any
             ) -> List[float]:
    return [target] * len(cells)


def _keep(cells: Sequence[Any], names: Sequence[str], target: float, **_: Any) -> List[float]:
    return [float(cell.threshold) for cell in cells]


def wanda_scores(cell: Any) -> torch.Tensor:
    """A cell's Wanda scores |W_ij|·‖X_j‖ (flat, float64), from its ``input_sq_mean``."""
    weight = out_view(cell.cell).first(cell.cell.weight).detach().to(torch.float64)
    norms = gathered(cell.stats, "input_sq_mean", "OWL").to(torch.float64).clamp_min(0).sqrt()
    return (weight.abs() * broadcast_inputs(norms, weight, "OWL")).reshape(-1)


def outlier_ratio(scores: torch.Tensor, m: float) -> float:
    """OWL's layerwise outlier distribution: the fraction of ``scores`` above ``m`` times
    their mean."""
    return float((scores > m * scores.mean()).to(torch.float64).mean())


def block_of(name: str) -> str:
    """The block a cell belongs to for OWL: its name up to the first index
    (``encoder.layer.3.attention.self.query`` -> ``encoder.layer.3``); a name without an index
    is a block of its own."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return name


def owl_sparsities(ratios: Sequence[float], sizes: Sequence[int], target: float,
                   spread: float) -> List[float]:
    """Per-cell sparsities from outlier ratios: lower for more outliers, within
    [target − spread, target + spread] ∩ [0, 1], averaging (weighted by ``sizes``) to
    ``target``."""
    low, high = max(0.0, target - spread), min(1.0, target + spread)
    top, bottom = max(ratios), min(ratios)
    scaled = [0.0 if top == bottom else (r - bottom) / (top - bottom) * 2 * spread
              for r in ratios]
    total = float(sum(sizes))

    def mean_at(shift: float) -> float:
        return sum(n * min(high, max(low, shift - d)) for n, d in zip(sizes, scaled)) / total

    lo, hi = low, high + 2 * spread
    for _ in range(200):  # bisection to the last bit: the weighted mean is monotone in shift
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if mean_at(mid) < target else (lo, mid)
    shift = hi if abs(mean_at(hi) - target) <= abs(mean_at(lo) - target) else lo
    return [min(high, max(low, shift - d)) for d in scaled]


def _owl(cells: Sequence[Any], names: Sequence[str], target: float, owl_m: float = 5.0,
         owl_lambda: float = 0.08, **_: Any) -> List[float]:
    """OWL over blocks (:func:`block_of`, as OWL ranks transformer layers): each block's
    outlier ratio is taken over all its cells' scores, and its cells share one sparsity."""
    blocks: Dict[str, List[int]] = {}
    for index, name in enumerate(names):
        blocks.setdefault(block_of(name), []).append(index)
    ratios, sizes = [], []
    for members in blocks.values():
        ratios.append(outlier_ratio(torch.cat([wanda_scores(cells[i]) for i in members]),
                                    owl_m))
        sizes.append(sum(int(cells[i].mask.numel()) for i in members))
    chosen = [0.0] * len(cells)
    for members, value in zip(blocks.values(), owl_sparsities(ratios, sizes, target,
                                                                owl_lambda)):
        for i in members:
            chosen[i] = value
    return chosen


OWL_PARAMS = (
    Key("OWLM", "owl_m", read_float, 5.0, "OWL: a score above M times its layer's mean is an "
        "outlier", Range(0.0, math.inf, low_open=True)),
    Key("OWLLambda", "owl_lambda", read_float, 0.08, "OWL: largest change of a layer's "
        "sparsity from the target", Range(0.0, 1.0)),
)

for _member in (Budget("Uniform", _uniform),
                Budget("OWL", _owl, needs=("input_sq_mean",), params=OWL_PARAMS),
                Budget("Sensitivity", _keep, analysed=True)):
    BUDGETS.register(_member.name)(_member)


def allocate(cells: Dict[str, Any]) -> Dict[str, float]:
    """Per-cell targets for every cell whose budget is not ``Uniform``: cells sharing a budget
    and a target (their ``budget_target``, the ``threshold`` they were created with) are
    allocated together. Returns ``{name: sparsity}`` for the cells it set."""
    teams: Dict[Tuple[str, float], List[str]] = {}
    for name, cell in cells.items():
        if cell.budget != "Uniform":
            teams.setdefault((cell.budget, cell.budget_target), []).append(name)
    chosen: Dict[str, float] = {}
    for (budget, target), names in teams.items():
        member = BUDGETS.get(budget)
        team = [cells[name] for name in names]
        params = team[0].params.get("budget", {})
        for name, value in zip(names, member.allocate(team, names, target, **params)):
            chosen[name] = float(value)
    return chosen
