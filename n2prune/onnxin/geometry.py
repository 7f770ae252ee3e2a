"""Window geometry of ONNX Conv and pooling nodes: kernel, strides, dilations and the four
paddings, ``auto_pad`` resolved the way ONNX defines it (not N2D2's ``k - s`` shortcut)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

from n2prune.onnxin.ops import NodeContext


@dataclass(frozen=True)
class Window:
    """(height, width) pairs, ONNX order; ``pads`` is (top, left, bottom, right)."""

    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    dilation: Tuple[int, int]
    pads: Tuple[int, int, int, int]

    @property
    def symmetric(self) -> bool:
        top, left, bottom, right = self.pads
        return top == bottom and left == right


def _pair(ctx: NodeContext, name: str, values: Sequence[int], default: int) -> Tuple[int, int]:
    values = list(values) if values is not None else [default, default]
    if len(values) != 2:
        raise ctx.error(f"{name}={values}: only 2-D windows are imported")
    return int(values[0]), int(values[1])


def read_window(ctx: NodeContext, size: Tuple[int, int],
                kernel: Sequence[int]) -> Window:
    """The window of ``ctx.node`` over an input of (height, width) ``size``."""
    kernel = _pair(ctx, "kernel_shape", kernel, 1)
    stride = _pair(ctx, "strides", ctx.attr("strides"), 1)
    dilation = _pair(ctx, "dilations", ctx.attr("dilations"), 1)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", "VALID"):
        pads = ctx.attr("pads") or [0, 0, 0, 0]
        if auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        if len(pads) != 4:
            raise ctx.error(f"pads={list(pads)}: only 2-D windows are imported")
        return Window(kernel, stride, dilation, tuple(int(p) for p in pads))
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.error(f"auto_pad={auto_pad!r} is not one of NOTSET, VALID, SAME_UPPER, "
                        f"SAME_LOWER")
    begin, end = [], []
    for axis in range(2):
        out = -(-size[axis] // stride[axis])
        total = max((out - 1) * stride[axis] + dilation[axis] * (kernel[axis] - 1) + 1
                    - size[axis], 0)
        small, large = total // 2, total - total // 2
        first, last = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        begin.append(first)
        end.append(last)
    return Window(kernel, stride, dilation, (begin[0], begin[1], end[0], end[1]))


def output_size(window: Window, size: Tuple[int, int], ceil_mode: bool = False
                ) -> Tuple[int, int]:
    """ONNX's output (height, width) of ``window`` over ``size``."""
    result = []
    for axis in range(2):
        padded = size[axis] + window.pads[axis] + window.pads[axis + 2]
        span = padded - window.dilation[axis] * (window.kernel[axis] - 1) - 1
        count = (-(-span // window.stride[axis]) if ceil_mode else span // window.stride[axis])
        count += 1
        if ceil_mode and (count - 1) * window.stride[axis] >= size[axis] + window.pads[axis]:
            count -= 1  # PyTorch and ONNX drop a last window starting in the end padding
        result.append(count)
    return result[0], result[1]
