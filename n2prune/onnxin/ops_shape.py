"""ONNX element-wise arithmetic, Concat, the shape operators (Flatten, Reshape, Squeeze,
Unsqueeze, Identity), Pad and Resize.

Two computed tensors of one shape combine in N2D2's ElemWise cell (Add, Sub, Mul, Sum, Max),
of shapes that broadcast in a :class:`~n2prune.onnxin.modules.Broadcast`; a computed tensor
with a constant in a :class:`~n2prune.onnxin.modules.ConstantOperand`.
Shape operators that leave an N2D2 map unchanged (``(N, C)`` <-> ``(N, C, 1, 1)``) make no
cell; a real reshape is N2D2's Reshape cell."""

from __future__ import annotations

from typing import List, Union

import torch

from n2prune.cells.elemwise import ElemWise
from n2prune.cells.padding import Padding
from n2prune.cells.reshape import Reshape
from n2prune.cells.resize import Resize
from n2prune.onnxin.modules import ARITHMETIC, Broadcast, ConstantOperand, Concat
from n2prune.onnxin.ops import OPS, Built, NodeContext, Value, same_maps
from n2prune.onnxin.ops_weighted import need_rank

ELEMWISE = {"Add": ("Sum", None), "Sum": ("Sum", None), "Sub": ("Sum", [1.0, -1.0]),
            "Mul": ("Prod", None), "Max": ("Max", None)}


def _as_map(ctx: NodeContext, constant: torch.Tensor, value: Value) -> torch.Tensor:
    """``constant`` shaped to broadcast on the (N, C, H, W) map of ``value``."""
    if constant.dim() > value.rank:
        raise ctx.error(f"constant of shape {tuple(constant.shape)} has more dimensions than "
                        f"the rank-{value.rank} tensor {value.cell!r}")
    full = constant.reshape((1,) * (value.rank - constant.dim()) + tuple(constant.shape))
    if value.rank == 2:
        full = full.reshape(*full.shape, 1, 1)
    try:
        torch.broadcast_shapes(tuple(full.shape), (1, *value.shape))
    except RuntimeError:
        raise ctx.error(f"constant of shape {tuple(constant.shape)} does not broadcast on "
                        f"{value.cell!r} {value.shape}") from None
    if torch.broadcast_shapes(tuple(full.shape), (1, *value.shape)) != (1, *value.shape):
        raise ctx.error(f"constant of shape {tuple(constant.shape)} would grow {value.cell!r}")
    return full.to(torch.float32)


def _arithmetic(ctx: NodeContext) -> Built:
    op = ctx.node.op_type
    constants = [ctx.is_constant(i) for i in range(len(ctx.node.inputs))]
    if len(ctx.node.inputs) == 2 and any(constants) and op in ("Add", "Sub", "Mul", "Div"):
        if all(constants):
            raise ctx.error("both operands are constants (fold them before importing)")
        reverse = constants[0]
        x = ctx.value(1 if reverse else 0)
        constant = _as_map(ctx, ctx.constant(0 if reverse else 1, "the constant operand"), x)
        return Built(op, ConstantOperand(x.shape[0], op, constant, reverse), x.shape, [x.cell],
                     rank=x.rank)
    values = [ctx.value(i) for i in range(len(ctx.node.inputs))]
    if len(values) == 2 and values[0].shape != values[1].shape and op in ARITHMETIC:
        return _broadcast(ctx, op, values)
    if op not in ELEMWISE:
        raise ctx.error(f"{op} of two computed tensors of one shape is not imported (only with "
                        f"a constant or a broadcast operand)")
    shape = same_maps(ctx, values, op)
    operation, weights = ELEMWISE[op]
    module = ElemWise(shape[0], operation, weights=weights or ())
    return Built("ElemWise", module, shape, [v.cell for v in values], rank=values[0].rank)


