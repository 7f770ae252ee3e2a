"""Transformations of stimuli batches, keyed by INI ``Type=`` (spec §5.3).

Every transformation works on a whole batch, a tensor [N, C, H, W] of uint8 or float
(channel 0 is blue for colour images, as OpenCV loads them), and returns a new one. A
transformation says whether it is ``random`` (it then takes an explicit
``torch.Generator``, and belongs in an on-the-fly section) and whether it outputs float,
which decides N2D2's implicit [0, 1] normalisation. Integer inputs stay integer through
the geometric ones, rounded as OpenCV's 8-bit functions round.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from n2prune.data.partition import SET_NAMES
from n2prune.ini.params import Key
from n2prune.registry import Registry
from n2prune.ini.values import read_enum, read_float, read_list

TRANSFORMATIONS: Registry = Registry("transformation")

APPLY_TO = {"All": SET_NAMES, "LearnOnly": ("Learn",), "ValidationOnly": ("Validation",),
            "TestOnly": ("Test",), "NoLearn": ("Validation", "Test"),
            "NoValidation": ("Learn", "Test"), "NoTest": ("Learn", "Validation")}
APPLY_TO_KEY = Key("ApplyTo", "apply_to", read_enum(list(APPLY_TO)), "All",
                   "the sets the transformation applies to")

BORDER_TYPES = ("ConstantBorder", "ReplicateBorder", "ReflectBorder", "WrapBorder",
                "MinusOneReflectBorder", "MeanBorder")
BORDER_TYPE_KEY = Key("BorderType", "border_type", read_enum(list(BORDER_TYPES)),
                      "MinusOneReflectBorder", "how padded pixels are filled")
BORDER_VALUE_KEY = Key("BorderValue", "border_value", read_list(read_float), (),
                       "per-channel fill value for ConstantBorder (missing channels: 0)")


def applies_to(apply_to: str, set_name: str) -> bool:
    """Whether a transformation with this ``ApplyTo`` runs on the set ``set_name``."""
    if apply_to not in APPLY_TO:
        raise ValueError(f"unknown ApplyTo {apply_to!r} (known: {', '.join(APPLY_TO)})")
    return set_name in APPLY_TO[apply_to]


class Transformation:
    """Base of the batch transformations: ``__call__(x, generator) -> tensor``."""

    KEYS: tuple = ()
    float_output = False

    @property
    def random(self) -> bool:
        """True when the output depends on random draws (then it needs a generator)."""
        return False

    def __call__(self, x: torch.Tensor,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        raise NotImplementedError

    def output_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The element type coming out for ``dtype`` going in."""
        return torch.float32 if self.float_output else dtype

    def _need_generator(self, generator: Optional[torch.Generator]) -> torch.Generator:
        if generator is None:
            raise ValueError(f"{type(self).__name__} is random: pass a torch.Generator")
        return generator

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def check_batch(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise TypeError(f"{name} expects a [N, C, H, W] tensor, got "
                        f"{getattr(x, 'shape', type(x).__name__)}")


def to_dtype_of(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float results back to ``dtype``: rounded and saturated for integer types (OpenCV)."""
    if dtype.is_floating_point:
        return y.to(dtype)
    info = torch.iinfo(dtype)
    return y.round().clamp_(info.min, info.max).to(dtype)


def border_index(p: torch.Tensor, length: Union[int, torch.Tensor],
                 border: str) -> torch.Tensor:
    """OpenCV's ``borderInterpolate`` on index tensors: -1 where a constant fills in."""
    inside = (p >= 0) & (p < length)
    if border in ("ConstantBorder", "MeanBorder"):
        return torch.where(inside, p, torch.full_like(p, -1))
    if border == "ReplicateBorder":
        return torch.minimum(p.clamp(min=0), torch.as_tensor(length) - 1)
    if border == "WrapBorder":
        return torch.remainder(p, length)
    if border == "ReflectBorder":
        period = 2 * length
        q = torch.remainder(p, period)
        return torch.where(q >= length, period - 1 - q, q)
    if border == "MinusOneReflectBorder":
        period = torch.clamp(2 * (torch.as_tensor(length) - 1), min=1)
        q = torch.remainder(p, period)
        return torch.where(q >= length, period - q, q)
    raise ValueError(f"unknown border type {border!r} (known: {', '.join(BORDER_TYPES)})")


def fill_values(x: torch.Tensor, border: str, border_value: Sequence[float]) -> torch.Tensor:
    """The constant fill, [N, C]: BorderValue per channel, or each image's channel mean."""
    n, c = x.shape[:2]
    if border == "MeanBorder":
        fill = x.double().mean(dim=(2, 3))
    else:
        values = list(border_value)[:c] + [0.0] * max(0, c - len(border_value))
        fill = torch.tensor(values, dtype=torch.float64).expand(n, c)
    return to_dtype_of(fill, x.dtype).to(x.device)


def extract(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
            fill: Optional[torch.Tensor]) -> torch.Tensor:
    """Gather ``x[n, :, rows[n], cols[n]]``: rows [N, h] and cols [N, w] source indexes.

    Index -1 takes ``fill[n, c]``. Indexes shared by the whole batch ([1, h], [1, w]) use
    plain index_select, the fast path of fixed crops and pads.
    """
    rows, cols = rows.to(x.device), cols.to(x.device)
    if rows.shape[0] == 1 and cols.shape[0] == 1:
        out = x.index_select(2, rows[0].clamp(min=0)).index_select(3, cols[0].clamp(min=0))
    else:   # one gather over the flattened planes: much faster than advanced indexing
        n, c, h, w = x.shape[0], x.shape[1], rows.shape[1], cols.shape[1]
        rows, cols = rows.expand(n, -1), cols.expand(n, -1)
        flat = rows.clamp(min=0)[:, :, None] * x.shape[3] + cols.clamp(min=0)[:, None, :]
        out = x.flatten(2).gather(2, flat.reshape(n, 1, h * w).expand(n, c, h * w))
        out = out.view(n, c, h, w)
    if fill is not None:
        outside = (rows < 0)[:, None, :, None] | (cols < 0)[:, None, None, :]
        if bool(outside.any()):
            out = torch.where(outside, fill[:, :, None, None].to(out.dtype), out)
    return out.contiguous()


def range_affine(x: torch.Tensor, operator: str, values: Sequence[float]) -> torch.Tensor:
    """``x op v[c]`` in float32 as OpenCV does it (a division multiplies by float32(1/v))."""
    if operator == "Divides":
        values = [1.0 / v for v in values]
    v = torch.tensor(values, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    if operator == "Plus":
        return x + v
    if operator == "Minus":
        return x - v
    if operator in ("Multiplies", "Divides"):
        return x * v
    raise ValueError(f"unknown operator {operator!r} (known: Plus, Minus, Multiplies, "
                     f"Divides)")
