"""Scaling: N2D2's scaling cell (spec §2.7): every channel multiplied by ``Factor``."""

from __future__ import annotations

import torch
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import concat, read_nb_outputs, same_size, total_channels
from n2prune.ini.values import read_float


class Scaling(nn.Module):
    """y = factor·x."""

    def __init__(self, nb_outputs: int, factor: float):
        super().__init__()
        self.nb_outputs, self.factor = nb_outputs, float(factor)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return concat(inputs) * self.factor

    def extra_repr(self) -> str:
        return f"{self.nb_outputs}, factor={self.factor}"


@CELLS.register("Scaling")
def build_scaling(ctx: BuildContext):
    """[cell] Type=Scaling: NbOutputs, Factor (required)."""
    nb_outputs = read_nb_outputs(ctx, total_channels(ctx.input_shapes), "the inputs' channels")
    height, width = same_size(ctx)
    module = Scaling(nb_outputs, ctx.section.get("Factor", read_float))
    return module, (nb_outputs, height, width)