def _broadcast(ctx: NodeContext, op: str, values: List[Value]) -> Built:
    """Two maps of different shapes: the result must have the shape of one of them."""
    a, b = values
    try:
        shape = tuple(torch.broadcast_shapes(a.shape, b.shape))
    except RuntimeError:
        shape = None
    if shape not in (a.shape, b.shape) or a.rank != b.rank:
        raise ctx.error(f"{op} of {a.cell!r} {a.shape} and {b.cell!r} {b.shape}: the operands "
                        f"do not broadcast to the shape of one of them")
    return Built(op, Broadcast(shape[0], op), shape, [a.cell, b.cell], rank=a.rank)


for _op in ("Add", "Sub", "Mul", "Div", "Sum", "Max"):
    OPS.register(_op)(_arithmetic)


@OPS.register("Concat")
def build_concat(ctx: NodeContext) -> Built:
    """Concatenation of the channels (axis 1)."""
    values = [ctx.value(i) for i in range(len(ctx.node.inputs))]
    rank = values[0].rank
    axis = int(ctx.attr("axis", 1))
    if axis < 0:
        axis += rank
    if axis != 1 or any(v.rank != rank for v in values):
        raise ctx.error(f"axis={ctx.attr('axis')}: only the channels of same-rank tensors are "
                        f"concatenated")
    sizes = {v.shape[1:] for v in values}
    if len(sizes) != 1:
        described = ", ".join(f"{v.cell} {v.shape}" for v in values)
        raise ctx.error(f"inputs of different sizes: {described}")
    channels = sum(v.shape[0] for v in values)
    shape = (channels, *values[0].shape[1:])
    return Built("Concat", Concat(channels), shape, [v.cell for v in values], rank=rank)


def _flat(ctx: NodeContext, x: Value) -> Union[Value, Built]:
    """x as an (N, C·H·W) tensor: the same map when H = W = 1, else a Reshape cell."""
    size = x.shape[0] * x.shape[1] * x.shape[2]
    if x.shape[1:] == (1, 1):
        return Value(x.cell, x.shape, rank=2)
    return Built("Reshape", Reshape(size, (size, 1, 1)), (size, 1, 1), [x.cell], rank=2)


@OPS.register("Flatten")
def build_flatten(ctx: NodeContext) -> Union[Value, Built]:
    """Flatten at axis 1 (to (N, C·H·W))."""
    if int(ctx.attr("axis", 1)) != 1:
        raise ctx.error(f"axis={ctx.attr('axis')}: only Flatten at axis 1 is imported")
    return _flat(ctx, ctx.value(0))


@OPS.register("Reshape")
def build_reshape(ctx: NodeContext) -> Union[Value, Built]:
    """Reshape to a fixed (N, K) or (N, C, H, W) (the batch written as 0, -1 or its size)."""
    x = ctx.value(0)
    target = [int(v) for v in ctx.constant(1, "the shape").reshape(-1).tolist()]
    size = x.shape[0] * x.shape[1] * x.shape[2]
    dims = target[1:]
    if dims.count(-1) == 1:
        known = 1
        for d in dims:
            known *= d if d != -1 else 1
        dims[dims.index(-1)] = size // max(known, 1)
    if len(dims) == 1 and dims[0] == size:
        return _flat(ctx, x)
    if len(dims) == 3 and all(d > 0 for d in dims) and dims[0] * dims[1] * dims[2] == size:
        shape = tuple(dims)
        if shape == x.shape:
            return Value(x.cell, x.shape, rank=4)
        return Built("Reshape", Reshape(shape[0], shape), shape, [x.cell])
    raise ctx.error(f"shape {target} of {x.cell!r} {x.shape}: only fixed (N, K) and "
                    f"(N, C, H, W) shapes are imported")


def _axes(ctx: NodeContext) -> List[int]:
    axes = ctx.attr("axes")
    if axes is None and ctx.has_input(1):
        axes = ctx.constant(1, "the axes").reshape(-1).tolist()
    return sorted(int(a) for a in (axes or []))


@OPS.register("Squeeze")
def build_squeeze(ctx: NodeContext) -> Value:
    """Dropping the 1x1 spatial axes of an (N, C, 1, 1) tensor: the same map."""
    x = ctx.value(0)
    if x.rank != 4 or x.shape[1:] != (1, 1) or _axes(ctx) not in ([2, 3], [-2, -1], []):
        raise ctx.error(f"axes {_axes(ctx)} of {x.cell!r} {x.shape}: only (N, C, 1, 1) -> "
                        f"(N, C) is imported")
    return Value(x.cell, x.shape, rank=2)


