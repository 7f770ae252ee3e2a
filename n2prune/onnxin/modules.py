"""The few ONNX operations N2D2 has no cell for, as small modules on N2D2 maps (N, C, H, W):
channel concatenation, arithmetic with a constant or between maps that broadcast, a clamp,
and pooling with ONNX's
``ceil_mode`` / ``count_include_pad=0`` (N2D2's Pool counts padding and floors sizes)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# op -> f(x, constant); the constant is broadcast on (N, C, H, W)
ARITHMETIC = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}
# Each module has ``nb_outputs``: compaction keeps the channels of a cell type it has no rule
# for (``n2prune.cells.channels.fix_all``), reading the count there.


class Concat(nn.Module):
    """Concatenate the inputs' channels (ONNX Concat on axis 1)."""

    def __init__(self, nb_outputs: int):
        super().__init__()
        self.nb_outputs = nb_outputs

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=1)

    def extra_repr(self) -> str:
        return f"{self.nb_outputs}"


class ConstantOperand(nn.Module):
    """``x <op> constant`` (or ``constant <op> x`` with ``reverse``); the constant is a
    buffer already shaped to broadcast on (N, C, H, W)."""

    def __init__(self, nb_outputs: int, op: str, constant: torch.Tensor, reverse: bool = False):
        super().__init__()
        if op not in ARITHMETIC:
            raise ValueError(f"ConstantOperand: op={op!r}, expected one of {sorted(ARITHMETIC)}")
        self.nb_outputs, self.op, self.reverse = nb_outputs, op, bool(reverse)
        self.register_buffer("constant", constant.to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        function = ARITHMETIC[self.op]
        return function(self.constant, x) if self.reverse else function(x, self.constant)

    def extra_repr(self) -> str:
        side = "constant, x" if self.reverse else "x, constant"
        return f"{self.op}({side}), constant {tuple(self.constant.shape)}"


class Broadcast(nn.Module):
    """``a <op> b`` of two computed maps of different shapes that broadcast (a squeeze-and-
    excitation scale: (N, C, H, W) * (N, C, 1, 1)), which N2D2's ElemWise does not take."""

    def __init__(self, nb_outputs: int, op: str):
        super().__init__()
        if op not in ARITHMETIC:
            raise ValueError(f"Broadcast: op={op!r}, expected one of {sorted(ARITHMETIC)}")
        self.nb_outputs, self.op = nb_outputs, op

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ARITHMETIC[self.op](a, b)

    def extra_repr(self) -> str:
        return self.op


class Clamp(nn.Module):
    """ONNX Clip with bounds other than N2D2's Rectifier clipping [0, max]."""

    def __init__(self, nb_outputs: int, low: float, high: float):
        super().__init__()
        self.nb_outputs, self.low, self.high = nb_outputs, float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(self.low, self.high)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


class OnnxPool(nn.Module):
    """Per-channel pooling with ONNX's options; ``pads`` is (left, right, top, bottom)."""

    def __init__(self, nb_outputs: int, pooling: str, kernel: Sequence[int],
                 stride: Sequence[int], pads: Sequence[int], ceil_mode: bool,
                 count_include_pad: bool):
        super().__init__()
        self.nb_outputs = nb_outputs
        if pooling not in ("Max", "Average"):
            raise ValueError(f"OnnxPool: pooling={pooling!r}, expected 'Max' or 'Average'")
        self.pooling, self.kernel, self.stride = pooling, tuple(kernel), tuple(stride)
        self.pads, self.ceil_mode = tuple(pads), bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = self.pads
        symmetric = left == right and top == bottom
        padding = (top, left) if symmetric else (0, 0)
        if not symmetric:
            value = float("-inf") if self.pooling == "Max" else 0.0
            x = F.pad(x, (left, right, top, bottom), value=value)
        if self.pooling == "Max":
            return F.max_pool2d(x, self.kernel, self.stride, padding, ceil_mode=self.ceil_mode)
        if not symmetric and not self.count_include_pad:
            raise ValueError("OnnxPool: asymmetric padding with count_include_pad=0")
        return F.avg_pool2d(x, self.kernel, self.stride, padding, ceil_mode=self.ceil_mode,
                            count_include_pad=self.count_include_pad)

    def extra_repr(self) -> str:
        return (f"{self.pooling}, kernel={self.kernel}, stride={self.stride}, pads={self.pads}, "
                f"ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad}")
