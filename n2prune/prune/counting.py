"""What a mask filler counts and ranks under a Mapping table (``QWeight.PruningCount=``).

A Conv whose inputs are connected through a hand-made ``Mapping(P)`` table holds a full weight
tensor in which the table disconnects some kernels; its forward skips them. N2D2's fillers
(spec §4.5) rank **every** entry of the tensor, the disconnected ones included (they keep
their random initial values, see :func:`n2prune.cells.mapping.n2d2_zeroes_unconnected`), and
compute the number to prune from the tensor's size: ``All``, the default, does the same, bit
for bit. ``Connected`` ranks the connected entries only and counts the target over them, so
``Threshold=0.9`` prunes 90 % of the live weights; the disconnected entries' mask bits are 0.

A member is a :class:`PruningCount`: ``counted(cell, part)`` gives the bool tensor (shaped like
the weight block ``weight[:, part]``) of the entries the filler ranks, or None for all of them.

>>> import torch
>>> from n2prune.cells import Conv
>>> conv = Conv(2, 2, kernel_dims=1, connection=torch.tensor([[1, 1], [0, 1]]))
>>> PRUNING_COUNTS.get("Connected").counted(conv, slice(None))[:, :, 0, 0].tolist()
[[True, True], [False, True]]
>>> PRUNING_COUNTS.get("All").counted(conv, slice(None)) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from n2prune.registry import Registry


@dataclass(frozen=True)
class PruningCount:
    """A ``PruningCount`` value: ``counted(cell, part)`` -> the entries ranked, None for all."""

    name: str
    counted: Callable[[nn.Module, slice], Optional[torch.Tensor]]


PRUNING_COUNTS: Registry = Registry("pruning count")


def _every_entry(cell: nn.Module, part: slice) -> Optional[torch.Tensor]:
    return None


def _connected_entries(cell: nn.Module, part: slice) -> Optional[torch.Tensor]:
    connection = getattr(cell, "_buffers", {}).get("connection")
    if connection is None:
        return None
    weight = cell.weight[:, part]
    if connection.dim() != weight.dim():   # a layer keeping its own map: refuse, not guess
        raise ValueError(f"PruningCount=Connected: {type(cell).__name__}'s connection "
                         f"{tuple(connection.shape)} does not broadcast to its weight "
                         f"{tuple(cell.weight.shape)}")
    return (connection[:, part] != 0).expand_as(weight)


for _member in (PruningCount("All", _every_entry),
                PruningCount("Connected", _connected_entries)):
    PRUNING_COUNTS.register(_member.name)(_member)


def fill_counted(filler: Callable[..., torch.Tensor], weight: torch.Tensor, mask: torch.Tensor,
                 counted: Optional[torch.Tensor], target: float, **options: Any) -> torch.Tensor:
    """``filler``'s new mask for one weight block, ranking only the ``counted`` entries (all
    when None); the entries left out get 0. Same shape as ``mask``."""
    if counted is None:
        return filler(weight, mask, target, **options)   # the caller's copy converts it
    out = torch.zeros_like(mask)
    if bool(counted.any()):
        out[counted] = filler(weight[counted], mask[counted], target, **options).to(mask)
    return out


def fill_blocks(filler: Callable[..., torch.Tensor], count: PruningCount, cell: nn.Module,
                mask: torch.Tensor, parts: Sequence[slice], target: float,
                **options: Any) -> None:
    """Refill each input block ``mask[:, part]`` in place with ``filler``'s mask of ``cell``'s
    weight block at ``target``, ranking the entries ``count`` says (:func:`fill_counted`)."""
    for part in parts:
        new = fill_counted(filler, cell.weight[:, part], mask[:, part], count.counted(cell, part),
                           target, **options)
        mask[:, part].copy_(new)  # converts dtype and device in the same pass
