"""Masks from criteria: score a weight, group the scores by pattern, keep the best groups.

Pure functions the PruneCell calls for every criterion filler (``Magnitude``, ``L1Norm``,
...); the mask fillers of N2D2 (``Random``, ``IterNonStruct``) keep their own code.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import torch

from n2prune.prune.criteria import Criterion
from n2prune.prune.patterns import Pattern


def part_stats(stats: Mapping[str, torch.Tensor], weight: torch.Tensor,
               part: slice) -> Dict[str, torch.Tensor]:
    """The statistics of one input block: weight-shaped ones are sliced like the weight."""
    return {name: value[:, part] if value.shape == weight.shape else value
            for name, value in stats.items()}


def scores_of(criterion: Criterion, weight: torch.Tensor, stats: Mapping[str, torch.Tensor],
              parts: Sequence[slice], params: Mapping) -> List[torch.Tensor]:
    """The criterion's scores of each input block of ``weight``."""
    with torch.no_grad():
        return [criterion(weight[:, part], part_stats(stats, weight, part), **params)
                for part in parts]


def criterion_masks(criterion: Criterion, pattern: Pattern, weight: torch.Tensor,
                    stats: Mapping[str, torch.Tensor], parts: Sequence[slice], target: float,
                    params: Mapping) -> List[torch.Tensor]:
    """Bool keep-masks, one per input block, at fraction ``target`` (Layer scope)."""
    return [pattern.keep(scores, target, criterion.norm, weight[:, part].shape)
            for scores, part in zip(scores_of(criterion, weight, stats, parts, params), parts)]


def group_scores(criterion: Criterion, pattern: Pattern, weight: torch.Tensor,
                 stats: Mapping[str, torch.Tensor], parts: Sequence[slice],
                 params: Mapping) -> List[torch.Tensor]:
    """Group scores of each input block (what Global scope ranks across cells)."""
    return [pattern.groups(scores, criterion.norm, weight[:, part].shape)
            for scores, part in zip(scores_of(criterion, weight, stats, parts, params), parts)]
