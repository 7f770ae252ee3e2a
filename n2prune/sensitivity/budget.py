"""Per-cell budgets from sensitivity curves: the sparsities that meet a global target at the
least predicted loss.

The predicted loss of a cell at sparsity s is the dense metric minus its curve, interpolated
linearly between the measured points (made non-decreasing in s: a point that happens to score
above a sparser one is noise, not a gain) and extrapolated along the last segment beyond the
grid; the loss of a budget is the sum over its cells (the cells' losses are measured one at a
time, so this is a first-order prediction). What a target counts is a ``TARGETS`` member
(``Sparsity``, ``Parameters``, ``MACs``, ``Latency``): per cell, what a sparsity removes, and
the total the target is a fraction of; a member that can measure a whole budget (``Latency``,
``n2prune.sensitivity.latency``) has the budget measured, and more asked of the cells while
the measurement falls short of the target. The allocation is exact on a grid of candidate
sparsities (step ``resolution``, within each cell's floor and ceiling): a knapsack over the
removed amount, counted in 1/``bins`` of the total and rounded down, so the target is always
met.

>>> budget = allocate(result, 0.98, "Sparsity", ceiling=0.995)   # doctest: +SKIP
>>> budget.sparsities                                           # doctest: +SKIP
{'conv1': 0.62, 'conv2': 0.93, 'fc1': 0.99, 'fc2': 0.9}
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Union

import numpy as np

from n2prune.registry import Registry
from n2prune.sensitivity.latency import (dense_latency, latency_fraction, latency_removed,
                                         prepare_latency)
from n2prune.sensitivity.records import Sensitivity

# Latency: how many times the budget is measured and raised before giving up (as many
# again to bisect back toward the target)
MEASURED_ROUNDS = 8


@dataclass(frozen=True)
class Target:
    """What a global target counts: ``removed(result, cell, sparsities)`` (amounts removed at
    each sparsity of the array) and ``total(result)`` (what the target is a fraction of)."""

    removed: Callable[[Sensitivity, str, np.ndarray], np.ndarray]
    total: Callable[[Sensitivity], float]
    what: str
    # the fraction a whole budget {cell: sparsity} achieves, measured (None: the sum)
    measured: Optional[Callable[[Sensitivity, Dict[str, float]], float]] = None
    # what must be measured on the network before allocating: prepare(result, net)
    prepare: Optional[Callable[[Sensitivity, object], None]] = None


TARGETS: Registry = Registry("budget target")


def _weights_removed(result: Sensitivity, cell: str, s: np.ndarray) -> np.ndarray:
    return s * result.weights[cell]


def _macs_removed(result: Sensitivity, cell: str, s: np.ndarray) -> np.ndarray:
    points = sorted(result.points[cell], key=lambda p: p.sparsity)
    if result.macs is None or any(p.macs_removed is None for p in points):
        raise ValueError("a MACs target needs the MACs column of sensitivity.csv: give the "
                         "analysis an input_shape (an INI network has one)")
    x = np.array([0.0] + [p.sparsity for p in points])
    y = np.array([0.0] + [float(p.macs_removed) for p in points])
    return _interpolate(x, y, s)


TARGETS.register("Sparsity")(Target(_weights_removed, lambda r: float(sum(r.weights.values())),
                                    "of the analysed cells' weights pruned"))
TARGETS.register("Parameters")(Target(_weights_removed, lambda r: float(r.parameters),
                                      "of the network's parameters removed"))
TARGETS.register("MACs")(Target(_macs_removed, lambda r: float(r.macs or 0),
                                "of the network's MACs removed (non-zero MACs, costs.macs)"))
TARGETS.register("Latency")(Target(latency_removed, dense_latency,
                                   "of the compacted network's measured latency saved",
                                   latency_fraction, prepare_latency))


def _interpolate(x: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Linear interpolation, extrapolated along the last segment beyond ``x[-1]``."""
    inside = np.interp(s, x, y)
    slope = (y[-1] - y[-2]) / (x[-1] - x[-2]) if len(x) > 1 else 0.0
    return np.where(s > x[-1], y[-1] + slope * (s - x[-1]), inside)


