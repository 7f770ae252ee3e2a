"""Channel criteria: one importance per output channel (level="channel"; larger = keep).

APoZ, Entropy, Variance and ActivationNorm read statistics of the layer's outputs gathered
by the Pruner's forward hooks as running values (:mod:`n2prune.prune.statistics`); FPGM reads
only the weights. A channel score applies with the ``Channel`` pattern (whole output channels).
Weights arrive output channels first (a ConvTranspose weight [in, out/groups, ...] as its
[out, in/groups, ...] view, :class:`n2prune.prune.masks.OutView`), so score c is output
channel c, grouped or not.

"After the activation" is read as "at or below 0": for an n2prune Conv/Fc the activation
is part of the cell, so the hook sees it applied; for a torch layer followed by a ReLU
module, the layer's outputs that are <= 0 are exactly the ReLU's zeros.

>>> import torch
>>> fpgm(torch.tensor([[0.0], [1.0], [10.0]]), {})
tensor([11., 10., 19.])
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from n2prune.prune.criteria.registry import register_criterion
from n2prune.prune.statistics import CALIBRATION_BATCHES, ENTROPY_BINS, gathered

Stats = Dict[str, torch.Tensor]


def _out_stat(stats: Stats, name: str, weight: torch.Tensor, criterion: str) -> torch.Tensor:
    value = gathered(stats, name, criterion)
    if value.shape[0] != weight.shape[0]:
        raise ValueError(f"{criterion} criterion: statistic {name!r} has {value.shape[0]} "
                         f"channels, the weight {weight.shape[0]} outputs")
    return value


@register_criterion("APoZ", needs=("output_zero_frac",), level="channel",
                    params=(CALIBRATION_BATCHES,))
def apoz(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """1 − APoZ (Hu et al. 2016): the fraction of a channel's outputs that are > 0 over the
    calibration samples and positions; the channels most often zero go first."""
    return 1.0 - _out_stat(stats, "output_zero_frac", weight, "APoZ").to(weight.dtype)


@register_criterion("Entropy", needs=("output_hist",), level="channel",
                    params=(CALIBRATION_BATCHES, ENTROPY_BINS))
def entropy(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """Entropy (nats) of the histogram of a channel's per-sample mean activation
    (Luo & Wu 2017): a channel whose pooled output barely varies carries little
    information. The histogram has fixed bins set from the first calibration batch
    (``QWeight.EntropyBins``), so memory is channels × bins."""
    hist = _out_stat(stats, "output_hist", weight, "Entropy").to(torch.float64)
    total = hist.sum(dim=1, keepdim=True).clamp_min(1.0)
    p = hist / total
    terms = torch.where(p > 0, -p * torch.log(p.clamp_min(1e-300)), torch.zeros_like(p))
    return terms.sum(dim=1).to(weight.dtype)


@register_criterion("Variance", needs=("output_var",), level="channel",
                    params=(CALIBRATION_BATCHES,))
def variance(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """The variance of a channel's outputs over the calibration samples and positions."""
    return _out_stat(stats, "output_var", weight, "Variance").to(weight.dtype).clone()


@register_criterion("ActivationNorm", needs=("output_mean",), level="channel",
                    params=(CALIBRATION_BATCHES,))
def activation_norm(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """ShrinkBench's activation-norm channel score: the L1 norm of the channel's
    batch-mean output map divided by its size, mean over positions of |E[y_c]|."""
    mean = _out_stat(stats, "output_mean", weight, "ActivationNorm")
    return mean.abs().reshape(mean.shape[0], -1).mean(dim=1).to(weight.dtype)


@register_criterion("FPGM", needs=(), level="channel")
def fpgm(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """Filter pruning via geometric median (He et al. 2019): Σ_j ‖F_i − F_j‖₂ over the
    layer's filters. The filters nearest the geometric median (smallest sum) are the most
    replaceable by the others and go first."""
    flat = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    return torch.cdist(flat, flat).sum(dim=1).to(weight.dtype)

