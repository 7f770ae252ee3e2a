"""Geometric transformations: Rescale, PadCrop, SliceExtraction and Flip (spec §5.3)."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from n2prune.data.exceptions import ParameterError
from n2prune.data.transforms import (BORDER_TYPE_KEY, BORDER_TYPES, BORDER_VALUE_KEY,
                                     TRANSFORMATIONS, Transformation,
                                     border_index, check_batch, extract, fill_values,
                                     to_dtype_of)
from n2prune.ini.params import REQUIRED, Key
from n2prune.ini.values import read_bool, read_float, read_list, read_uint

_WIDTH = Key("Width", "width", read_uint, REQUIRED, "output width")
_HEIGHT = Key("Height", "height", read_uint, REQUIRED, "output height")


def _check_border(border_type: str) -> None:
    if border_type not in BORDER_TYPES:
        raise ParameterError("BorderType", f"unknown BorderType {border_type!r} "
                                           f"(known: {', '.join(BORDER_TYPES)})")


@TRANSFORMATIONS.register("RescaleTransformation")
class Rescale(Transformation):
    """Bilinear resize (OpenCV INTER_LINEAR: half-pixel centres, no antialiasing).

    With ``keep_aspect_ratio`` one ratio r scales both axes: min(W/w, H/h) when
    ``resize_to_fit``, else the max; the size is int(r * w) x int(r * h). 8-bit results
    are rounded to nearest (OpenCV's fixed-point arithmetic can differ by 1).
    """

    KEYS = (_WIDTH, _HEIGHT,
            Key("KeepAspectRatio", "keep_aspect_ratio", read_bool, False,
                "scale both axes by the same ratio"),
            Key("ResizeToFit", "resize_to_fit", read_bool, True,
                "with KeepAspectRatio: fit inside Width x Height (else cover it)"))

    def __init__(self, width: int, height: int, keep_aspect_ratio: bool = False,
                 resize_to_fit: bool = True):
        if width <= 0 or height <= 0:
            raise ParameterError("Width", f"Rescale size must be positive, got "
                                          f"{width}x{height}")
        self.width, self.height = width, height
        self.keep_aspect_ratio, self.resize_to_fit = keep_aspect_ratio, resize_to_fit

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        """(height, width) of the result for an input of this size."""
        if not self.keep_aspect_ratio:
            return self.height, self.width
        ratios = (self.width / width, self.height / height)
        ratio = min(ratios) if self.resize_to_fit else max(ratios)
        if ratio * width < 1.0 or ratio * height < 1.0:
            raise ValueError(f"Rescale: a {width}x{height} image would shrink to nothing")
        return int(ratio * height), int(ratio * width)

    def __call__(self, x, generator=None):
        check_batch(x, "RescaleTransformation")
        size = self.output_size(*x.shape[-2:])
        if tuple(x.shape[-2:]) == size:
            return x.clone()
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        y = F.interpolate(work, size=size, mode="bilinear", align_corners=False)
        return to_dtype_of(y, x.dtype)


@TRANSFORMATIONS.register("PadCropTransformation")
class PadCrop(Transformation):
    """Centred pad or crop to Width x Height (or frame + Width/Height with ``additive_wh``).

    With d = target - size: left = ceil(d/2), right = d - left, so an odd padding puts the
    extra pixel on the left/top and an odd crop removes it on the right/bottom. The default
    border is reflect-101 (OpenCV BORDER_REFLECT_101), not zeros.
    """

    KEYS = (_WIDTH, _HEIGHT,
            Key("AdditiveWH", "additive_wh", read_bool, False,
                "Width/Height are added to the frame size"),
            BORDER_TYPE_KEY, BORDER_VALUE_KEY)

    def __init__(self, width: int, height: int, additive_wh: bool = False,
                 border_type: str = "MinusOneReflectBorder",
                 border_value: Sequence[float] = ()):
        _check_border(border_type)
        self.width, self.height, self.additive_wh = width, height, additive_wh
        self.border_type, self.border_value = border_type, tuple(border_value)

    def __call__(self, x, generator=None):
        check_batch(x, "PadCropTransformation")
        height, width = x.shape[-2:]
        target_h = height + self.height if self.additive_wh else self.height
        target_w = width + self.width if self.additive_wh else self.width
        top = math.ceil((target_h - height) / 2)
        left = math.ceil((target_w - width) / 2)
        rows = border_index(torch.arange(target_h)[None] - top, height, self.border_type)
        cols = border_index(torch.arange(target_w)[None] - left, width, self.border_type)
        return extract(x, rows, cols, fill_values(x, self.border_type, self.border_value))


@TRANSFORMATIONS.register("SliceExtractionTransformation")
class SliceExtraction(Transformation):
    """Crop Width x Height at a top-left offset, fixed or uniform over 0..(size - W).

    Width/Height 0 keep the frame size. A crop running past the right or bottom edge is an
    error unless ``allow_padding``; the padding then borders the cropped part, as in N2D2.
    """

    KEYS = (_WIDTH, _HEIGHT,
            Key("OffsetX", "offset_x", read_uint, 0, "left column of the slice"),
            Key("OffsetY", "offset_y", read_uint, 0, "top row of the slice"),
            Key("RandomOffsetX", "random_offset_x", read_bool, False,
                "draw the column offset uniformly in 0..(image width - Width)"),
            Key("RandomOffsetY", "random_offset_y", read_bool, False,
                "draw the row offset uniformly in 0..(image height - Height)"),
            Key("RandomRotation", "random_rotation", read_bool, False, "not supported"),
            Key("RandomRotationRange", "random_rotation_range", read_list(read_float),
                (0.0, 360.0), "not supported"),
            Key("RandomScaling", "random_scaling", read_bool, False, "not supported"),
            Key("RandomScalingRange", "random_scaling_range", read_list(read_float),
                (0.8, 1.2), "not supported"),
            Key("AllowPadding", "allow_padding", read_bool, False,
                "pad a slice that runs past the image instead of failing"),
            BORDER_TYPE_KEY, BORDER_VALUE_KEY)

    def __init__(self, width: int, height: int, offset_x: int = 0, offset_y: int = 0,
                 random_offset_x: bool = False, random_offset_y: bool = False,
                 random_rotation: bool = False, random_rotation_range=(0.0, 360.0),
                 random_scaling: bool = False, random_scaling_range=(0.8, 1.2),
                 allow_padding: bool = False, border_type: str = "MinusOneReflectBorder",
                 border_value: Sequence[float] = ()):
        _check_border(border_type)
        for key, used in (("RandomRotation", random_rotation),
                          ("RandomScaling", random_scaling)):
            if used:
                raise ParameterError(key, f"SliceExtractionTransformation {key}=1 is not "
                                          f"supported by n2prune")
        self.width, self.height = width, height
        self.offset_x, self.offset_y = offset_x, offset_y
        self.random_offset_x, self.random_offset_y = random_offset_x, random_offset_y
        self.allow_padding = allow_padding
        self.border_type, self.border_value = border_type, tuple(border_value)

    @property
    def random(self) -> bool:
        return self.random_offset_x or self.random_offset_y

    def __call__(self, x, generator=None):
        check_batch(x, "SliceExtractionTransformation")
        if self.random:
            generator = self._need_generator(generator)
        height, width = x.shape[-2:]
        h, w = self.height or height, self.width or width
        left = self._offsets(x.shape[0], width, w, self.offset_x, self.random_offset_x,
                             generator)
        top = self._offsets(x.shape[0], height, h, self.offset_y, self.random_offset_y,
                            generator)
        if (int(left.max()) + w > width or int(top.max()) + h > height) \
                and not self.allow_padding:
            raise ValueError(f"SliceExtractionTransformation: cannot extract a {w}x{h} "
                             f"slice at offset ({int(left.max())}, {int(top.max())}) from a "
                             f"{width}x{height} image without AllowPadding=1")
        if int(left.max()) >= width or int(top.max()) >= height:
            raise ValueError(f"SliceExtractionTransformation: offset "
                             f"({int(left.max())}, {int(top.max())}) is outside the "
                             f"{width}x{height} image")
        rows = border_index(torch.arange(h)[None], height - top[:, None],
                            self.border_type) + top[:, None]
        cols = border_index(torch.arange(w)[None], width - left[:, None],
                            self.border_type) + left[:, None]
        rows = torch.where(rows < top[:, None], torch.full_like(rows, -1), rows)
        cols = torch.where(cols < left[:, None], torch.full_like(cols, -1), cols)
        return extract(x, rows, cols, fill_values(x, self.border_type, self.border_value))

    @staticmethod
    def _offsets(n: int, size: int, slice_size: int, fixed: int, random: bool,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        """Offsets [N] (or [1] when fixed): random ones uniform over 0..size-slice_size."""
        if not random:
            return torch.tensor([fixed])
        if size <= slice_size:
            return torch.zeros(1, dtype=torch.long)
        return torch.randint(0, size - slice_size + 1, (n,), generator=generator)


@TRANSFORMATIONS.register("FlipTransformation")
class Flip(Transformation):
    """Horizontal and/or vertical flips; a random flip happens with probability 1/2 per
    image and per axis, and replaces the fixed setting of that axis (as in N2D2)."""

    KEYS = (Key("HorizontalFlip", "horizontal_flip", read_bool, False, "mirror left-right"),
            Key("VerticalFlip", "vertical_flip", read_bool, False, "mirror top-bottom"),
            Key("RandomHorizontalFlip", "random_horizontal_flip", read_bool, False,
                "mirror left-right with probability 1/2"),
            Key("RandomVerticalFlip", "random_vertical_flip", read_bool, False,
                "mirror top-bottom with probability 1/2"))

    def __init__(self, horizontal_flip: bool = False, vertical_flip: bool = False,
                 random_horizontal_flip: bool = False, random_vertical_flip: bool = False):
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.random_horizontal_flip = random_horizontal_flip
        self.random_vertical_flip = random_vertical_flip

    @property
    def random(self) -> bool:
        return self.random_horizontal_flip or self.random_vertical_flip

    def __call__(self, x, generator=None):
        check_batch(x, "FlipTransformation")
        if self.random:
            generator = self._need_generator(generator)
        for dim, fixed, random in ((3, self.horizontal_flip, self.random_horizontal_flip),
                                   (2, self.vertical_flip, self.random_vertical_flip)):
            if random:
                flip = torch.randint(0, 2, (x.shape[0],), generator=generator).bool()
                x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(dim), x)
            elif fixed:
                x = x.flip(dim)
        return x
