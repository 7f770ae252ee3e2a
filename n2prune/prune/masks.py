"""Masks from criteria: score a weight, group the scores by pattern, keep the best groups.

Pure functions the PruneCell calls for every criterion filler (``Magnitude``, ``L1Norm``,
...); the mask fillers of N2D2 (``Random``, ``IterNonStruct``) keep their own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from n2prune.prune.comparison import LAYER, Comparison
from n2prune.prune.criteria.registry import Criterion
from n2prune.prune.patterns import Pattern


@dataclass(frozen=True)
class OutView:
    """How a weight is seen output channels first, and back (``first`` / ``back``).

    A Linear or Conv weight [out, in/groups, ...] is seen as it is. A ConvTranspose weight
    [in, out/groups, ...] is seen as [out, in/groups, ...], the layout of a grouped Conv:
    output channel ``g·(out/groups) + j`` is ``weight[g·in/groups:(g+1)·in/groups, j]``
    (a plain transpose when ``groups`` is 1; a copy, not a view, when it is more).

    >>> w = torch.arange(8.0).reshape(4, 2, 1)        # ConvTranspose(4, 4, 1, groups=2)
    >>> OutView(transposed=True, groups=2).first(w)[:, :, 0].tolist()
    [[0.0, 2.0], [1.0, 3.0], [4.0, 6.0], [5.0, 7.0]]
    """

    transposed: bool = False
    groups: int = 1

    def first(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (shaped like the weight) output channels first."""
        return self._swap(tensor)

    def back(self, tensor: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`first`: an output-channels-first tensor in the weight's shape
        (the same regrouping: it is its own inverse)."""
        return self._swap(tensor)

    def _swap(self, tensor: torch.Tensor) -> torch.Tensor:
        """[g·A, B, *k] -> [g·B, A, *k], swapping A and B within each of the ``groups``."""
        if not self.transposed or tensor.dim() < 2:
            return tensor
        if self.groups == 1:
            return tensor.transpose(0, 1)
        g, rest = self.groups, tensor.shape[2:]
        a, b = tensor.shape[0] // g, tensor.shape[1]
        return tensor.reshape(g, a, b, *rest).transpose(1, 2).reshape(g * b, a, *rest)


PLAIN = OutView()  # output channels already first: Conv, Linear


def out_view(cell: nn.Module) -> OutView:
    """The output-channels-first view of ``cell``'s weight (ConvTranspose: transposed, with its
    groups; also a layer declaring ``out_channel_dim = 1``)."""
    if isinstance(cell, nn.modules.conv._ConvTransposeNd) \
            or getattr(cell, "out_channel_dim", 0) == 1:
        return OutView(transposed=True, groups=int(getattr(cell, "groups", 1)))
    return PLAIN


def part_stats(stats: Mapping[str, torch.Tensor], weight: torch.Tensor,
               part: slice) -> Dict[str, torch.Tensor]:
    """The statistics of one input block: weight-shaped ones are sliced like the weight."""
    return {name: value[:, part] if value.shape == weight.shape else value
            for name, value in stats.items()}


def scores_of(criterion: Criterion, weight: torch.Tensor, stats: Mapping[str, torch.Tensor],
              parts: Sequence[slice], params: Mapping,
              view: OutView = PLAIN) -> List[torch.Tensor]:
    """The criterion's scores of each input block of ``weight``, output channels first: the
    criterion sees the block and its weight-shaped statistics through ``view``
    (:class:`OutView`), so channel and activation criteria read ConvTranspose layers right."""
    out = []
    with torch.no_grad():
        for part in parts:
            block = weight[:, part]
            seen = {name: view.first(value) if value.shape == block.shape else value
                    for name, value in part_stats(stats, weight, part).items()}
            out.append(criterion(view.first(block), seen, **params))
    return out


def criterion_masks(criterion: Criterion, pattern: Pattern, weight: torch.Tensor,
                    stats: Mapping[str, torch.Tensor], parts: Sequence[slice], target: float,
                    params: Mapping, view: OutView = PLAIN,
                    pruned: Optional[Sequence[torch.Tensor]] = None,
                    compare: Comparison = LAYER) -> List[torch.Tensor]:
    """Bool keep-masks, one per input block, at fraction ``target`` (Layer scope), shaped like
    the blocks; ``view`` sees ``weight`` output channels first (:func:`out_view`). ``pruned``
    (per block, bool, shaped like the block): weights already pruned, whose groups go first
    (masks only grow). ``compare``: which groups compete (the block, or each output row)."""
    masks = []
    for i, (scores, part) in enumerate(zip(scores_of(criterion, weight, stats, parts, params,
                                                     view), parts)):
        shape = view.first(weight[:, part]).shape
        before = None if pruned is None else view.first(pruned[i])
        masks.append(view.back(pattern.keep(scores, target, criterion.norm, shape, before,
                                            compare)))
    return masks


def dead_groups(pattern: Pattern, pruned: Sequence[torch.Tensor],
                view: OutView = PLAIN) -> List[torch.Tensor]:
    """Per block: the bool group tensor of groups whose members are all in ``pruned``."""
    return [pattern.dead(view.first(p), view.first(p).shape) for p in pruned]


def group_scores(criterion: Criterion, pattern: Pattern, weight: torch.Tensor,
                 stats: Mapping[str, torch.Tensor], parts: Sequence[slice],
                 params: Mapping, view: OutView = PLAIN) -> List[torch.Tensor]:
    """Group scores of each input block (what Global scope ranks across cells)."""
    return [pattern.groups(scores, criterion.norm, view.first(weight[:, part]).shape)
            for scores, part in zip(scores_of(criterion, weight, stats, parts, params, view),
                                    parts)]


def expand_groups(pattern: Pattern, keep: torch.Tensor, weight: torch.Tensor,
                  view: OutView = PLAIN) -> torch.Tensor:
    """The per-weight keep-mask (shaped like ``weight``) of a group keep-mask."""
    return view.back(pattern.expand(keep, view.first(weight).shape))


def pattern_violations(pattern: Pattern, mask: torch.Tensor, parts: Sequence[slice],
                       target: float, view: OutView = PLAIN) -> Tuple[int, int]:
    """``(groups the pattern forbids, groups)`` of ``mask`` at ``target``, each input block
    on its own (masks are made per block, so no group spans two inputs)."""
    counts = [pattern.violations(view.first(mask[:, part]), target) for part in parts]
    return sum(bad for bad, _ in counts), sum(groups for _, groups in counts)


def ones_mask(weight: torch.Tensor) -> torch.Tensor:
    """A mask of ones, contiguous, in the weights' dtype (float32 for other weights); filled
    through numpy on the CPU (one thread: torch's fill at 2 threads is several times slower
    on a shared machine)."""
    dtype = weight.dtype if weight.is_floating_point() else torch.float32
    mask = torch.empty(weight.shape, dtype=dtype, device=weight.device)
    if mask.device.type == "cpu" and dtype in (torch.float32, torch.float64, torch.float16):
        mask.numpy().fill(1.0)
    else:
        mask.fill_(1.0)
    return mask


def copy_into(target: torch.Tensor, source: torch.Tensor) -> None:
    """``target.copy_(source)``; on the CPU through numpy, one thread: torch's copy of a
    strided view runs on every intra-op thread and is about 5x slower at 2 threads than at
    one (0.17 s against 0.03 s for a 25M-weight Global ranking's masks)."""
    if target.device.type == "cpu" and source.device.type == "cpu" and \
            target.dtype != torch.bfloat16 and source.dtype != torch.bfloat16 and \
            not target.requires_grad and target.shape == source.shape:
        target.numpy()[...] = source.numpy()
    else:
        target.copy_(source)
