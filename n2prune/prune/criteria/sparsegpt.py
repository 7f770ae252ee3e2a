"""SparseGPT as a criterion (``prune_filler="SparseGPT"``, ``QWeight.PruningFiller=SparseGPT``):
the cells' layers pruned one after another in forward order by optimal-brain-surgeon
reconstruction (Frantar & Alistarh 2023, :mod:`n2prune.prune.sparsegpt.model`) when
``Pruner.calibrate`` has its batches; the surviving weights are updated in place.

Static mode, Layer scope, Unstructured or N:M. Parameters: ``blocksize``
(``QWeight.SparseGPTBlockSize``, 128 columns solved together) and ``damp``
(``QWeight.SparseGPTDamp``, 0.01 of the mean Hessian diagonal added to it). Transformer
layers (the modules of an ``nn.ModuleList`` holding the pruned layers) are replayed on their
own, from their cached inputs, which gives the same weights faster. Until calibrated, the
masks wait (the layer computes densely); afterwards the score of a later refill is |w|, which
keeps the reconstructed zeros.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Sequence

import torch
from torch import nn

from n2prune.ini.params import Key, Range
from n2prune.ini.values import read_float, read_uint
from n2prune.prune.criteria.registry import CRITERIA, register_criterion
from n2prune.prune.sparsegpt.model import SparseGPTLayer, reconstruct
from n2prune.prune.statistics import CALIBRATION_BATCHES

PARAMS = (
    Key("SparseGPTBlockSize", "blocksize", read_uint, 128,
        "SparseGPT: columns solved together (lazy batch updates)", Range(1, math.inf,
                                                                          integer=True)),
    Key("SparseGPTDamp", "damp", read_float, 0.01,
        "SparseGPT: fraction of the mean Hessian diagonal added to it", Range(0.0, math.inf)),
    CALIBRATION_BATCHES,
)


def transformer_blocks(model: nn.Module, layers: Sequence[nn.Module]) -> List[nn.Module]:
    """The modules held directly by an ``nn.ModuleList`` of ``model`` that contain one of
    ``layers`` (a transformer's layers), outermost first."""
    wanted = {id(layer) for layer in layers}
    blocks = []
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            for child in module:
                if any(id(m) in wanted for m in child.modules()) and child not in blocks:
                    blocks.append(child)
    return blocks


@torch.no_grad()
def reconstruct_cells(model: nn.Module, cells: Dict[str, Any],
                      runs: Sequence[Callable[[], Any]]) -> None:
    """Prune and reconstruct every cell's layer at its current threshold; the masks are set
    to what SparseGPT kept (the weights hold zeros there too)."""
    targets = []
    for name, cell in cells.items():
        cell.mask.fill_(1.0)  # SparseGPT reads the dense weight
        pattern = cell.pattern_rule
        nm = (pattern.args["n"], pattern.args["m"]) if str(pattern).count(":") == 1 else None
        params = cell.criterion_params(CRITERIA.get("SparseGPT"))
        targets.append(SparseGPTLayer(name, cell.cell, float(cell.current_threshold), nm,
                                      params.get("blocksize", 128), params.get("damp", 0.01)))
    done = reconstruct(targets, list(runs),
                       transformer_blocks(model, [cell.cell for cell in cells.values()]))
    for name, cell in cells.items():
        cell.mask.copy_(done[name].keep)
        cell.waiting = False


def _score(weight: torch.Tensor, stats: Dict[str, torch.Tensor], **_: Any) -> torch.Tensor:
    """|w| of the reconstructed weight: a refill at the same threshold keeps its zeros."""
    return weight.detach().abs()


register_criterion("SparseGPT", needs=("input_sq_mean",), norm="L1", params=PARAMS,
                   reconstruct=reconstruct_cells, patterns=("Unstructured", "N:M"))(_score)
