"""Deconv: N2D2's transposed convolution cell (spec §2.7), X-first dims.

Output size ``in·s + d(k-1) + 1 - 2p - s`` (a transposed convolution without output
padding; a negative padding adds zero borders). Weights use PyTorch's transposed layout
``[nb_inputs, nb_outputs // groups, kH, kW]``. A channel map that is exactly a group
structure gives ``groups``; any other map keeps full weights with a ``connection`` mask
(unconnected kernels are zero and get no gradient). Fillers default to N(0, 0.05) for
weights and biases; fans are N2D2's: fan_in = kW·kH·C_k/G per input k, fan_out = kW·kH·O.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.activation_functions import ActivatedCell, build_activation
from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.dims import key_of, pair, read_dims, read_kernel_dims
from n2prune.cells.inputs import concat, read_params, same_size
from n2prune.cells.initializers import DEFAULT_INITIALIZER, Initializer, build_initializer
from n2prune.cells.mapping import combined_map, groups_of, unconnected_outputs
from n2prune.ini.params import Key
from n2prune.ini.values import read_bool, read_enum, read_int, read_uint, read_word


def deconv_output_size(size: int, kernel: int, stride: int, padding: int,
                       dilation: int = 1) -> int:
    """N2D2's Deconv size: in·s + d(k-1) + 1 - 2p - s."""
    return size * stride + dilation * (kernel - 1) + 1 - 2 * padding - stride


