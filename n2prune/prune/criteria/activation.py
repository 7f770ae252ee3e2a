"""Activation-based weight criteria: ActivationMagnitude, MagAct and Wanda (pure functions).

They weigh |w_ij| by a statistic of input j over the calibration batches, gathered by the
Pruner's forward hooks as running means (:mod:`n2prune.prune.statistics`):

- ``input_sq_mean``: E[x_j²] per input feature (Linear) or input channel (Conv, over
  samples and positions), shape [in_features] / [in_channels];
- ``input_mean``: E[x] over samples, per input feature (Linear) or per input map
  (Conv: [in_channels, *spatial]);
- ``input_col_sq_mean``: E[x_j²] over tokens per column a weight row reads: an input feature
  (Linear; every leading dimension counts as a token), an input channel at one kernel position
  (Conv: the unfolded patches, [in_channels·kh·kw]).

For a grouped convolution (weight [out, in/groups, ...]) output o reads input channels
``(o // (out/groups)) * in/groups + j``; the number of groups is the statistic's length
divided by ``weight.shape[1]``. Criteria see weights output channels first: a ConvTranspose
weight [in, out/groups, ...] arrives as its [out, in/groups, ...] view
(:class:`n2prune.prune.masks.OutView`), read as a grouped convolution's.

>>> import torch
>>> w = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
>>> activation_magnitude(w, {"input_sq_mean": torch.tensor([4.0, 1.0])})
tensor([[2.0000, 2.0000],
        [6.0000, 0.5000]])
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from n2prune.prune.criteria.registry import register_criterion
from n2prune.prune.statistics import CALIBRATION_BATCHES, gathered

Stats = Dict[str, torch.Tensor]


def _channel_stat(stats: Stats, name: str, criterion: str) -> torch.Tensor:
    value = gathered(stats, name, criterion)
    return value


def broadcast_inputs(per_input: torch.Tensor, weight: torch.Tensor, criterion: str
                     ) -> torch.Tensor:
    """A per-input-channel vector [C_in] expanded to broadcast against ``weight``.

    Linear [out, in]: a row [1, in]. Conv [out, in/g, *k]: [out, in/g, 1, ...] with output o
    reading group o // (out/g).
    """
    per_input = per_input.to(weight.dtype)
    out, width = weight.shape[0], weight.shape[1]
    if per_input.numel() % width or out % max(1, per_input.numel() // width):
        raise ValueError(f"{criterion} criterion: {per_input.numel()} input channels do not "
                         f"match a weight of shape {tuple(weight.shape)}")
    groups = per_input.numel() // width
    table = per_input.reshape(groups, width)
    rows = table.repeat_interleave(out // groups, dim=0)  # [out, in/g]
    return rows.reshape(out, width, *([1] * (weight.dim() - 2)))


@register_criterion("ActivationMagnitude", needs=("input_sq_mean",), norm="L1",
                    params=(CALIBRATION_BATCHES,))
def activation_magnitude(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """|w_ij| · ‖x_j‖ with ‖x_j‖ = sqrt(E[x_j²]) over the calibration samples (and positions,
    for a convolution): the root mean square, so scores do not grow with the number of
    batches and layers of different spatial sizes compare in a global ranking."""
    sq = _channel_stat(stats, "input_sq_mean", "ActivationMagnitude")
    return weight.detach().abs() * broadcast_inputs(sq.clamp_min(0).sqrt(), weight,
                                                    "ActivationMagnitude")


@register_criterion("MagAct", needs=("input_mean",), norm="L1", params=(CALIBRATION_BATCHES,))
def mag_act(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """ShrinkBench's MagAct: |w_ij| · a_j with a_j = |E[x_j]| over the batch for a Linear
    input, and the mean over positions of |E[x_c]| (E over samples) for a Conv input
    channel c (ShrinkBench's L1 norm of the batch-mean map divided by its size)."""
    mean = _channel_stat(stats, "input_mean", "MagAct")
    per_input = mean.abs().reshape(mean.shape[0], -1).mean(dim=1) if weight.dim() > 2 \
        else mean.abs().reshape(-1)
    return weight.detach().abs() * broadcast_inputs(per_input, weight, "MagAct")


@register_criterion("Wanda", needs=("input_col_sq_mean",), norm="L1", group="Row",
                    params=(CALIBRATION_BATCHES,))
def wanda(weight: torch.Tensor, stats: Stats, **_: Any) -> torch.Tensor:
    """Wanda (Sun et al. 2023): |W_ij|·‖X_j‖₂ over the calibration tokens, compared within
    each output row by default (``group="Row"``). ``X_j`` is input feature j of a Linear (all
    leading dimensions are tokens) or, for a convolution, input channel c at kernel position
    (kh, kw) over the unfolded patches (weight [out, in/g, kh, kw] seen as
    [out, in/g·kh·kw]). The norm is taken as sqrt(N·E[x_j²]) with N the common token count,
    so it ranks as ‖X_j‖₂ does within a layer."""
    sq = gathered(stats, "input_col_sq_mean", "Wanda")
    rows = weight.reshape(weight.shape[0], -1)
    per_column = broadcast_inputs(sq.clamp_min(0).sqrt(), rows, "Wanda")
    return (rows.detach().abs() * per_column).reshape(weight.shape)
