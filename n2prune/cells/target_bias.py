"""TargetBias: N2D2's cell adding ``Bias`` to the target outputs while training (AM-Softmax).

In training, y = x + Bias where the output is a target (one-hot > 0) and x > -Bias; else
y = x. N2D2 finds the targets in the error its target wrote back; here the training loop
gives them with :meth:`TargetBias.set_target` before the forward pass. Without a target (or
in eval mode) the cell is the identity.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import read_nb_outputs
from n2prune.ini.values import read_float


class TargetBias(nn.Module):
    """Add ``bias`` to target outputs in training (see module docstring)."""

    def __init__(self, nb_outputs: int, bias: float):
        super().__init__()
        self.nb_outputs, self.bias = nb_outputs, float(bias)
        self.target: Optional[torch.Tensor] = None

    def set_target(self, target: Optional[torch.Tensor]) -> None:
        """One-hot (or any > 0 marking) targets shaped like the output, or None."""
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.target is None:
            return x
        if self.target.shape != x.shape:
            raise ValueError(f"TargetBias: target shape {tuple(self.target.shape)} differs "
                             f"from the input's {tuple(x.shape)}")
        boost = (self.target > 0) & (x > -self.bias)
        return x + self.bias * boost.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.nb_outputs}, bias={self.bias}"


@CELLS.register("TargetBias")
def build_target_bias(ctx: BuildContext):
    """[cell] Type=TargetBias: NbOutputs, Bias (required)."""
    if len(ctx.input_shapes) != 1:
        raise ctx.section.error("Input", "a TargetBias cell takes exactly one input")
    channels, height, width = ctx.input_shapes[0]
    nb_outputs = read_nb_outputs(ctx, channels, "the input's channels")
    module = TargetBias(nb_outputs, ctx.section.get("Bias", read_float))
    return module, (nb_outputs, height, width)
