"""Threshold: N2D2's thresholding cell (``Threshold`` required; config Operation, MaxValue).

Operations, as OpenCV's: ``Binary`` x > T ? MaxValue : 0, ``BinaryInverted`` x > T ? 0 :
MaxValue, ``Truncate`` x > T ? T : x, ``ToZero`` x > T ? x : 0, ``ToZeroInverted``
x > T ? 0 : x. N2D2 does not back-propagate through it.
"""

from __future__ import annotations

import torch
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import (concat, read_nb_outputs, read_params, same_size,
                                  total_channels, warn_params_in_section)
from n2prune.ini.params import Key
from n2prune.ini.values import read_enum, read_float

OPERATIONS = ["Binary", "BinaryInverted", "Truncate", "ToZero", "ToZeroInverted"]


class Threshold(nn.Module):
    """Apply one of N2D2's threshold operations element-wise."""

    PARAMS = (Key("Operation", "operation", read_enum(OPERATIONS), "Binary"),
              Key("MaxValue", "max_value", read_float, 1.0))

    def __init__(self, nb_outputs: int, threshold: float, operation: str = "Binary",
                 max_value: float = 1.0):
        super().__init__()
        if operation not in OPERATIONS:
            raise ValueError(f"Threshold: operation={operation!r}, expected one of {OPERATIONS}")
        self.nb_outputs, self.threshold = nb_outputs, float(threshold)
        self.operation, self.max_value = operation, float(max_value)

    @torch.no_grad()
    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = concat(inputs)
        above = x > self.threshold
        zero = torch.zeros_like(x)
        if self.operation == "Binary":
            return torch.where(above, torch.full_like(x, self.max_value), zero)
        if self.operation == "BinaryInverted":
            return torch.where(above, zero, torch.full_like(x, self.max_value))
        if self.operation == "Truncate":
            return torch.where(above, torch.full_like(x, self.threshold), x)
        if self.operation == "ToZero":
            return torch.where(above, x, zero)
        return torch.where(above, zero, x)

    def extra_repr(self) -> str:
        return (f"{self.nb_outputs}, threshold={self.threshold}, operation={self.operation!r}, "
                f"max_value={self.max_value}")


@CELLS.register("Threshold")
def build_threshold(ctx: BuildContext):
    """[cell] Type=Threshold: NbOutputs, Threshold (required); config: Operation, MaxValue."""
    nb_outputs = read_nb_outputs(ctx, total_channels(ctx.input_shapes), "the inputs' channels")
    height, width = same_size(ctx)
    threshold = ctx.section.get("Threshold", read_float)
    warn_params_in_section(ctx, [key.ini for key in Threshold.PARAMS])
    module = Threshold(nb_outputs, threshold, **read_params(ctx, Threshold.PARAMS))
    return module, (nb_outputs, height, width)
