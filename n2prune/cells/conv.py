"""Conv: N2D2's convolution cell (spec §2.7), X-first dims, PyTorch weight layout."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.activation_functions import build_activation
from n2prune.cells.base import CELLS, BuildContext, tensor_of
from n2prune.cells.dims import key_of, pair, read_dims, read_kernel_dims
from n2prune.cells.inputs import read_nb_outputs, read_params, same_size
from n2prune.cells.weighted import WeightCell
from n2prune.cells.initializers import build_initializer
from n2prune.cells.mapping import combined_map, groups_of
from n2prune.ini.params import Key
from n2prune.ini.values import read_bool, read_int, read_text, read_uint, read_word


class Conv(WeightCell):
    """2-D convolution, N2D2 style.

    Dims are N2D2 lists, width first: ``kernel_dims=[5, 3]`` is 5 wide, 3 high, so the weight
    is ``(nb_outputs, nb_inputs // groups, 3, 5)`` in PyTorch's layout. An int is square
    (``kernel_dims=3``: 3x3); a one-item list is N2D2's 1-D dims (``[3]``: 3 wide, 1 high;
    padding ``[p]``: ``[p, 0]``), as for Deconv and Pool (``n2prune.cells.dims.pair``). ``sub_sample_dims``
    multiplies the stride (N2D2's subsampling keeps every n-th output); negative padding crops.
    ``connection`` (bool, ``(nb_outputs, nb_inputs)``) is N2D2's fixed channel map: the forward
    skips unconnected kernels, which keep their initial values unless N2D2 zeroes them
    (``zero_unconnected``). ``input_channels`` splits ``nb_inputs`` among several inputs, which are
    concatenated (N2D2 gives each its own weight tensor; PruneCell prunes each block on its own).
    Weights and biases start as N(0, 0.05), N2D2's default fillers (``init=False`` leaves
    them uninitialised, for a caller that fills them itself).
    """

    def __init__(self, nb_inputs: int, nb_outputs: int, kernel_dims: Sequence[int] = (1, 1),
                 stride_dims: Sequence[int] = (1, 1), padding_dims: Sequence[int] = (0, 0),
                 dilation_dims: Sequence[int] = (1, 1), sub_sample_dims: Sequence[int] = (1, 1),
                 no_bias: bool = False, activation: Union[None, str, nn.Module] = None,
                 groups: int = 1, connection: Optional[torch.Tensor] = None,
                 input_channels: Optional[Sequence[int]] = None, init: bool = True):
        super().__init__()
        for name, value in (("nb_inputs", nb_inputs), ("nb_outputs", nb_outputs),
                            ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Conv: {name} must be a positive integer, got {value!r}")
        if nb_inputs % groups or nb_outputs % groups:
            raise ValueError(f"Conv: groups={groups} must divide nb_inputs={nb_inputs} and "
                             f"nb_outputs={nb_outputs}")
        self.nb_inputs, self.nb_outputs, self.groups = nb_inputs, nb_outputs, groups
        kx, ky = pair("kernel_dims", kernel_dims, 1, 1)
        self.kernel_dims = [kx, ky]
        self.stride_dims = list(pair("stride_dims", stride_dims, 1, 1))
        self.sub_sample_dims = list(pair("sub_sample_dims", sub_sample_dims, 1, 1))
        self.padding_dims = list(pair("padding_dims", padding_dims, 0, None))
        self.dilation_dims = list(pair("dilation_dims", dilation_dims, 1, 1))
        self.weight = nn.Parameter(torch.empty(nb_outputs, nb_inputs // groups, ky, kx))
        self.bias = None if no_bias else nn.Parameter(torch.empty(nb_outputs))
        self.activation = activation
        if groups > 1 and input_channels is not None and len(input_channels) > 1:
            # Each input's weights must be a block of weight columns (N2D2 keeps one tensor
            # per input, PruneCell prunes each block); grouped columns mix the inputs.
            raise ValueError(f"Conv: input_channels={list(input_channels)} with groups="
                             f"{groups} is not supported: with groups, an input's weights are "
                             f"not a block of columns; use groups=1 with a block-diagonal "
                             f"connection map (the same convolution)")
        self._set_inputs(input_channels, nb_inputs, "input_channels")
        if connection is not None:
            connection = torch.as_tensor(connection, dtype=torch.bool)
            if groups != 1 or tuple(connection.shape) != (nb_outputs, nb_inputs):
                raise ValueError(f"Conv: connection must be a ({nb_outputs}, {nb_inputs}) "
                                 f"boolean map with groups=1, got {tuple(connection.shape)}")
            connection = connection.to(torch.float32)[:, :, None, None]
        self.register_buffer("connection", connection)
        self._geometry = conv_geometry(self)
        if init:
            self.reset_parameters()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        crop, stride, padding, dilation = self._geometry
        if crop is not None:
            x = F.pad(x, crop)
        y = F.conv2d(x, self.effective_weight(), tensor_of(self, "bias"), stride, padding, dilation,
                     self.groups)
        return self.activate(y, owned=True)

    def output_size(self, height: int, width: int) -> tuple:
        """N2D2's output size formula: ceil(floor((in + 2p - d(k-1) - 1 + s)/s)/subsample)."""
        sizes = []
        for axis, size in ((1, height), (0, width)):
            k, s = self.kernel_dims[axis], self.stride_dims[axis]
            p, d = self.padding_dims[axis], self.dilation_dims[axis]
            ss = self.sub_sample_dims[axis]
            out = (size + 2 * p - (d * (k - 1) + 1) + s) // s
            sizes.append(-(-out // ss))
        return tuple(sizes)

    def extra_repr(self) -> str:
        return (f"{self.nb_inputs}, {self.nb_outputs}, kernel_dims={self.kernel_dims}, "
                f"stride_dims={self.stride_dims}, padding_dims={self.padding_dims}, "
                f"groups={self.groups}, bias={self.bias is not None}")


def conv_geometry(cell) -> tuple:
    """F.conv2d's arguments from N2D2's X-first dims, computed once (the dims are fixed at
    construction): ``(crop, stride, padding, dilation)``; ``crop`` is the ``F.pad`` of a
    negative padding (then padding is 0), else None."""
    px, py = cell.padding_dims
    crop, padding = (None, (py, px)) if px >= 0 and py >= 0 else ((px, px, py, py), (0, 0))
    stride = (cell.stride_dims[1] * cell.sub_sample_dims[1],
              cell.stride_dims[0] * cell.sub_sample_dims[0])
    return crop, stride, padding, (cell.dilation_dims[1], cell.dilation_dims[0])


# ----------------------------------------------------------------------------- INI
CONV_PARAMS = (
    Key("NoBias", "no_bias", read_bool, False),
    Key("BackPropagate", "back_propagate", read_bool, True),
    Key("WeightsExportFormat", "weights_export_format", read_word, "OCHW"),
    Key("WeightsExportFlip", "weights_export_flip", read_bool, False),
    Key("OutputsRemap", "outputs_remap", read_text, ""),
)


@CELLS.register("Conv")
def build_conv(ctx: BuildContext):
    """Conv from its section (§2.7): dims, NbOutputs, Mapping, fillers, activation."""
    section = ctx.section
    kernel = read_kernel_dims(section)
    if len(kernel) != 2:
        raise section.error(key_of(section, "Kernel"), f"{len(kernel)}-D kernels are not "
                                                       f"supported (2-D only)")
    dims = {name: read_dims(section, stem, 2, default, reader)
            for name, stem, default, reader in (
                ("stride_dims", "Stride", 1, read_uint),
                ("padding_dims", "Padding", 0, read_int),
                ("dilation_dims", "Dilation", 1, read_uint),
                ("sub_sample_dims", "SubSample", 1, read_uint))}
    nb_outputs = read_nb_outputs(ctx)
    channels = [c for c, _, _ in ctx.input_shapes]
    height, width = same_size(ctx)
    if section.prefixed("Mapping"):
        mapping = combined_map(section, ctx.input_names, nb_outputs, channels)
        groups = groups_of(mapping) if len(channels) == 1 else None
        full = bool(mapping.all())
    else:  # no Mapping key: N2D2's full map
        mapping, groups, full = None, None, True
    params = read_params(ctx, CONV_PARAMS)
    try:
        cell = Conv(sum(channels), nb_outputs, kernel_dims=kernel, no_bias=params.get(
            "no_bias", False), activation=build_activation(section),
            groups=groups if groups and not full else 1,
            connection=None if full or groups else mapping,
            input_channels=channels if len(channels) > 1 else None, init=False, **dims)
    except ValueError as exc:
        raise section.error(key_of(section, "Kernel"), str(exc)) from None
    fill_weights(ctx, cell)
    out_h, out_w = cell.output_size(height, width)
    if out_h <= 0 or out_w <= 0:
        raise section.error(key_of(section, "Kernel"), f"the {width}x{height} input is too "
                                                       f"small: output would be {out_w}x{out_h}")
    return cell, (nb_outputs, out_h, out_w)


def fill_weights(ctx: BuildContext, cell) -> None:
    """WeightsFiller / BiasFiller (§2.9): bias first, then each input's weights."""
    generator = ctx.extras.get("generator")
    weights, biases = build_initializer(ctx.section, "WeightsFiller"), build_initializer(
        ctx.section, "BiasFiller")
    with torch.no_grad():
        if cell.bias is not None:
            biases(cell.bias, generator, fan_in=cell.weight[0].numel(),
                   fan_out=cell.weight.numel() // cell.weight.shape[1])
        if len(cell.input_slices) == 1:
            weights(cell.weight, generator)
        for part in cell.input_slices if len(cell.input_slices) > 1 else ():
            filled = torch.empty_like(cell.weight[:, part])  # each input's own fans (N2D2)
            weights(filled, generator)
            cell.weight[:, part] = filled
        cell.zero_unconnected()   # only where N2D2 does: LeNet's table keeps its values
