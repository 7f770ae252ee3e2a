"""Masks from criteria: score a weight, group the scores by pattern, keep the best groups.

Pure functions the PruneCell calls for every criterion filler (``Magnitude``, ``L1Norm``,
...); the mask fillers of N2D2 (``Random``, ``IterNonStruct``) keep their own code.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from n2prune.prune.criteria import Criterion
from n2prune.prune.patterns import Pattern


def out_dim(cell: nn.Module) -> int:
    """The weight dimension holding output channels: 1 for ConvTranspose ([in, out, ...])."""
    if isinstance(cell, nn.modules.conv._ConvTransposeNd):
        return 1
    return int(getattr(cell, "out_channel_dim", 0))


def as_out_in(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    """``tensor`` viewed with output channels first (a transposed view when ``dim`` is 1)."""
    return tensor.transpose(0, 1) if dim == 1 and tensor.dim() > 1 else tensor


def part_stats(stats: Mapping[str, torch.Tensor], weight: torch.Tensor,
               part: slice) -> Dict[str, torch.Tensor]:
    """The statistics of one input block: weight-shaped ones are sliced like the weight."""
    return {name: value[:, part] if value.shape == weight.shape else value
            for name, value in stats.items()}


def scores_of(criterion: Criterion, weight: torch.Tensor, stats: Mapping[str, torch.Tensor],
              parts: Sequence[slice], params: Mapping, dim: int = 0) -> List[torch.Tensor]:
    """The criterion's scores of each input block of ``weight``, output channels first: the
    criterion sees the block and its weight-shaped statistics that way (a transposed view
    when ``dim`` is 1), so channel and activation criteria read ConvTranspose layers right."""
    out = []
    with torch.no_grad():
        for part in parts:
            block = weight[:, part]
            seen = {name: as_out_in(value, dim) if value.shape == block.shape else value
                    for name, value in part_stats(stats, weight, part).items()}
            out.append(criterion(as_out_in(block, dim), seen, **params))
    return out


def criterion_masks(criterion: Criterion, pattern: Pattern, weight: torch.Tensor,
                    stats: Mapping[str, torch.Tensor], parts: Sequence[slice], target: float,
                    params: Mapping, dim: int = 0,
                    pruned: Optional[Sequence[torch.Tensor]] = None) -> List[torch.Tensor]:
    """Bool keep-masks, one per input block, at fraction ``target`` (Layer scope);
    ``dim`` is the output-channel dimension of ``weight``. ``pruned`` (per block, bool,
    shaped like the block): weights already pruned, whose groups go first (masks only grow)."""
    masks = []
    for i, (scores, part) in enumerate(zip(scores_of(criterion, weight, stats, parts, params,
                                                     dim), parts)):
        shape = as_out_in(weight[:, part], dim).shape
        before = None if pruned is None else as_out_in(pruned[i], dim)
        masks.append(as_out_in(pattern.keep(scores, target, criterion.norm, shape, before), dim))
    return masks


def dead_groups(pattern: Pattern, pruned: Sequence[torch.Tensor],
                dim: int = 0) -> List[torch.Tensor]:
    """Per block: the bool group tensor of groups whose members are all in ``pruned``."""
    return [pattern.dead(as_out_in(p, dim), as_out_in(p, dim).shape) for p in pruned]


def group_scores(criterion: Criterion, pattern: Pattern, weight: torch.Tensor,
                 stats: Mapping[str, torch.Tensor], parts: Sequence[slice],
                 params: Mapping, dim: int = 0) -> List[torch.Tensor]:
    """Group scores of each input block (what Global scope ranks across cells)."""
    return [pattern.groups(scores, criterion.norm, as_out_in(weight[:, part], dim).shape)
            for scores, part in zip(scores_of(criterion, weight, stats, parts, params, dim),
                                    parts)]


def expand_groups(pattern: Pattern, keep: torch.Tensor, weight: torch.Tensor,
                  dim: int = 0) -> torch.Tensor:
    """The per-weight keep-mask (shaped like ``weight``) of a group keep-mask."""
    return as_out_in(pattern.expand(keep, as_out_in(weight, dim).shape), dim)