class Deconv(ActivatedCell):
    """2-D transposed convolution, N2D2 style (see the module docstring).

    ``connection`` is a bool ``[nb_outputs, nb_inputs]`` map (N2D2's orientation, as for
    Conv); ``input_channels`` splits ``nb_inputs`` among several inputs (concatenated, each
    filled with its own fan-in).
    """

    PARAMS = (Key("NoBias", "no_bias", read_bool, False),
              Key("BackPropagate", "back_propagate", read_bool, True))
    EXPORT_PARAMS = (Key("WeightsExportFormat", "weights_export_format",
                         read_enum(["OCHW", "HWCO"]), "OCHW"),
                     Key("WeightsExportFlip", "weights_export_flip", read_bool, False),
                     Key("OutputsRemap", "outputs_remap", read_word, ""))

    def __init__(self, nb_inputs: int, nb_outputs: int, kernel_dims: Sequence[int],
                 stride_dims: Sequence[int] = (1, 1), padding_dims: Sequence[int] = (0, 0),
                 dilation_dims: Sequence[int] = (1, 1), no_bias: bool = False,
                 activation=None, groups: int = 1, connection: Optional[torch.Tensor] = None,
                 input_channels: Optional[Sequence[int]] = None, back_propagate: bool = True):
        super().__init__()
        for name, value in (("nb_inputs", nb_inputs), ("nb_outputs", nb_outputs),
                            ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Deconv: {name} must be a positive integer, got {value!r}")
        if nb_inputs % groups or nb_outputs % groups:
            raise ValueError(f"Deconv: groups={groups} must divide nb_inputs={nb_inputs} and "
                             f"nb_outputs={nb_outputs}")
        self.nb_inputs, self.nb_outputs, self.groups = nb_inputs, nb_outputs, groups
        self.kernel_dims = list(pair("kernel_dims", kernel_dims, 1, 1))
        self.stride_dims = list(pair("stride_dims", stride_dims, 1, 1))
        self.padding_dims = list(pair("padding_dims", padding_dims, 0, None))
        self.dilation_dims = list(pair("dilation_dims", dilation_dims, 1, 1))
        self.back_propagate = bool(back_propagate)
        self.activation = activation
        self.input_channels = list(input_channels) if input_channels else [nb_inputs]
        if sum(self.input_channels) != nb_inputs or min(self.input_channels) <= 0:
            raise ValueError(f"Deconv: input_channels {self.input_channels} must be positive "
                             f"and sum to nb_inputs={nb_inputs}")
        kx, ky = self.kernel_dims
        self.weight = nn.Parameter(torch.empty(nb_inputs, nb_outputs // groups, ky, kx))
        self.bias = None if no_bias else nn.Parameter(torch.empty(nb_outputs))
        if connection is not None:
            connection = torch.as_tensor(connection, dtype=torch.bool)
            if groups != 1 or tuple(connection.shape) != (nb_outputs, nb_inputs):
                raise ValueError(f"Deconv: connection must be a ({nb_outputs}, {nb_inputs}) "
                                 f"boolean map with groups=1, got {tuple(connection.shape)}")
            connection = connection.t().to(torch.float32)[:, :, None, None]
        self.register_buffer("connection", connection)
        self.export_options: dict = {}
        self.reset_parameters()

    def reset_parameters(self, weights_filler: Initializer = DEFAULT_INITIALIZER,
                         bias_filler: Initializer = DEFAULT_INITIALIZER,
                         generator: Optional[torch.Generator] = None) -> None:
        """Fill each input's weights (its own fan-in) and the biases; zero unconnected ones."""
        kx, ky = self.kernel_dims
        fan_out = kx * ky * self.nb_outputs
        start = 0
        with torch.no_grad():
            for channels in self.input_channels:
                block = self.weight[start:start + channels]
                weights_filler(block, generator, kx * ky * channels // self.groups, fan_out)
                start += channels
            if self.bias is not None:
                bias_filler(self.bias, generator)
            if self.connection is not None:
                self.weight.mul_(self.connection)

    def effective_weight(self) -> torch.Tensor:
        return self.weight if self.connection is None else self.weight * self.connection

    def output_size(self, height: int, width: int) -> tuple:
        (kx, ky), (sx, sy) = self.kernel_dims, self.stride_dims
        (px, py), (dx, dy) = self.padding_dims, self.dilation_dims
        return (deconv_output_size(height, ky, sy, py, dy),
                deconv_output_size(width, kx, sx, px, dx))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = concat(inputs)
        if not self.back_propagate:
            x = x.detach()
        px, py = self.padding_dims
        stride = (self.stride_dims[1], self.stride_dims[0])
        dilation = (self.dilation_dims[1], self.dilation_dims[0])
        if px >= 0 and py >= 0:
            return self.activate(F.conv_transpose2d(
                x, self.effective_weight(), self.bias, stride, (py, px), 0, self.groups,
                dilation))
        y = F.conv_transpose2d(x, self.effective_weight(), None, stride, (max(py, 0),
                               max(px, 0)), 0, self.groups, dilation)
        y = F.pad(y, (max(-px, 0),) * 2 + (max(-py, 0),) * 2)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return self.activate(y)

    def extra_repr(self) -> str:
        return (f"{self.nb_inputs}, {self.nb_outputs}, kernel_dims={self.kernel_dims}, "
                f"stride_dims={self.stride_dims}, padding_dims={self.padding_dims}, "
                f"groups={self.groups}, bias={self.bias is not None}")


@CELLS.register("Deconv")
def build_deconv(ctx: BuildContext):
    """[cell] Type=Deconv: Kernel*, NbOutputs, Stride*, Padding*, Dilation*, Mapping...,
    ActivationFunction, WeightsFiller, BiasFiller; config: NoBias, BackPropagate, export keys."""
    section = ctx.section
    kernel_dims = read_kernel_dims(section)
    nb = len(kernel_dims)
    stride_dims = read_dims(section, "Stride", nb, 1)
    padding_dims = read_dims(section, "Padding", nb, 0, read_int)
    dilation_dims = read_dims(section, "Dilation", nb, 1)
    nb_outputs = section.get("NbOutputs", read_uint)
    if nb_outputs == 0:
        raise section.error("NbOutputs", "must be at least 1")
    height, width = same_size(ctx)
    channels = [c for c, _, _ in ctx.input_shapes]
    mapping = combined_map(section, ctx.input_names, nb_outputs, channels)
    for output in unconnected_outputs(mapping):
        section.warn("NbOutputs", f"output map #{output} has no input connection")
    groups = groups_of(mapping)
    params = read_params(ctx, Deconv.PARAMS)
    try:
        module = Deconv(sum(channels), nb_outputs, kernel_dims, stride_dims, padding_dims,
                        dilation_dims, activation=build_activation(section),
                        groups=groups or 1, connection=None if groups else mapping,
                        input_channels=channels, **params)
    except ValueError as exc:
        raise section.error(key_of(section, "Kernel"), str(exc)) from None
    module.export_options = read_params(ctx, Deconv.EXPORT_PARAMS)
    module.reset_parameters(build_initializer(section, "WeightsFiller"),
                            build_initializer(section, "BiasFiller"), ctx.extras.get("generator"))
    out_h, out_w = module.output_size(height, width)
    if out_h <= 0 or out_w <= 0:
        raise section.error(key_of(section, "Kernel"), f"a {width}x{height} input gives an "
                                                       f"empty {out_w}x{out_h} output")
    return module, (nb_outputs, out_h, out_w)
