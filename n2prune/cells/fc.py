"""Fc: N2D2's fully connected cell (spec §2.7): flattens each input, x fastest, then y, c."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.activation_functions import build_activation
from n2prune.cells.base import CELLS, BuildContext, tensor_of
from n2prune.cells.conv import fill_weights
from n2prune.cells.inputs import read_nb_outputs, read_params
from n2prune.cells.weighted import WeightCell
from n2prune.ini.params import Key
from n2prune.ini.values import read_bool, read_float, read_text, read_uint, read_word


class Fc(WeightCell):
    """Fully connected layer; ``nb_inputs`` is the flattened input size C·H·W.

    The weight is ``(nb_outputs, nb_inputs)``, PyTorch's layout, whose column order is N2D2's
    (x fastest, then y, then channel). ``input_sizes`` splits the columns among several inputs,
    each flattened and concatenated (N2D2 sums one weight tensor per input: the same thing).
    Weights and biases start as N(0, 0.05) unless ``init=False``.
    """

    def __init__(self, nb_inputs: int, nb_outputs: int, no_bias: bool = False,
                 activation: Union[None, str, nn.Module] = None,
                 input_sizes: Optional[Sequence[int]] = None, init: bool = True):
        super().__init__()
        for name, value in (("nb_inputs", nb_inputs), ("nb_outputs", nb_outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Fc: {name} must be a positive integer, got {value!r}")
        self.nb_inputs, self.nb_outputs = nb_inputs, nb_outputs
        self.weight = nn.Parameter(torch.empty(nb_outputs, nb_inputs))
        self.bias = None if no_bias else nn.Parameter(torch.empty(nb_outputs))
        self.activation = activation
        self._set_inputs(input_sizes, nb_inputs, "input_sizes")
        if init:
            self.reset_parameters()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        flat = [x.reshape(x.shape[0], -1) for x in inputs]
        x = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
        if x.shape[1] != self.nb_inputs:
            raise ValueError(f"Fc: input has {x.shape[1]} features after flattening, the cell "
                             f"expects nb_inputs={self.nb_inputs}")
        y = F.linear(x, self.effective_weight(), tensor_of(self, "bias"))
        return self.activate(y, owned=True)

    def extra_repr(self) -> str:
        return f"{self.nb_inputs}, {self.nb_outputs}, bias={self.bias is not None}"


# ----------------------------------------------------------------------------- INI
FC_PARAMS = (
    Key("NoBias", "no_bias", read_bool, False),
    Key("Normalize", "normalize", read_bool, False),
    Key("BackPropagate", "back_propagate", read_bool, True),
    Key("WeightsExportFormat", "weights_export_format", read_word, "OC"),
    Key("OutputsRemap", "outputs_remap", read_text, ""),
    Key("DropConnect", "drop_connect", read_float, 1.0),
)


@CELLS.register("Fc")
def build_fc(ctx: BuildContext):
    """Fc from its section (§2.7): NbOutputs, fillers, activation; one block per input."""
    section = ctx.section
    for key in ("InputOffsetX", "InputOffsetY", "InputWidth", "InputHeight"):
        if section.get(key, read_uint, 0):
            raise section.error(key, "Fc input windows are not supported yet")
    params = read_params(ctx, FC_PARAMS)
    for name, neutral in (("Normalize", False), ("DropConnect", 1.0)):
        arg = next(k.arg for k in FC_PARAMS if k.ini == name)
        if params.get(arg, neutral) != neutral:
            raise ctx.config.error(name, f"{name} other than {neutral!r} is not supported yet")
    nb_outputs = read_nb_outputs(ctx)
    sizes = [c * h * w for c, h, w in ctx.input_shapes]
    cell = Fc(sum(sizes), nb_outputs, no_bias=params.get("no_bias", False),
              activation=build_activation(section),
              input_sizes=sizes if len(sizes) > 1 else None, init=False)
    fill_weights(ctx, cell)
    return cell, (nb_outputs, 1, 1)
