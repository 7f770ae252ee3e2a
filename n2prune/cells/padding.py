"""Padding: N2D2's zero-padding cell (spec §2.7); a negative padding crops."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import concat, read_nb_outputs, same_size, total_channels
from n2prune.ini.values import read_int


class Padding(nn.Module):
    """Pad with zeros (crop when negative): output W + left + right, H + top + bottom."""

    def __init__(self, nb_outputs: int, top_padding: int, bottom_padding: int,
                 left_padding: int, right_padding: int):
        super().__init__()
        self.nb_outputs = nb_outputs
        self.top, self.bottom = int(top_padding), int(bottom_padding)
        self.left, self.right = int(left_padding), int(right_padding)

    def output_size(self, height: int, width: int) -> tuple:
        return height + self.top + self.bottom, width + self.left + self.right

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return F.pad(concat(inputs), (self.left, self.right, self.top, self.bottom))

    def extra_repr(self) -> str:
        return (f"{self.nb_outputs}, top={self.top}, bottom={self.bottom}, left={self.left}, "
                f"right={self.right}")


@CELLS.register("Padding")
def build_padding(ctx: BuildContext):
    """[cell] Type=Padding: NbOutputs, Top/Bottom/Left/RightPadding (required, signed)."""
    section = ctx.section
    nb_outputs = read_nb_outputs(ctx, total_channels(ctx.input_shapes), "the inputs' channels")
    sides = [section.get(key, read_int) for key in
             ("TopPadding", "BottomPadding", "LeftPadding", "RightPadding")]
    module = Padding(nb_outputs, *sides)
    out_h, out_w = module.output_size(*same_size(ctx))
    if out_h <= 0 or out_w <= 0:
        key = "TopPadding" if out_h <= 0 else "LeftPadding"
        raise section.error(key, f"cropping leaves an empty {out_w}x{out_h} output")
    return module, (nb_outputs, out_h, out_w)
