"""Activation: N2D2's stand-alone activation cell (spec §2.7); the default function is Tanh."""

from __future__ import annotations

import torch

from n2prune.cells.activation_functions import ActivatedCell, build_activation
from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import concat, read_nb_outputs, same_size, total_channels


class ActivationCell(ActivatedCell):
    """Apply ``activation`` (default Tanh, as N2D2) to the concatenated inputs."""

    def __init__(self, nb_outputs: int, activation="Tanh"):
        super().__init__()
        self.nb_outputs = nb_outputs
        self.activation = activation

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = concat(inputs)
        return self.activate(x)

    def extra_repr(self) -> str:
        return f"{self.nb_outputs}"


@CELLS.register("Activation")
def build_activation_cell(ctx: BuildContext):
    """[cell] Type=Activation: NbOutputs, ActivationFunction (default Tanh)."""
    nb_outputs = read_nb_outputs(ctx, total_channels(ctx.input_shapes), "the inputs' channels")
    height, width = same_size(ctx)
    module = ActivationCell(nb_outputs, build_activation(ctx.section, default="Tanh"))
    return module, (nb_outputs, height, width)
