"""Dropout: N2D2's dropout cell (spec §2.7); the rate ``Dropout`` comes from ConfigSection.

Training drops each value with probability p and rescales the kept ones by 1/(1-p), as
``Frame_CUDA`` (cuDNN) and ``nn.Dropout`` do; most N2D2 models use ``Frame_CUDA``. N2D2's CPU
``Frame`` model does not rescale: ``rescale=False`` reproduces it. Identity in eval mode.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import (Window, concat, crop, read_nb_outputs, read_params,
                                  read_window, same_size, total_channels, warn_params_in_section,
                                  windowed_shapes)
from n2prune.ini.params import Key
from n2prune.ini.values import read_float


class Dropout(nn.Module):
    """Drop values with probability ``dropout`` while training.

    ``generator`` (optional) makes the masks reproducible without touching the global RNG.
    """

    PARAMS = (Key("Dropout", "dropout", read_float, 0.5, "drop probability"),)

    def __init__(self, nb_outputs: int, dropout: float = 0.5, rescale: bool = True,
                 generator: Optional[torch.Generator] = None, input_window: Window = None):
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"Dropout: dropout must be in [0, 1], got {dropout!r}")
        self.nb_outputs, self.dropout, self.rescale = nb_outputs, float(dropout), rescale
        self.generator, self.input_window = generator, input_window

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = concat([crop(x, self.input_window) for x in inputs])
        if not self.training or self.dropout == 0.0:
            return x
        if self.generator is None and self.rescale:
            return F.dropout(x, self.dropout, training=True)
        device = self.generator.device if self.generator is not None else x.device
        keep = (torch.rand(x.shape, generator=self.generator, device=device)
                >= self.dropout).to(x.device)
        kept = x * keep
        if self.rescale and self.dropout < 1.0:
            kept = kept / (1.0 - self.dropout)
        return kept

    def extra_repr(self) -> str:
        return f"{self.nb_outputs}, dropout={self.dropout}, rescale={self.rescale}"


@CELLS.register("Dropout")
def build_dropout(ctx: BuildContext):
    """[cell] Type=Dropout: NbOutputs (= input channels), InputOffset*; config: Dropout."""
    window = read_window(ctx)
    shapes = windowed_shapes(ctx, window)
    nb_outputs = read_nb_outputs(ctx, total_channels(shapes), "the inputs' channels")
    height, width = same_size(ctx, shapes)
    warn_params_in_section(ctx, ["Dropout"])
    params = read_params(ctx, Dropout.PARAMS)
    try:
        module = Dropout(nb_outputs, input_window=window, **params)
    except ValueError as exc:
        raise ctx.config_error("Dropout", str(exc)) from None
    return module, (nb_outputs, height, width)
