"""A pruned layer's inputs as its statistics read them: one tensor from a forward's
arguments, the columns each weight row reads (im2col for a convolution), and a refusal of
non-finite values (a statistic of NaN or infinity would rank by accident)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn


def finite_or_refuse(tensor: torch.Tensor, name: str, what: str, cell: Any) -> None:
    """A ValueError naming the layer when a tensor a criterion's statistics come from holds
    NaN or infinity (a statistic of it would rank by accident, or by tie order)."""
    if not math.isfinite(float(tensor.detach().sum())):  # one reduction, no bool copy
        raise ValueError(f"{name or '<model>'}: its {what} holds NaN or infinity while "
                         f"gathering statistics for {cell.prune_filler!r}; the scores would "
                         f"be meaningless (check the model and the calibration data)")


def unfolder(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The columns a convolution's weight rows read, [N, C·∏kernel, positions]: the exact
    im2col of a 2-d convolution with zero padding (n2prune Conv, nn.Conv2d, and nn.Conv1d as
    one row); for other convolutions (ConvTranspose, 3-d, other padding modes) every kernel
    position of a channel is given the channel's values, which ignores the borders."""
    weight = layer.weight
    kernel = tuple(weight.shape[2:])
    geometry = getattr(layer, "_geometry", None)
    if geometry is not None:  # n2prune Conv: (crop, stride, padding, dilation)
        crop, stride, padding, dilation = geometry
        return _im2col(kernel, crop, stride, padding, dilation)
    exact = isinstance(layer, (nn.Conv1d, nn.Conv2d)) and layer.padding_mode == "zeros"
    padding = getattr(layer, "padding", 0)
    if exact and isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * len(kernel)
        elif all(k % 2 for k in kernel):
            padding = tuple(d * (k - 1) // 2 for d, k in zip(layer.dilation, kernel))
        else:
            exact = False  # 'same' with an even kernel pads unevenly
    if exact and len(kernel) == 2:
        return _im2col(kernel, None, layer.stride, padding, layer.dilation)
    if exact:  # Conv1d: a 2-d convolution of one row
        conv2d = _im2col((1,) + kernel, None, (1,) + tuple(layer.stride), (0,) + tuple(padding),
                         (1,) + tuple(layer.dilation))
        return lambda x: conv2d(x.unsqueeze(2))
    positions = math.prod(kernel)

    def repeat(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], x.shape[1], 1, -1)
        return flat.expand(-1, -1, positions, -1).reshape(x.shape[0], -1, flat.shape[-1])
    return repeat


def _im2col(kernel, crop, stride, padding, dilation) -> Callable[[torch.Tensor], torch.Tensor]:
    def unfold(x: torch.Tensor) -> torch.Tensor:
        if crop is not None:
            x = F.pad(x, crop)
        return F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    return unfold


def layer_input(module: nn.Module, inputs: tuple) -> torch.Tensor:
    """One tensor from a forward's inputs: several inputs are joined as the layer joins
    them (an n2prune Fc flattens and concatenates, a Conv concatenates channels)."""
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    if len(tensors) == 1:
        return tensors[0]
    if module.weight.dim() <= 2:
        return torch.cat([x.reshape(x.shape[0], -1) for x in tensors], dim=1)
    return torch.cat(tensors, dim=1)
