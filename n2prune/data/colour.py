"""Value transformations: RangeAffine, ColorSpace and ChannelExtraction (spec §5.3).

Colour images arrive as OpenCV loads them, channel 0 = blue. 8-bit conversions use
OpenCV's fixed-point formulas (14-bit coefficients), so they give OpenCV's exact values.
"""

from __future__ import annotations

from typing import Sequence

import torch

from n2prune.data.exceptions import ParameterError
from n2prune.data.transforms import (TRANSFORMATIONS, Transformation,
                                     check_batch, range_affine)
from n2prune.ini.params import REQUIRED, Key
from n2prune.ini.values import read_bool, read_enum, read_float, read_list

OPERATORS = ("Plus", "Minus", "Multiplies", "Divides")
COLOR_SPACES = ("BGR", "RGB", "HSV", "HLS", "YCrCb", "CIELab", "CIELuv", "RGB_to_BGR",
                "RGB_to_HSV", "RGB_to_HLS", "RGB_to_YCrCb", "RGB_to_CIELab",
                "RGB_to_CIELuv", "HSV_to_RGB", "HLS_to_RGB", "YCrCb_to_RGB",
                "CIELab_to_RGB", "CIELuv_to_RGB")
SUPPORTED_COLOR_SPACES = ("BGR", "RGB", "YCrCb", "RGB_to_BGR", "RGB_to_YCrCb")
CHANNELS = ("Blue", "Green", "Red", "Hue", "Saturation", "Value", "Gray", "Y", "Cb", "Cr")
SUPPORTED_CHANNELS = ("Blue", "Green", "Red", "Gray", "Y", "Cb", "Cr")

# OpenCV's RGB -> Y coefficients and YCrCb factors, as floats and as 14-bit integers.
_Y_FLOAT, _Y_FIXED = (0.299, 0.587, 0.114), (4899, 9617, 1868)
_CRCB_FLOAT, _CRCB_FIXED = (0.713, 0.564), (11682, 9241)


@TRANSFORMATIONS.register("RangeAffineTransformation")
class RangeAffine(Transformation):
    """``x = (x op1 v1[c]) op2 v2[c]`` per channel in float32, then trunc if ``truncate``.

    A value list has 1 item or one per channel (BGR order unless a ColorSpace came before).
    """

    KEYS = (Key("FirstOperator", "first_operator", read_enum(list(OPERATORS)), REQUIRED,
                "Plus, Minus, Multiplies or Divides"),
            Key("FirstValue", "first_value", read_list(read_float), REQUIRED,
                "one value, or one per channel"),
            Key("SecondOperator", "second_operator", read_enum(list(OPERATORS)), "Plus",
                "the operator applied after the first"),
            Key("SecondValue", "second_value", read_list(read_float), (),
                "values of the second operator (none: no second step)"),
            Key("Truncate", "truncate", read_bool, False, "round the result towards zero"))
    float_output = True

    def __init__(self, first_operator: str, first_value: Sequence[float],
                 second_operator: str = "Plus", second_value: Sequence[float] = (),
                 truncate: bool = False):
        for key, operator in (("FirstOperator", first_operator),
                              ("SecondOperator", second_operator)):
            if operator not in OPERATORS:
                raise ParameterError(key, f"unknown operator {operator!r} "
                                          f"(known: {', '.join(OPERATORS)})")
        if not first_value:
            raise ParameterError("FirstValue", "FirstValue needs at least one value")
        self.first_operator, self.first_value = first_operator, tuple(first_value)
        self.second_operator, self.second_value = second_operator, tuple(second_value)
        self.truncate = truncate

    def __call__(self, x, generator=None):
        check_batch(x, "RangeAffineTransformation")
        y = x.to(torch.float32)
        y = range_affine(y, self.first_operator, self._per_channel(self.first_value, x, 1))
        if self.second_value:
            y = range_affine(y, self.second_operator,
                             self._per_channel(self.second_value, x, 2))
        return y.trunc() if self.truncate else y

    @staticmethod
    def _per_channel(values, x, which) -> Sequence[float]:
        channels = x.shape[1]
        if len(values) not in (1, channels):
            name = "FirstValue" if which == 1 else "SecondValue"
            raise ValueError(f"RangeAffineTransformation: {name} has {len(values)} values; "
                             f"it needs 1 or one per channel ({channels})")
        return list(values) * (channels if len(values) == 1 else 1)


