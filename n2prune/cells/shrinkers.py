"""How each cell type loses channels: the shrinkers a :class:`~n2prune.cells.kinds.CellKind`
carries, used by ``n2prune.compact.shrink``.

A shrinker slices a cell in place to the kept input and output channels of a :class:`Plan`
(weights, biases, masks, Mapping tables, BatchNorm statistics, PerChannel coefficients). A
cell type without a shrinker has fixed channels (its kind has no channel rule either).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from torch import nn

from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.conv import Conv
from n2prune.cells.fc import Fc

# A shrinker: shrink(cell, plan, name), in place.


@dataclass
class Plan:
    """What compaction keeps: per cell, kept input (concatenated) and output channel indices."""

    keep_in: Dict[str, torch.Tensor] = field(default_factory=dict)
    keep_out: Dict[str, torch.Tensor] = field(default_factory=dict)
    kept_per_input: Dict[str, List[int]] = field(default_factory=dict)
    removed_groups: int = 0
    input_hw: Dict[str, List[int]] = field(default_factory=dict)
    channels_per_input: Dict[str, List[int]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- shrinkers
def _param(old: Optional[torch.Tensor], new: torch.Tensor):
    return None if old is None else nn.Parameter(new.detach().clone(),
                                                 requires_grad=old.requires_grad)


def _set_mask(cell: nn.Module, index) -> None:
    quantizer = getattr(cell, "quantizer", None)
    if quantizer is not None and quantizer.mask.numel():
        quantizer.mask = index(quantizer.mask).clone()


def shrink_conv(cell: Conv, plan: Plan, name: str) -> None:
    """Slice a (grouped, depthwise) Conv to its kept input and output channels."""
    keep_in, keep_out = plan.keep_in[name], plan.keep_out[name]
    groups = cell.groups
    if groups == 1:
        def index(t):
            return t[keep_out][:, keep_in]
        new_groups = 1
    else:
        per_in = cell.nb_inputs // groups
        if per_in == 1:  # depthwise: the kept groups are the kept input channels
            new_groups = int(keep_in.numel())

            def index(t):
                return t[keep_out]
        else:
            new_groups = groups
            in_group = keep_in[keep_in < per_in]

            def index(t):
                return t[keep_out][:, in_group]
    cell.weight = _param(cell.weight, index(cell.weight))
    if cell.bias is not None:
        cell.bias = _param(cell.bias, cell.bias[keep_out])
    if cell.connection is not None:
        cell.connection = cell.connection[keep_out][:, keep_in].clone()
    _set_mask(cell, index)
    cell.nb_inputs, cell.nb_outputs, cell.groups = int(keep_in.numel()), \
        int(keep_out.numel()), new_groups
    sizes = plan.kept_per_input[name]
    cell.input_slices = [slice(None)]
    cell._set_inputs(sizes if len(sizes) > 1 else None, cell.nb_inputs, "input_channels")


def shrink_fc(cell: Fc, plan: Plan, name: str) -> None:
    """Slice an Fc to its kept outputs and the columns of its kept input channels."""
    keep_in, keep_out = plan.keep_in[name], plan.keep_out[name]
    hw = torch.tensor([size for size, count in zip(plan.input_hw[name],
                                                   plan.channels_per_input[name])
                       for _ in range(count)], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), hw.cumsum(0)[:-1]])
    columns = torch.cat([torch.arange(int(offsets[c]), int(offsets[c] + hw[c]))
                         for c in keep_in.tolist()])

    def index(t):
        return t[keep_out][:, columns]
    cell.weight = _param(cell.weight, index(cell.weight))
    if cell.bias is not None:
        cell.bias = _param(cell.bias, cell.bias[keep_out])
    _set_mask(cell, index)
    cell.nb_inputs, cell.nb_outputs = int(columns.numel()), int(keep_out.numel())
    sizes = [kept * size for kept, size in zip(plan.kept_per_input[name],
                                                plan.input_hw[name])]
    cell.input_slices = [slice(None)]
    cell._set_inputs(sizes if len(sizes) > 1 else None, cell.nb_inputs, "input_sizes")


def shrink_batchnorm(cell: BatchNorm, plan: Plan, name: str) -> None:
    """Slice a BatchNorm's scale, bias and running statistics."""
    keep = plan.keep_out[name]
    cell.weight = _param(cell.weight, cell.weight[keep])
    cell.bias = _param(cell.bias, cell.bias[keep])
    cell.running_mean = cell.running_mean[keep].clone()
    cell.running_var = cell.running_var[keep].clone()
    cell.nb_outputs = int(keep.numel())


def shrink_count(cell: nn.Module, plan: Plan, name: str) -> None:
    """A cell without channel parameters: only its output count changes."""
    cell.nb_outputs = int(plan.keep_out[name].numel())


def shrink_pool(cell: nn.Module, plan: Plan, name: str) -> None:
    """A one-to-one Pool shrinks to an identity map; other pools keep their channels."""
    if cell.mode != "identity":
        return  # fixed channels: nothing removed
    count = int(plan.keep_out[name].numel())
    cell.nb_outputs = count
    cell.mapping = torch.eye(count, dtype=torch.bool)


def shrink_elemwise(cell: nn.Module, plan: Plan, name: str) -> None:
    """An ElemWise keeps its PerChannel coefficients of the kept channels."""
    keep = plan.keep_out[name]
    if cell.coeff_mode == "PerChannel":
        channels, inputs = cell.nb_outputs, len(plan.kept_per_input[name])
        for attr, default in (("weights", 1.0), ("shifts", 0.0)):
            values = getattr(cell, attr)
            values = (values + [default] * (inputs * channels))[:inputs * channels]
            setattr(cell, attr, [values[k * channels + c] for k in range(inputs)
                                 for c in keep.tolist()])
    cell.nb_outputs = int(keep.numel())
