"""N2D2's ``-fuse``: each BatchNorm folded into the Conv or Fc cell that feeds it (eval mode);
any cell whose kind's weight ``layout`` has its outputs first can take one.

``fuse_batchnorm(net)`` returns a copy of ``net`` in which a BatchNorm cell whose only input is
a Conv or Fc cell (with no activation of its own, and read by nothing else) becomes a cell that
only applies the BatchNorm's activation; the Conv/Fc weights and bias absorb the normalisation:

    s = scale / sqrt(variance + epsilon),  W' = W·s (per output),  b' = (b - mean)·s + bias

The folded cells' masks are multiplied into their weights first (their PruneCell is removed:
a mask ranks the unscaled weights, and the fused network is for test and export only). The
arithmetic is done in float64, so the fused network's outputs equal the original's in eval
mode within float32 rounding. BatchNorm cells that cannot be folded are named in one warning.

>>> fused, folded = fuse_batchnorm(net)      # doctest: +SKIP
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from n2prune.cells.activation_functions import ActivatedCell, Linear
from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.kinds import kind_of_module


class FoldedBatchNorm(ActivatedCell):
    """What is left of a BatchNorm once folded into the cell before it: its activation."""

    def __init__(self, activation: Optional[nn.Module]):
        super().__init__()
        self.activation = copy.deepcopy(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(x)


def fuse_batchnorm(net: Any) -> Tuple[Any, List[str]]:
    """A fused copy of ``net`` (an INI ``Network``, in eval mode) and the names of the
    BatchNorm cells folded, in build order; ``net`` itself is left as it was."""
    fused = copy.deepcopy(net).eval()
    cells = fused.cells
    readers = _readers(fused)
    targets = {target.cell for target in getattr(fused, "targets", [])}
    folded, left = [], {}
    for name, cell in cells.items():
        if not isinstance(cell, BatchNorm):
            continue
        reason = _why_not(name, fused.info[name].inputs, cells, readers, targets)
        if reason:
            left[name] = reason
            continue
        parent = cells[fused.info[name].inputs[0]]
        _fold(parent, cell)
        fused.replace_cell(name, FoldedBatchNorm(cell.activation))
        folded.append(name)
    if left:
        warnings.warn("-fuse: BatchNorm left as it is: " + "; ".join(
            f"{name} ({reason})" for name, reason in left.items()))
    return fused, folded


def _readers(net: Any) -> Dict[str, int]:
    """How many cells read each cell's output."""
    counts: Dict[str, int] = {}
    for info in net.info.values():
        for parent in info.inputs:
            counts[parent] = counts.get(parent, 0) + 1
    return counts


def _why_not(name: str, inputs: List[str], cells, readers: Dict[str, int],
             targets) -> str:
    """Why BatchNorm ``name`` cannot be folded ('' when it can)."""
    if len(inputs) != 1 or inputs[0] not in cells:
        return "its input is not one cell"
    parent_name = inputs[0]
    parent = cells[parent_name]
    kind = kind_of_module(parent)
    if kind is None or kind.layout is None or not kind.layout.outputs_first:
        return (f"its input {parent_name} is a {type(parent).__name__}, not a cell whose "
                f"weight rows are its outputs (Conv, Fc)")
    activation = getattr(parent, "activation", None)
    if activation is not None and not (isinstance(activation, Linear)
                                       and activation.clipping == 0):
        return f"{parent_name} has the activation {type(activation).__name__}"
    if readers.get(parent_name, 0) > 1 or parent_name in targets:
        return f"{parent_name}'s output is also read elsewhere"
    return ""


@torch.no_grad()
def _fold(cell: nn.Module, norm: BatchNorm) -> None:
    """Fold ``norm``'s eval-mode affine map into ``cell``'s weight and bias, in place."""
    weight = cell.effective_weight().double()   # masks and Mapping applied
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.epsilon)
    bias = cell.bias.double() if cell.bias is not None else torch.zeros_like(scale)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    new_bias = (bias - norm.running_mean.double()) * scale + norm.bias.double()
    if getattr(cell, "quantizer", None) is not None:
        cell.quantizer = None
    cell.weight.copy_((weight * scale.reshape(shape)).to(cell.weight.dtype))
    if cell.bias is None:
        cell.bias = nn.Parameter(torch.zeros_like(norm.bias))
    cell.bias.copy_(new_bias.to(cell.bias.dtype))
    cell.activation = None
