"""The ONNX operators with learned parameters: Conv -> Conv, Gemm and MatMul with a constant
weight -> Fc, BatchNormalization -> BatchNorm. These are the cells ``[<onnx>:Conv_def]``,
``[<onnx>:Fc_def]`` and ``[<onnx>:BatchNorm_def]`` configure (solvers, ``QWeight=Prune``)."""

from __future__ import annotations

from typing import List, Optional

import torch

from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.conv import Conv
from n2prune.cells.fc import Fc
from n2prune.cells.padding import Padding
from n2prune.ini.params import kwargs_from
from n2prune.onnxin.geometry import read_window
from n2prune.onnxin.ops import OPS, Built, NodeContext, Value


def need_rank(ctx: NodeContext, value: Value, rank: int) -> None:
    """An error unless ``value`` is an ONNX tensor of ``rank`` (2: (N, C), 4: NCHW)."""
    if value.rank != rank:
        wanted = "(N, C, H, W)" if rank == 4 else "(N, C)"
        raise ctx.error(f"expects a {wanted} input, {value.cell!r} is rank {value.rank}")


def pad_cell(ctx: NodeContext, value: Value, pads) -> Built:
    """A Padding cell ``<node>_padding`` for asymmetric ``pads`` (top, left, bottom, right),
    as N2D2's importer adds one."""
    top, left, bottom, right = pads
    channels, height, width = value.shape
    return Built("Padding", Padding(channels, top, bottom, left, right),
                 (channels, height + top + bottom, width + left + right), [value.cell],
                 name=f"{ctx.node.name}_padding")


@OPS.register("Conv")
def build_conv(ctx: NodeContext) -> List[Built]:
    """2-D convolution (groups, dilations, auto_pad); asymmetric pads add a Padding cell."""
    x = ctx.value(0)
    need_rank(ctx, x, 4)
    weight = ctx.constant(1, "the weight")
    if weight.dim() != 4:
        raise ctx.error(f"weight of shape {tuple(weight.shape)}: only 2-D convolutions are "
                        f"imported")
    bias = ctx.constant(2, "the bias") if ctx.has_input(2) else None
    groups = int(ctx.attr("group", 1))
    channels, height, width = x.shape
    outputs, per_group, kernel_h, kernel_w = weight.shape
    if per_group * groups != channels:
        raise ctx.error(f"weight {tuple(weight.shape)} with group={groups} does not take the "
                        f"{channels} channels of {x.cell!r}")
    window = read_window(ctx, (height, width), [kernel_h, kernel_w])
    built, source, pads = [], x, window.pads
    if not window.symmetric:
        built.append(pad_cell(ctx, x, pads))
        source = Value(built[-1].name, built[-1].shape)
        pads = (0, 0, 0, 0)
    cell = Conv(channels, outputs, kernel_dims=[kernel_w, kernel_h],
                stride_dims=[window.stride[1], window.stride[0]],
                padding_dims=[pads[1], pads[0]],
                dilation_dims=[window.dilation[1], window.dilation[0]], groups=groups,
                no_bias=bias is None, init=False)
    ctx.fill(cell, "Conv", [("weight", weight), ("bias", bias)])
    out_h, out_w = cell.output_size(*source.shape[1:])
    if out_h <= 0 or out_w <= 0:
        raise ctx.error(f"the {source.shape[2]}x{source.shape[1]} input is too small: output "
                        f"would be {out_w}x{out_h}")
    built.append(Built("Conv", cell, (outputs, out_h, out_w), [source.cell]))
    return built


def _fc(ctx: NodeContext, x: Value, weight: torch.Tensor, bias: Optional[torch.Tensor]
        ) -> Built:
    need_rank(ctx, x, 2)
    outputs, inputs = weight.shape
    if inputs != x.shape[0]:
        raise ctx.error(f"weight {tuple(weight.shape)} (as outputs x inputs) does not take the "
                        f"{x.shape[0]} features of {x.cell!r}")
    cell = Fc(inputs, outputs, no_bias=bias is None, init=False)
    ctx.fill(cell, "Fc", [("weight", weight), ("bias", bias)])
    return Built("Fc", cell, (outputs, 1, 1), [x.cell], rank=2)


@OPS.register("Gemm")
def build_gemm(ctx: NodeContext) -> Built:
    """alpha * x @ B(^T) + beta * C with constant B and C: a fully connected layer."""
    if ctx.attr("transA", 0):
        raise ctx.error("transA=1 is not imported (only x @ B, a fully connected layer)")
    b = ctx.constant(1, "B (the weight)")
    if b.dim() != 2:
        raise ctx.error(f"B of shape {tuple(b.shape)}: a 2-D weight is expected")
    weight = (b if ctx.attr("transB", 0) else b.t()) * float(ctx.attr("alpha", 1.0))
    bias = None
    if ctx.has_input(2):
        bias = ctx.constant(2, "C (the bias)").reshape(-1) * float(ctx.attr("beta", 1.0))
        if bias.numel() == 1:
            bias = bias.expand(weight.shape[0]).clone()
        if bias.numel() != weight.shape[0]:
            raise ctx.error(f"C has {bias.numel()} values for {weight.shape[0]} outputs "
                            f"(only a per-output bias is imported)")
    return _fc(ctx, ctx.value(0), weight.contiguous(), bias)


@OPS.register("MatMul")
def build_matmul(ctx: NodeContext) -> Built:
    """x @ B with a constant 2-D B: a fully connected layer without bias."""
    if not ctx.is_constant(1):
        raise ctx.error("MatMul of two computed tensors is not imported (only x @ constant, "
                        "a fully connected layer)")
    b = ctx.constant(1, "B (the weight)")
    if b.dim() != 2:
        raise ctx.error(f"B of shape {tuple(b.shape)}: a 2-D weight is expected")
    return _fc(ctx, ctx.value(0), b.t().contiguous(), None)


@OPS.register("BatchNormalization")
def build_batchnorm(ctx: NodeContext) -> Built:
    """Inference batch normalization; ``MovingAverageMomentum`` is 1 - ONNX's momentum unless
    the ConfigSection of ``[<onnx>:BatchNorm_def]`` sets it (N2D2's fine-tuning advice)."""
    if ctx.attr("training_mode", 0):
        raise ctx.error("training_mode=1 is not imported (export the model in eval mode)")
    x = ctx.value(0)
    momentum = 1.0 - float(ctx.attr("momentum", 0.9))
    kwargs = {"epsilon": float(ctx.attr("epsilon", 1e-5)),
              "moving_average_momentum": momentum if 0.0 <= momentum < 1.0 else 0.1}
    _, config = ctx.settings("BatchNorm")
    if config is not None:
        kwargs.update(kwargs_from(config, BatchNorm.PARAMS))
    channels = x.shape[0]
    try:
        cell = BatchNorm(channels, **kwargs)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None
    if ctx.init_from_onnx:
        tensors = [(name, ctx.constant(index, what).reshape(-1)) for index, name, what in (
            (1, "weight", "the scale"), (2, "bias", "the bias"), (3, "running_mean", "the mean"),
            (4, "running_var", "the variance"))]
        ctx.fill(cell, "BatchNorm", tensors)
    return Built("BatchNorm", cell, x.shape, [x.cell], rank=x.rank)
