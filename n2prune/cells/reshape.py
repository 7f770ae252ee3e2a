"""Reshape: N2D2's reshape cell (spec §2.7); ``Dims`` in N2D2 order [X, Y, Z(, batch)]."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import (Window, concat, crop, read_window, same_size,
                                  total_channels, windowed_shapes)
from n2prune.ini.values import read_int, read_list, read_uint


def reshape_dims(shape: Tuple[int, int, int], dims: Sequence[int]) -> Tuple[int, int, int]:
    """The (C, H, W) that ``Dims`` gives an input of (C, H, W).

    ``dims`` is X first, padded with 1 to three entries (a fourth, batch entry is ignored);
    ``0`` copies the input dimension and one ``-1`` takes what is left.
    """
    if len(dims) > 4:
        raise ValueError(f"Dims={list(dims)}: at most 4 dimensions")
    channels, height, width = shape
    source = [width, height, channels]
    wanted = (list(dims[:3]) + [1, 1, 1])[:3]
    wanted = [source[i] if d == 0 else d for i, d in enumerate(wanted)]
    if wanted.count(-1) > 1:
        raise ValueError(f"Dims={list(dims)}: at most one dimension can be -1")
    if any(d < -1 for d in wanted):
        raise ValueError(f"Dims={list(dims)}: dimensions must be >= -1")
    size = width * height * channels
    known = 1
    for d in wanted:
        known *= d if d != -1 else 1
    if -1 in wanted and known > 0:
        wanted[wanted.index(-1)] = size // known
    if wanted[0] * wanted[1] * wanted[2] != size:
        raise ValueError(f"Dims={list(dims)} gives {wanted[0]}x{wanted[1]}x{wanted[2]} (XxYxZ), "
                         f"which does not hold the {width}x{height}x{channels} input")
    return wanted[2], wanted[1], wanted[0]


class Reshape(nn.Module):
    """Reshape each sample to (C, H, W) = ``shape``; data order stays x fastest, then y, c."""

    def __init__(self, nb_outputs: int, shape: Tuple[int, int, int], input_window: Window = None):
        super().__init__()
        self.nb_outputs, self.shape, self.input_window = nb_outputs, tuple(shape), input_window

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = concat([crop(x, self.input_window) for x in inputs])
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"{self.nb_outputs}, shape={self.shape}"


@CELLS.register("Reshape")
def build_reshape(ctx: BuildContext):
    """[cell] Type=Reshape: NbOutputs, Dims (required), InputOffset*, Input{Width,Height}."""
    section = ctx.section
    window = read_window(ctx)
    shapes = windowed_shapes(ctx, window)
    height, width = same_size(ctx, shapes)
    nb_outputs = section.get("NbOutputs", read_uint)
    dims = section.get("Dims", read_list(read_int))
    if len(dims) == 4 and dims[3] != 0:
        section.warn("Dims", "the fourth (batch) dimension is ignored")
    try:
        shape = reshape_dims((total_channels(shapes), height, width), dims)
    except ValueError as exc:
        raise section.error("Dims", str(exc)) from None
    if nb_outputs != shape[0]:
        section.warn("NbOutputs", f"is {nb_outputs} but Dims gives {shape[0]} channels")
    return Reshape(nb_outputs, shape, window), shape