def predicted_loss(result: Sensitivity, cell: str, s: np.ndarray) -> np.ndarray:
    """Dense metric minus the cell's interpolated curve, non-decreasing in the sparsity."""
    x, metric = (np.array(v, dtype=np.float64) for v in result.curve(cell))
    loss = np.maximum.accumulate(np.maximum(result.dense - metric, 0.0))
    return np.maximum(_interpolate(x, loss, s), loss[-1] * (s > x[-1]))


@dataclass
class Budget:
    """Per-cell sparsities, the amount they remove (a fraction of the target's total), the
    predicted loss, and the target asked."""

    sparsities: Dict[str, float]
    achieved: float
    predicted_loss: float
    target: float
    kind: str

    def table(self, result: Sensitivity) -> List[str]:
        """One line per cell (weights, sparsity, predicted loss), then the totals."""
        lines = [f"{'cell':16} {'weights':>10} {'sparsity':>9} {'predicted loss':>15}"]
        for cell, s in self.sparsities.items():
            loss = float(predicted_loss(result, cell, np.array([s]))[0])
            lines.append(f"{cell:16} {result.weights[cell]:>10,} {100 * s:>8.2f}% "
                         f"{100 * loss:>14.2f}")
        lines.append(f"{'total':16} {sum(result.weights.values()):>10,} "
                     f"{100 * self.achieved:>8.2f}% {100 * self.predicted_loss:>14.2f}   "
                     f"({self.kind}: target {100 * self.target:.2f}% "
                     f"{TARGETS.get(self.kind).what})")
        return lines


Bound = Union[float, Mapping[str, float]]


def _bound(value: Bound, cell: str, default: float) -> float:
    if isinstance(value, Mapping):
        return float(value.get(cell, default))
    return float(value)


def allocate(result: Sensitivity, target: float, kind: str = "Sparsity", floor: Bound = 0.0,
             ceiling: Bound = 0.99, resolution: float = 0.0025, bins: int = 4000) -> Budget:
    """The per-cell sparsities removing at least ``target`` (a fraction of ``kind``'s total)
    at the least predicted loss, each cell within ``[floor, ceiling]`` (a number, or a dict
    by cell). Raises a ValueError when the ceilings cannot reach the target."""
    measure = TARGETS.get(kind)
    if not 0.0 < target < 1.0:
        raise ValueError(f"budget target must be a fraction strictly between 0 and 1, got "
                         f"{target}")
    cells = list(result.points)
    total = measure.total(result)
    need = int(np.ceil(target * bins - 1e-9))
    unit = total / bins
    options, costs, losses = [], [], []
    for cell in cells:
        low, high = _bound(floor, cell, 0.0), _bound(ceiling, cell, 0.99)
        if not 0.0 <= low <= high < 1.0:
            raise ValueError(f"budget for {cell!r}: floor {low} and ceiling {high} must satisfy "
                             f"0 <= floor <= ceiling < 1")
        s = np.unique(np.concatenate([np.arange(low, high, resolution), [low, high]]))
        options.append(s)
        costs.append(np.floor(measure.removed(result, cell, s) / unit + 1e-9).astype(np.int64))
        # among equal predicted losses, prefer the budget spreading sparsity most evenly
        losses.append(predicted_loss(result, cell, s) + 1e-7 * s * s)
    reachable = sum(int(c.max()) for c in costs)
    if reachable < need:
        raise ValueError(f"budget: the ceilings reach only {100 * reachable / bins:.2f}% "
                         f"({kind}), short of the target {100 * target:.2f}%: raise the "
                         f"ceiling or lower the target")
    problem = (cells, options, costs, losses)
    if measure.measured is not None:
        sparsities, achieved = _measured(result, measure, target, problem, need, bins)
    else:
        sparsities = _choose(*problem, need)
        achieved = sum(float(measure.removed(result, cell, np.array([s]))[0])
                       for cell, s in sparsities.items()) / total
    loss = sum(float(predicted_loss(result, cell, np.array([s]))[0])
               for cell, s in sparsities.items())
    _warn_extrapolated(result, sparsities)
    return Budget(sparsities, achieved, loss, target, kind)