def weighted_y(x: torch.Tensor, r: int, g: int, b: int) -> torch.Tensor:
    """Luma 0.299 R + 0.587 G + 0.114 B of channels r, g, b, [N, 1, H, W], OpenCV-exact."""
    if x.dtype.is_floating_point:
        return sum(w * x[:, i:i + 1] for w, i in zip(_Y_FLOAT, (r, g, b)))
    acc = sum(w * x[:, i:i + 1].to(torch.int32) for w, i in zip(_Y_FIXED, (r, g, b)))
    return ((acc + (1 << 13)) >> 14).to(x.dtype)


def ycrcb(x: torch.Tensor, r: int, g: int, b: int) -> torch.Tensor:
    """OpenCV's RGB -> YCrCb (Cr = (R - Y) 0.713 + half, Cb = (B - Y) 0.564 + half)."""
    if x.dtype.is_floating_point:
        y = weighted_y(x, r, g, b)
        cr = (x[:, r:r + 1] - y) * _CRCB_FLOAT[0] + 0.5
        cb = (x[:, b:b + 1] - y) * _CRCB_FLOAT[1] + 0.5
        return torch.cat([y, cr, cb], dim=1)
    wide = x.to(torch.int32)
    acc = sum(w * wide[:, i:i + 1] for w, i in zip(_Y_FIXED, (r, g, b)))
    y = (acc + (1 << 13)) >> 14
    delta = (128 << 14) + (1 << 13)
    cr = ((wide[:, r:r + 1] - y) * _CRCB_FIXED[0] + delta) >> 14
    cb = ((wide[:, b:b + 1] - y) * _CRCB_FIXED[1] + delta) >> 14
    return torch.cat([y, cr, cb], dim=1).clamp_(0, 255).to(x.dtype)


@TRANSFORMATIONS.register("ColorSpaceTransformation")
class ColorSpace(Transformation):
    """Colour conversion. ``BGR``/``RGB`` make 3 channels from grey, BGR or BGRA input;
    ``YCrCb`` converts BGR; ``RGB_to_*`` read the input as RGB."""

    KEYS = (Key("ColorSpace", "color_space", read_enum(list(COLOR_SPACES)), REQUIRED,
                "the target colour space"),)

    def __init__(self, color_space: str):
        if color_space not in SUPPORTED_COLOR_SPACES:
            raise ParameterError("ColorSpace", f"ColorSpace={color_space} is not supported "
                                               f"by n2prune (supported: "
                                               f"{', '.join(SUPPORTED_COLOR_SPACES)})")
        self.color_space = color_space

    def __call__(self, x, generator=None):
        check_batch(x, "ColorSpaceTransformation")
        channels, space = x.shape[1], self.color_space
        if space in ("BGR", "RGB"):
            if channels == 1:
                return x.expand(-1, 3, -1, -1).contiguous()
            order = [0, 1, 2] if space == "BGR" else [2, 1, 0]
            return x[:, order].contiguous() if channels in (3, 4) else x
        if channels < 3:
            return x
        if space == "YCrCb":
            return ycrcb(x, 2, 1, 0)
        if space == "RGB_to_YCrCb":
            return ycrcb(x, 0, 1, 2)
        return x[:, [2, 1, 0]].contiguous()


@TRANSFORMATIONS.register("ChannelExtractionTransformation")
class ChannelExtraction(Transformation):
    """Keep one channel of a BGR image (Blue, Green, Red, Gray, or Y/Cb/Cr of YCrCb).

    A one-channel image passes unchanged, as in N2D2.
    """

    KEYS = (Key("CSChannel", "channel", read_enum(list(CHANNELS)), REQUIRED,
                "the channel to keep"),)

    def __init__(self, channel: str):
        if channel not in SUPPORTED_CHANNELS:
            raise ParameterError("CSChannel", f"CSChannel={channel} is not supported by "
                                              f"n2prune (supported: "
                                              f"{', '.join(SUPPORTED_CHANNELS)})")
        self.channel = channel

    def __call__(self, x, generator=None):
        check_batch(x, "ChannelExtractionTransformation")
        if x.shape[1] <= 1:
            return x
        if self.channel == "Gray":
            return weighted_y(x, 2, 1, 0)
        if self.channel in ("Y", "Cb", "Cr"):
            x = ycrcb(x, 2, 1, 0)
        index = {"Blue": 0, "Y": 0, "Green": 1, "Cr": 1, "Red": 2, "Cb": 2}[self.channel]
        return x[:, index:index + 1].contiguous()
