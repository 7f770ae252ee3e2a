"""The weights a forward pass uses, multiplied out: what costs count, what ONNX and latency
measurements run, what structured selection scores (n2prune cells and torch layers given
PruneCells by ``n2prune.attach`` alike).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def used_weight(module: nn.Module) -> torch.Tensor:
    """The weight the forward pass uses: n2prune cells' ``effective_weight()``, a torch
    layer's weight × the mask of the PruneCell ``attach`` gave it."""
    effective = getattr(module, "effective_weight", None)
    if callable(effective):
        return effective().detach()
    weight = module.weight.detach()
    mask = getattr(module._modules.get("quantizer"), "mask", None)
    return weight * mask if isinstance(mask, torch.Tensor) and mask.shape == weight.shape \
        else weight


@torch.no_grad()
def baked(net):
    """A copy of ``net`` whose PruneCells are gone, their masks multiplied into the weights
    (n2prune cells, and torch layers given PruneCells by ``n2prune.attach``)."""
    plain = copy.deepcopy(net)
    for module in plain.modules():
        if getattr(module, "quantizer", None) is not None:
            weight = used_weight(module).clone()
            module.quantizer = None
            module.weight.copy_(weight)
    return plain


@torch.no_grad()
def unmasked(net: nn.Module) -> nn.Module:
    """A copy without PruneCells and with its masks undone (the weights as trained)."""
    dense = copy.deepcopy(net)
    for module in dense.modules():
        if getattr(module, "quantizer", None) is not None:
            module.quantizer = None
    return dense
