"""Weight-only rule criteria: Percentile and MagnitudeThreshold (pure functions).

They score a weight by its signed margin inside the range it must lie in to be kept:
negative outside (the rule prunes it), larger the safer. Ranked as every criterion is
(``ceil(t·N)`` lowest pruned), they prune the weights the rule rejects first, then those
nearest the edges of the range; ``rule_fraction`` gives the fraction a rule rejects, so
``threshold=rule_fraction(...)`` prunes exactly the rule's weights.

>>> import torch
>>> magnitude_threshold(torch.tensor([0.05, -0.3, 0.2]), {}, magnitude_threshold=0.1)
tensor([-0.0500,  0.2000,  0.1000])
"""

from __future__ import annotations

import math
from typing import Any, Dict

import torch

from n2prune.ini.params import Key, Range
from n2prune.ini.values import read_float
from n2prune.prune.criteria.registry import register_criterion

Stats = Dict[str, torch.Tensor]


def _check(criterion: str, name: str, value: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or not low <= value <= high:
        raise ValueError(f"{criterion} criterion: {name}={value!r} is out of range; "
                         f"allowed: [{low:g}, {high:g}]")
    return float(value)


def percentile_range(weight: torch.Tensor, low: float, high: float):
    """The |w| values at the ``low`` and ``high`` percentiles (linear interpolation)."""
    absw = weight.detach().abs().reshape(-1).to(torch.float64)
    q = torch.tensor([low / 100.0, high / 100.0], dtype=torch.float64)
    lo, hi = torch.quantile(absw, q).tolist()
    return lo, hi


@register_criterion("Percentile", norm="L1", params=(
    Key("PercentileLow", "percentile_low", read_float, 0.0,
        "weights with |w| below this percentile of the layer's |w| are pruned",
        Range(0.0, 100.0)),
    Key("PercentileHigh", "percentile_high", read_float, 100.0,
        "weights with |w| above this percentile are pruned", Range(0.0, 100.0))))
def percentile(weight: torch.Tensor, stats: Stats, percentile_low: float = 0.0,
               percentile_high: float = 100.0, **_: Any) -> torch.Tensor:
    """min(|w| − q_low, q_high − |w|): negative for the weights whose |w| lies outside the
    [low, high] percentile range of the layer's magnitudes."""
    low = _check("Percentile", "percentile_low", percentile_low, 0.0, 100.0)
    high = _check("Percentile", "percentile_high", percentile_high, 0.0, 100.0)
    if low > high:
        raise ValueError(f"Percentile criterion: percentile_low={low:g} must be at most "
                         f"percentile_high={high:g}")
    lo, hi = percentile_range(weight, low, high)
    absw = weight.detach().abs().to(torch.float64)
    below, above = absw - lo, hi - absw
    if high >= 100.0:
        above = torch.full_like(absw, math.inf)  # nothing is too large
    return torch.minimum(below, above).to(weight.dtype)


@register_criterion("MagnitudeThreshold", norm="L1", params=(
    Key("MagnitudeThreshold", "magnitude_threshold", read_float, 0.0,
        "weights with |w| below this absolute value are pruned", Range(0.0, math.inf)),))
def magnitude_threshold(weight: torch.Tensor, stats: Stats, magnitude_threshold: float = 0.0,
                        **_: Any) -> torch.Tensor:
    """|w| − value: negative for the weights below the absolute threshold ``value``."""
    value = _check("MagnitudeThreshold", "magnitude_threshold", magnitude_threshold, 0.0,
                   math.inf)
    return weight.detach().abs() - value


def rule_fraction(scores: torch.Tensor) -> float:
    """The fraction of weights a rule criterion rejects (scores below 0)."""
    return float((scores < 0).sum()) / max(1, scores.numel())
