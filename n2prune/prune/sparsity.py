"""Sparsity: the one definition n2prune reports (PruneCell, trainer, report.json, summary).

The sparsity of a cell is the fraction of its *connected* weights that its mask prunes:
weights a Mapping table disconnects are neither counted as pruned nor as weights (N2D2 counts
them out of the synapses too), and a weight that merely happens to be 0 is not pruned.
A cell without a PruneCell has sparsity 0.
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np
import torch
from torch import nn

_NUMPY = (torch.float32, torch.float64, torch.float16, torch.bool, torch.uint8)


def mask_counts(mask: torch.Tensor, connection: Optional[torch.Tensor] = None) -> Tuple[int, int]:
    """(pruned, connected) weights of a mask, ``connection`` (0/1, broadcastable) aside."""
    if connection is None:
        if mask.device.type == "cpu" and mask.dtype in _NUMPY and mask.is_contiguous():
            # one single-threaded pass, no temporary (torch's == and sum at 2 threads cost
            # several times more on a shared machine)
            return mask.numel() - int(np.count_nonzero(mask.numpy())), mask.numel()
        return int((mask == 0).sum()), mask.numel()
    connected = connection.expand_as(mask) != 0
    return int(((mask == 0) & connected).sum()), int(connected.sum())


def mask_sparsity(mask: torch.Tensor, connection: Optional[torch.Tensor] = None) -> float:
    """Fraction of the connected weights the mask prunes (0 for an empty mask)."""
    pruned, total = mask_counts(mask, connection)
    return pruned / total if total else 0.0


def cell_counts(cell: nn.Module) -> Tuple[int, int]:
    """(pruned, connected) weights of a cell; (0, connected) without a PruneCell."""
    quantizer = getattr(cell, "quantizer", None)
    weight = cell.weight
    connection = getattr(cell, "connection", None)
    if quantizer is None or quantizer.mask.shape != weight.shape:
        return mask_counts(torch.ones_like(weight), connection)
    return mask_counts(quantizer.mask, connection)


def sparsity(cells: Iterable[nn.Module]) -> float:
    """Pruned over connected weights, summed over ``cells`` (0 when they hold none)."""
    pruned = total = 0
    for cell in cells:
        p, t = cell_counts(cell)
        pruned, total = pruned + p, total + t
    return pruned / total if total else 0.0
