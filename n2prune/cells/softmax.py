"""Softmax: N2D2's softmax cell (spec §2.7), over channels at each (x, y) position."""

from __future__ import annotations

import torch
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import (Window, concat, crop, read_nb_outputs, read_window,
                                  same_size, total_channels, windowed_shapes)
from n2prune.ini.values import read_bool, read_uint


class Softmax(nn.Module):
    """Softmax over the channels, in groups of ``group_size`` channels (0 = all at once).

    ``with_loss`` is N2D2's ``WithLoss=1``: its backward passes the target error through
    unchanged, i.e. softmax + cross-entropy. The forward pass is the same either way; a
    training loop reproduces ``WithLoss=1`` by applying ``CrossEntropyLoss`` to this cell's
    *input* (the logits) instead of differentiating through the softmax.
    """

    def __init__(self, nb_outputs: int, with_loss: bool = False, group_size: int = 0,
                 input_window: Window = None):
        super().__init__()
        if isinstance(nb_outputs, bool) or not isinstance(nb_outputs, int) or nb_outputs <= 0:
            raise ValueError(f"Softmax: nb_outputs must be a positive integer, "
                             f"got {nb_outputs!r}")
        if group_size < 0 or (group_size and nb_outputs % group_size):
            raise ValueError(f"Softmax: group_size={group_size} must divide "
                             f"nb_outputs={nb_outputs} (0 = one group)")
        self.nb_outputs, self.with_loss = nb_outputs, bool(with_loss)
        self.group_size, self.input_window = group_size, input_window

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = concat([crop(x, self.input_window) for x in inputs])
        if not self.group_size or self.group_size == x.shape[1]:
            return torch.softmax(x, dim=1)
        n, c, h, w = x.shape
        grouped = x.reshape(n, c // self.group_size, self.group_size, h, w)
        return torch.softmax(grouped, dim=2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return (f"{self.nb_outputs}, with_loss={self.with_loss}, "
                f"group_size={self.group_size}")


@CELLS.register("Softmax")
def build_softmax(ctx: BuildContext):
    """[cell] Type=Softmax: NbOutputs, WithLoss, GroupSize, InputOffset*, Input{Width,Height}."""
    window = read_window(ctx)
    shapes = windowed_shapes(ctx, window)
    channels = total_channels(shapes)
    nb_outputs = read_nb_outputs(ctx, channels, "the inputs' channels")
    with_loss = ctx.section.get("WithLoss", read_bool, False)
    group_size = ctx.section.get("GroupSize", read_uint, 0)
    if group_size and nb_outputs % group_size:
        raise ctx.section.error("GroupSize", f"{group_size} must divide NbOutputs={nb_outputs}")
    height, width = same_size(ctx, shapes)
    return Softmax(nb_outputs, with_loss, group_size, window), (nb_outputs, height, width)
