"""Gradient-based pruning criteria: Snip, SnipMomentum, MagGrad, Taylor (pure functions).

Each is a score function ``score(weight, stats, **params) -> Tensor`` (importance, larger =
keep, same shape as the weight) registered in ``CRITERIA`` under its INI spelling
(``QWeight.PruningFiller=Snip``). The statistics come from the Pruner's calibration
(:mod:`n2prune.prune.statistics`):

- ``grad``: the mean of ∂L/∂w over the calibration batches (one running mean, any number of
  batches);
- ``momentum_score``: SnipMomentum's running score, updated at every training step.

>>> import torch
>>> w = torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]])
>>> g = torch.tensor([[0.1, 0.3, -0.1], [2.0, -0.1, 0.2]])
>>> snip(w, {"grad": g})
tensor([[0.1000, 0.6000, 0.3000],
        [1.0000, 0.1000, 0.2000]])
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from n2prune.ini.params import Key, Range
from n2prune.ini.values import read_float
from n2prune.prune.criteria.registry import register_criterion
from n2prune.prune.statistics import CALIBRATION_BATCHES, gathered

Stats = Dict[str, torch.Tensor]


def _stat(stats: Stats, name: str, weight: torch.Tensor, criterion: str) -> torch.Tensor:
    """The statistic ``name`` as a tensor shaped like ``weight``, or a clear error."""
    value = gathered(stats, name, criterion)
    if value.shape != weight.shape:
        raise ValueError(f"{criterion} criterion: statistic {name!r} has shape "
                         f"{tuple(value.shape)}, the weight {tuple(weight.shape)}")
    return value


@register_criterion("Snip", needs=("grad",), norm="L1", params=(CALIBRATION_BATCHES,))
def snip(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """|w · ḡ| (Lee et al. 2019, connection sensitivity), ḡ the mean calibration gradient.

    SNIP's normalisation by the sum over the network divides every score by the same number,
    so it changes no ranking and is left out.
    """
    return (weight.detach() * _stat(stats, "grad", weight, "Snip")).abs()


@register_criterion("MagGrad", needs=("grad",), norm="L1", params=(CALIBRATION_BATCHES,))
def mag_grad(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """ShrinkBench's MagGrad: |w · g| with g the gradient on the calibration batches.

    The same score as Snip (ShrinkBench computes g on one batch: ``CalibrationBatches=1``);
    kept under ShrinkBench's name so its strategies and tables compare by name.
    """
    return (weight.detach() * _stat(stats, "grad", weight, "MagGrad")).abs()


@register_criterion("SnipMomentum", needs=("momentum_score",), norm="L1",
                    params=(Key("ScoreMomentum", "score_momentum", read_float, 0.9,
                                "decay of the running score s <- m*s + |w*g|, in [0, 1)",
                                Range(0.0, 1.0)), CALIBRATION_BATCHES))
def snip_momentum(weight: torch.Tensor, stats: Stats,
                  score_momentum: float = 0.9, **_: Any) -> torch.Tensor:
    """The running score s ← m·s + |w·g| that the Pruner updates at every training step
    (Intel Neural Compressor's snip_momentum, m = ``score_momentum`` = 0.9). The statistics
    collector applies m; the score is the running value itself."""
    if not 0.0 <= score_momentum < 1.0:
        raise ValueError(f"SnipMomentum criterion: score_momentum={score_momentum!r} is out "
                         f"of range; allowed: [0, 1)")
    return _stat(stats, "momentum_score", weight, "SnipMomentum").clone()


@register_criterion("Taylor", needs=("grad",), norm="L1", params=(CALIBRATION_BATCHES,))
def taylor(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """First-order Taylor importance (Molchanov et al. 2019): (w · ḡ)² per weight.

    A group (block, N:M group, channel) scores Σ_s (w_s·ḡ_s)², the sum of its members'
    squared contributions: the paper's per-parameter form (its eq. 4), which patterns
    compute with the L1 norm. ḡ is the mean calibration gradient.
    """
    return (weight.detach() * _stat(stats, "grad", weight, "Taylor")).square()