@OPS.register("Unsqueeze")
def build_unsqueeze(ctx: NodeContext) -> Value:
    """Adding two spatial axes to an (N, C) tensor: the same map."""
    x = ctx.value(0)
    if x.rank != 2 or _axes(ctx) not in ([2, 3], [-2, -1]):
        raise ctx.error(f"axes {_axes(ctx)} of {x.cell!r}: only (N, C) -> (N, C, 1, 1) is "
                        f"imported")
    return Value(x.cell, x.shape, rank=4)


OPS.register("Identity")(lambda ctx: ctx.value(0))


@OPS.register("Shape")
def build_shape(ctx: NodeContext) -> torch.Tensor:
    """The shape as a constant, the batch written -1 (exporters compute a Reshape's target
    from it: ``x.view(x.size(0), -1)``; a Reshape reads its first entry as the batch)."""
    x = ctx.value(0)
    dims = [-1, *x.shape] if x.rank == 4 else [-1, x.shape[0]]
    start, end = ctx.attr("start", 0), ctx.attr("end")
    return torch.tensor(dims[start:end], dtype=torch.int64)


@OPS.register("Pad")
def build_pad(ctx: NodeContext) -> Built:
    """Zero padding of the spatial axes: N2D2's Padding cell."""
    x = ctx.value(0)
    need_rank(ctx, x, 4)
    if ctx.attr("mode", "constant") != "constant":
        raise ctx.error(f"mode={ctx.attr('mode')!r}: only constant (zero) padding is imported")
    pads = ctx.attr("pads")
    if ctx.has_input(1):
        pads = ctx.constant(1, "the pads").reshape(-1).tolist()
    value = float(ctx.constant(2, "the value").reshape(-1)[0]) if ctx.has_input(2) else \
        float(ctx.attr("value", 0.0))
    if pads is None or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or value != 0.0:
        raise ctx.error(f"pads={pads} value={value}: only zero padding of the two spatial "
                        f"axes is imported")
    top, left, bottom, right = (int(pads[i]) for i in (2, 3, 6, 7))
    channels, height, width = x.shape
    module = Padding(channels, top, bottom, left, right)
    return Built("Padding", module, (channels, height + top + bottom, width + left + right),
                 [x.cell])


RESIZE_MODES = {("nearest", "asymmetric"): ("NearestNeighbor", False),
                ("linear", "align_corners"): ("BilinearTF", True),
                ("linear", "asymmetric"): ("BilinearTF", False)}


@OPS.register("Resize")
def build_resize(ctx: NodeContext) -> Built:
    """Nearest (asymmetric, floor) or linear (align_corners or asymmetric) resizing, as N2D2's
    Resize cell computes them; half-pixel modes are refused."""
    x = ctx.value(0)
    need_rank(ctx, x, 4)
    mode = ctx.attr("mode", "nearest")
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
    if (mode, transform) not in RESIZE_MODES or (
            mode == "nearest" and ctx.attr("nearest_mode", "round_prefer_floor") != "floor"):
        raise ctx.error(f"mode={mode!r} with coordinate_transformation_mode={transform!r}: "
                        f"imported are nearest/asymmetric/floor, linear/align_corners and "
                        f"linear/asymmetric")
    channels, height, width = x.shape
    if ctx.has_input(3) and ctx.constant(3, "sizes").numel():
        out_h, out_w = (int(v) for v in ctx.constant(3, "sizes").reshape(-1)[2:].tolist())
    else:
        scales = ctx.constant(2, "scales").reshape(-1).tolist()
        if len(scales) != 4 or scales[0] != 1 or scales[1] != 1:
            raise ctx.error(f"scales={scales}: only the spatial axes are resized")
        out_h, out_w = int(height * scales[2]), int(width * scales[3])
    n2d2_mode, align = RESIZE_MODES[(mode, transform)]
    module = Resize(channels, out_w, out_h, n2d2_mode, align_corners=align)
    return Built("Resize", module, (channels, out_h, out_w), [x.cell])
