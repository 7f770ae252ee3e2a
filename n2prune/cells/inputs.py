"""What simple cells do with their inputs: concatenate, crop a window, check NbOutputs."""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Tuple

import torch

from n2prune.ini.params import kwargs_from
from n2prune.ini.values import read_uint

Window = Optional[Tuple[int, int, int, int]]   # (x0, y0, width, height); None = whole input


def concat(inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """One NCHW tensor: the inputs' channels concatenated in ``Input=`` order."""
    if not inputs:
        raise ValueError("a cell needs at least one input tensor")
    return inputs[0] if len(inputs) == 1 else torch.cat(list(inputs), dim=1)


def crop(x: torch.Tensor, window: Window) -> torch.Tensor:
    """The ``InputOffsetX/Y``, ``InputWidth/Height`` window of an NCHW tensor."""
    if window is None:
        return x
    x0, y0, width, height = window
    return x[:, :, y0:y0 + height, x0:x0 + width]


def read_window(ctx: Any) -> Window:
    """The input window a section asks for, checked against every input (None = whole)."""
    section = ctx.section
    keys = ("InputOffsetX", "InputOffsetY", "InputWidth", "InputHeight")
    x0, y0, width, height = (section.get(key, read_uint, 0) for key in keys)
    if (x0, y0, width, height) == (0, 0, 0, 0):
        return None
    for _, in_h, in_w in ctx.input_shapes:
        w = width or in_w - x0
        h = height or in_h - y0
        if w <= 0 or x0 + w > in_w or h <= 0 or y0 + h > in_h:
            key = "InputWidth" if w <= 0 or x0 + w > in_w else "InputHeight"
            raise section.error(key, f"window x={x0}..{x0 + w - 1}, y={y0}..{y0 + h - 1} "
                                     f"does not fit the {in_w}x{in_h} input")
    _, in_h, in_w = ctx.input_shapes[0]
    return x0, y0, width or in_w - x0, height or in_h - y0


def windowed_shapes(ctx: Any, window: Window) -> List[Tuple[int, int, int]]:
    """The input shapes (C, H, W) after cropping to ``window``."""
    if window is None:
        return list(ctx.input_shapes)
    return [(c, window[3], window[2]) for c, _, _ in ctx.input_shapes]


def same_size(ctx: Any, shapes: Optional[Sequence[Tuple[int, int, int]]] = None
              ) -> Tuple[int, int]:
    """(H, W) shared by all inputs; a located error when they differ."""
    shapes = list(ctx.input_shapes if shapes is None else shapes)
    sizes = {(h, w) for _, h, w in shapes}
    if len(sizes) != 1:
        described = ", ".join(f"{name} {w}x{h}" for name, (_, h, w)
                              in zip(ctx.input_names, shapes))
        raise ctx.section.error("Input", f"inputs must have the same width and height "
                                         f"({described})")
    return sizes.pop()


def total_channels(shapes: Iterable[Tuple[int, int, int]]) -> int:
    return sum(c for c, _, _ in shapes)


def read_nb_outputs(ctx: Any, expected: Optional[int] = None, why: str = "") -> int:
    """``NbOutputs`` (required); when ``expected`` is given it must match."""
    nb_outputs = ctx.section.get("NbOutputs", read_uint)
    if nb_outputs == 0:
        raise ctx.section.error("NbOutputs", "must be at least 1")
    if expected is not None and nb_outputs != expected:
        raise ctx.section.error("NbOutputs", f"is {nb_outputs} but must be {expected}"
                                             f"{' (' + why + ')' if why else ''}")
    return nb_outputs


def warn_params_in_section(ctx: Any, names: Iterable[str]) -> None:
    """Cell parameters written in the cell section: N2D2 ignores them there; say so."""
    for name in names:
        if name in ctx.section and ctx.config is not ctx.section:
            ctx.section.warn(name, f"ignored: {name} is a cell parameter, read only from a "
                                   f"ConfigSection (N2D2 keeps the default)")
            mark = getattr(ctx.section, "mark_read", None)
            if mark is not None:
                mark(name)


def read_params(ctx: Any, keys: Sequence[Any]) -> dict:
    """Keyword arguments for the cell parameters (``Key`` table) found in the ConfigSection."""
    note = getattr(ctx.section, "note_parameters", None)
    if note is not None:  # so a parameter written in the cell section is recognised there
        note(key.ini for key in keys)
    if ctx.config is None:
        return {}
    return kwargs_from(ctx.config, keys)
