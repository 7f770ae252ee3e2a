"""Normalize: N2D2's per-position normalization across channels (``Norm`` required).

``L2``: y = x / sqrt(Σ_c x_c² + 1e-6) at each (x, y). N2D2 declares ``L1`` but its only
implementation stops with "Unsupported norm", so ``L1`` is refused at build time.
"""

from __future__ import annotations

import torch
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import read_nb_outputs
from n2prune.ini.values import read_enum

NORMS = ["L1", "L2"]
EPSILON = 1.0e-6


class Normalize(nn.Module):
    """L2-normalize the channel vector at every position (single input)."""

    def __init__(self, nb_outputs: int, norm: str = "L2"):
        super().__init__()
        if norm != "L2":
            raise ValueError(f"Normalize: norm={norm!r} is not supported (N2D2 implements "
                             f"only 'L2')")
        self.nb_outputs, self.norm = nb_outputs, norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + EPSILON)

    def extra_repr(self) -> str:
        return f"{self.nb_outputs}, norm={self.norm!r}"


@CELLS.register("Normalize")
def build_normalize(ctx: BuildContext):
    """[cell] Type=Normalize: NbOutputs, Norm (required: L2)."""
    if len(ctx.input_shapes) != 1:
        raise ctx.section.error("Input", "a Normalize cell takes exactly one input")
    channels, height, width = ctx.input_shapes[0]
    nb_outputs = read_nb_outputs(ctx, channels, "the input's channels")
    norm = ctx.section.get("Norm", read_enum(NORMS))
    try:
        module = Normalize(nb_outputs, norm)
    except ValueError as exc:
        raise ctx.section.error("Norm", str(exc)) from None
    return module, (nb_outputs, height, width)