def _choose(cells, options, costs, losses, need: int) -> Dict[str, float]:
    choice = _knapsack(costs, losses, need)
    return {cell: float(options[i][j]) for i, (cell, j) in enumerate(zip(cells, choice))}


def _measured(result: Sensitivity, measure: Target, target: float, problem, need: int,
              bins: int):
    """The budget measured whole: while it falls short of ``target``, the knapsack is asked
    for the shortfall more (at least 2, 4, 8, ... bins more); then, between the last request short of the target (or, met at
    once, the request less the excess) and the first meeting it, a bisection for the least
    request that meets it (a coarse step may overshoot the target). Returns (sparsities,
    measured fraction)."""
    reachable = sum(int(c.max()) for c in problem[2])
    short, met, rounds = need - 1, None, 0
    while met is None and rounds < MEASURED_ROUNDS:
        sparsities = _choose(*problem, need)
        achieved = float(measure.measured(result, sparsities))
        rounds += 1
        if achieved >= target:
            met = (need, sparsities, achieved)
        elif need >= reachable:
            break
        else:   # ask the shortfall more, and at least twice as much more each round: a
            # saving that interactions shrink (coupled streams) may gain a bin at a time
            step = max(int(np.ceil((target - achieved) * bins)), 2 ** rounds)
            short, need = need, min(reachable, need + step)
    if met is None:
        raise ValueError(f"budget: measured on the whole network, the budget saves "
                         f"{100 * achieved:.2f}%, short of the target {100 * target:.2f}% "
                         f"(the cells' savings measured alone add up to more): lower the "
                         f"target or raise the ceilings")
    if rounds == 1:   # met at once: the first-order sum may have asked too much already
        short = max(0, need - int(np.ceil((met[2] - target) * bins)) - 1)
    while met[0] - short > 1 and rounds < 2 * MEASURED_ROUNDS:
        middle = (short + met[0]) // 2
        sparsities = _choose(*problem, middle)
        achieved = float(measure.measured(result, sparsities))
        rounds += 1
        if achieved >= target:
            met = (middle, sparsities, achieved)
        else:
            short = middle
    return met[1], met[2]


def _knapsack(costs: List[np.ndarray], losses: List[np.ndarray], need: int) -> List[int]:
    """Index of each cell's option such that sum(cost) >= need at the least sum(loss)."""
    best = np.full(need + 1, np.inf)
    best[0] = 0.0
    trail = []
    for cost, loss in zip(costs, losses):
        new = np.full(need + 1, np.inf)
        picked = np.full(need + 1, -1, dtype=np.int64)
        origin = np.full(need + 1, -1, dtype=np.int64)
        for j, (c, l) in enumerate(zip(cost.tolist(), loss.tolist())):
            c = min(c, need)
            cand = np.full(need + 1, np.inf)
            cand[c:need] = best[:need - c] + l
            tail = best[need - c:]
            k = int(np.argmin(tail))
            cand[need] = tail[k] + l
            better = cand < new
            new[better] = cand[better]
            picked[better] = j
            from_ = np.arange(need + 1) - c
            from_[need] = need - c + k
            origin[better] = from_[better]
        trail.append((picked, origin))
        best = new
    choice, at = [], need
    for picked, origin in reversed(trail):
        choice.append(int(picked[at]))
        at = int(origin[at])
    return choice[::-1]


def _warn_extrapolated(result: Sensitivity, sparsities: Dict[str, float]) -> None:
    beyond = [f"{cell} {s:.3g} > {max(p.sparsity for p in result.points[cell]):g}"
              for cell, s in sparsities.items()
              if s > max(p.sparsity for p in result.points[cell]) + 1e-9]
    if beyond:
        warnings.warn(f"budget: predicted losses extrapolated beyond the measured sparsities "
                      f"({', '.join(beyond)}); add these sparsities to the analysis grid for a "
                      f"measured prediction", stacklevel=3)
