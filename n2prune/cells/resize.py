"""Resize: N2D2's resize cell (spec §2.7): ``BilinearTF`` or ``NearestNeighbor``.

``BilinearTF`` samples input position ``i·scale`` with ``scale = (in-1)/(out-1)`` when
``AlignCorners=1`` (the default, a ConfigSection parameter) and ``in/out`` otherwise (no
half-pixel offset, TensorFlow's legacy rule). ``NearestNeighbor`` takes input
``floor(i·in/out)``. N2D2 has no implementation of ``Mode=Bilinear`` (both CPU and CUDA
models stop with "not yet implemented"), so it is refused here too.
"""

from __future__ import annotations

import torch
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import (concat, read_nb_outputs, read_params, same_size,
                                  total_channels, warn_params_in_section)
from n2prune.ini.params import Key
from n2prune.ini.values import read_bool, read_enum, read_uint

MODES = ["Bilinear", "BilinearTF", "NearestNeighbor"]


def _bilinear_axis(size_in: int, size_out: int, align_corners: bool):
    """(low index, high index, fraction) per output position, in N2D2's float32 arithmetic."""
    if align_corners and size_out > 1:
        scale = torch.tensor((size_in - 1) / (size_out - 1), dtype=torch.float32)
    else:
        scale = torch.tensor(size_in / size_out, dtype=torch.float32)
    position = torch.arange(size_out, dtype=torch.float32) * scale
    low = position.long()
    high = (low + 1).clamp(max=size_in - 1)
    return low, high, position - low.to(torch.float32)


def _nearest_axis(size_in: int, size_out: int) -> torch.Tensor:
    mult = torch.tensor(size_in, dtype=torch.float32) / size_out
    return (torch.arange(size_out, dtype=torch.float32) * mult).long()


class Resize(nn.Module):
    """Resize every channel to ``output_width`` x ``output_height``."""

    PARAMS = (Key("AlignCorners", "align_corners", read_bool, True),)

    def __init__(self, nb_outputs: int, output_width: int, output_height: int,
                 mode: str = "BilinearTF", align_corners: bool = True):
        super().__init__()
        if mode == "Bilinear":
            raise ValueError("Resize: mode 'Bilinear' is not implemented in N2D2 "
                             "(use 'BilinearTF' or 'NearestNeighbor')")
        if mode not in MODES:
            raise ValueError(f"Resize: mode={mode!r}, expected 'BilinearTF' or "
                             f"'NearestNeighbor'")
        if output_width <= 0 or output_height <= 0:
            raise ValueError(f"Resize: output size {output_width}x{output_height} is empty")
        self.nb_outputs, self.mode, self.align_corners = nb_outputs, mode, bool(align_corners)
        self.output_width, self.output_height = output_width, output_height

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = concat(inputs)
        height, width = x.shape[2:]
        if self.mode == "NearestNeighbor":
            rows = _nearest_axis(height, self.output_height).to(x.device)
            cols = _nearest_axis(width, self.output_width).to(x.device)
            return x[:, :, rows][:, :, :, cols]
        y0, y1, fy = (t.to(x.device) for t in
                      _bilinear_axis(height, self.output_height, self.align_corners))
        x0, x1, fx = (t.to(x.device) for t in
                      _bilinear_axis(width, self.output_width, self.align_corners))
        fx, fy = fx.to(x.dtype), fy.to(x.dtype)[:, None]
        top, bottom = x[:, :, y0], x[:, :, y1]
        top = top[..., x0] + (top[..., x1] - top[..., x0]) * fx
        bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * fx
        return top + (bottom - top) * fy

    def extra_repr(self) -> str:
        return (f"{self.nb_outputs}, output={self.output_width}x{self.output_height}, "
                f"mode={self.mode!r}, align_corners={self.align_corners}")


@CELLS.register("Resize")
def build_resize(ctx: BuildContext):
    """[cell] Type=Resize: NbOutputs, OutputWidth, OutputHeight, Mode; config: AlignCorners."""
    section = ctx.section
    nb_outputs = read_nb_outputs(ctx, total_channels(ctx.input_shapes), "the inputs' channels")
    same_size(ctx)
    width = section.get("OutputWidth", read_uint)
    height = section.get("OutputHeight", read_uint)
    mode = section.get("Mode", read_enum(MODES))
    warn_params_in_section(ctx, ["AlignCorners"])
    try:
        module = Resize(nb_outputs, width, height, mode, **read_params(ctx, Resize.PARAMS))
    except ValueError as exc:
        raise section.error("Mode" if "mode" in str(exc) else "OutputWidth", str(exc)) from None
    return module, (nb_outputs, height, width)
