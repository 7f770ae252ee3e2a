"""ONNX pooling, activations, Softmax and Dropout as N2D2 cells (Pool, Activation, Softmax,
Dropout); pooling N2D2's Pool cannot reproduce (``ceil_mode``, ``count_include_pad=0`` with
padding, asymmetric pads) becomes an :class:`~n2prune.onnxin.modules.OnnxPool`."""

from __future__ import annotations

from typing import List

import torch

from n2prune.cells.activation import ActivationCell
from n2prune.cells.activation_functions import Logistic, Rectifier, Softplus, Tanh
from n2prune.cells.dropout import Dropout
from n2prune.cells.lrn import LRN
from n2prune.cells.pool import Pool
from n2prune.cells.softmax import Softmax
from n2prune.onnxin.geometry import output_size, read_window
from n2prune.onnxin.modules import Clamp, OnnxPool
from n2prune.onnxin.ops import OPS, Built, NodeContext
from n2prune.onnxin.ops_weighted import need_rank

POOLINGS = {"MaxPool": "Max", "AveragePool": "Average", "GlobalMaxPool": "Max",
            "GlobalAveragePool": "Average", "ReduceMax": "Max", "ReduceMean": "Average"}


def _pool(ctx: NodeContext) -> List[Built]:
    x = ctx.value(0)
    need_rank(ctx, x, 4)
    channels, height, width = x.shape
    pooling = POOLINGS[ctx.node.op_type]
    rank = 4
    if ctx.node.op_type.startswith("Reduce"):   # over the spatial axes: a global pooling
        axes = ctx.attr("axes")
        if axes is None and ctx.has_input(1):
            axes = ctx.constant(1, "the axes").reshape(-1).tolist()
        if sorted(int(a) % 4 for a in axes or []) != [2, 3]:
            raise ctx.error(f"axes={axes}: only the two spatial axes are reduced (a global "
                            f"pooling)")
        rank = 4 if ctx.attr("keepdims", 1) else 2
    if ctx.node.op_type.startswith(("Global", "Reduce")):
        window = read_window(ctx, (height, width), [height, width])
    else:
        if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
            raise ctx.error("the Indices output of MaxPool is not imported")
        window = read_window(ctx, (height, width), ctx.attr("kernel_shape"))
    if window.dilation != (1, 1):
        raise ctx.error(f"dilations={list(window.dilation)} are not imported for pooling")
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    include_pad = bool(ctx.attr("count_include_pad", 0))
    out_h, out_w = output_size(window, (height, width), ceil_mode)
    if out_h <= 0 or out_w <= 0:
        raise ctx.error(f"pooling a {width}x{height} input gives an empty output")
    padded = any(window.pads)
    native = window.symmetric and not ceil_mode and (
        pooling == "Max" or include_pad or not padded)
    kernel = (window.kernel[1], window.kernel[0])
    stride = (window.stride[1], window.stride[0])
    if native:  # N2D2's Pool, per channel
        top, left = window.pads[:2]
        module = Pool(channels, kernel, stride, (left, top), pooling,
                      mapping=torch.eye(channels, dtype=torch.bool))
        if module.output_size(height, width) == (out_h, out_w):
            return [Built("Pool", module, (channels, out_h, out_w), [x.cell], rank=rank)]
    if not window.symmetric and pooling == "Average" and not include_pad:
        raise ctx.error("AveragePool with asymmetric pads and count_include_pad=0 is not "
                        "imported")
    top, left, bottom, right = window.pads
    module = OnnxPool(channels, pooling, window.kernel, window.stride,
                      (left, right, top, bottom), ceil_mode, include_pad)
    return [Built("OnnxPool", module, (channels, out_h, out_w), [x.cell])]


for _op in POOLINGS:
    OPS.register(_op)(_pool)


def _activation(ctx: NodeContext, function) -> Built:
    x = ctx.value(0)
    return Built("Activation", ActivationCell(x.shape[0], function), x.shape, [x.cell],
                 rank=x.rank)


OPS.register("Relu")(lambda ctx: _activation(ctx, Rectifier()))
OPS.register("Sigmoid")(lambda ctx: _activation(ctx, Logistic()))
OPS.register("Tanh")(lambda ctx: _activation(ctx, Tanh()))
OPS.register("Softplus")(lambda ctx: _activation(ctx, Softplus()))
OPS.register("LeakyRelu")(
    lambda ctx: _activation(ctx, Rectifier(leak_slope=float(ctx.attr("alpha", 0.01)))))


@OPS.register("Clip")
def build_clip(ctx: NodeContext) -> Built:
    """Clip to [0, max] is N2D2's clipped Rectifier (ReLU6); other bounds a Clamp."""
    low, high = ctx.attr("min", float("-inf")), ctx.attr("max", float("inf"))
    if ctx.has_input(1):
        low = float(ctx.constant(1, "min").reshape(-1)[0])
    if ctx.has_input(2):
        high = float(ctx.constant(2, "max").reshape(-1)[0])
    if low == 0.0 and 0.0 < high < float("inf"):
        return _activation(ctx, Rectifier(clipping=high))
    if low == 0.0 and high == float("inf"):
        return _activation(ctx, Rectifier())
    x = ctx.value(0)
    return Built("Clip", Clamp(x.shape[0], low, high), x.shape, [x.cell], rank=x.rank)


@OPS.register("Softmax")
def build_softmax(ctx: NodeContext) -> Built:
    """Softmax over the channels (axis 1, or -1 of an (N, C) tensor)."""
    x = ctx.value(0)
    axis = int(ctx.attr("axis", -1 if ctx.graph.opset >= 13 else 1))
    if axis < 0:
        axis += x.rank
    if axis != 1:
        raise ctx.error(f"axis={ctx.attr('axis')} on a rank-{x.rank} tensor: only the "
                        f"channel axis is imported")
    return Built("Softmax", Softmax(x.shape[0]), x.shape, [x.cell], rank=x.rank)


@OPS.register("Dropout")
def build_dropout(ctx: NodeContext) -> Built:
    """N2D2's Dropout cell: identity at inference, drops with the node's ratio in training."""
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        raise ctx.error("the mask output of Dropout is not imported")
    ratio = float(ctx.attr("ratio", 0.5))
    if ctx.has_input(1):
        ratio = float(ctx.constant(1, "ratio").reshape(-1)[0])
    x = ctx.value(0)
    return Built("Dropout", Dropout(x.shape[0], ratio), x.shape,
                 [x.cell], rank=x.rank)


@OPS.register("LRN")
def build_lrn(ctx: NodeContext) -> Built:
    """Cross-channel LRN of an odd window (ONNX's and N2D2's windows agree only then)."""
    x = ctx.value(0)
    need_rank(ctx, x, 4)
    size = int(ctx.attr("size", 0))
    if size < 1 or size % 2 == 0:
        raise ctx.error(f"size={size}: only odd windows are imported")
    module = LRN(x.shape[0], n=size, alpha=float(ctx.attr("alpha", 1e-4)),
                 beta=float(ctx.attr("beta", 0.75)), k=float(ctx.attr("bias", 1.0)))
    return Built("LRN", module, x.shape, [x.cell])
