"""Transformations against hand-computed values (OpenCV's border and rounding rules)."""

import pytest
import torch

from n2prune.data import (TRANSFORMATIONS, ChannelExtraction, ColorSpace, Flip, PadCrop,
                          ParameterError, RangeAffine, Rescale, SliceExtraction, applies_to)
from n2prune.ini.params import Key


def grid(h, w, dtype=torch.uint8):
    """[1, 1, h, w] holding 1, 2, 3, ... row by row."""
    return torch.arange(1, h * w + 1, dtype=dtype).reshape(1, 1, h, w)


# --- PadCrop ----------------------------------------------------------------------

def test_padcrop_default_border_is_reflect_101():
    out = PadCrop(5, 5)(grid(3, 3))[0, 0]
    assert out.tolist() == [[5, 4, 5, 6, 5],
                            [2, 1, 2, 3, 2],
                            [5, 4, 5, 6, 5],
                            [8, 7, 8, 9, 8],
                            [5, 4, 5, 6, 5]]


def test_padcrop_odd_padding_puts_the_extra_pixel_left():
    out = PadCrop(6, 1, border_type="ConstantBorder")(grid(1, 3))[0, 0]
    assert out.tolist() == [[0, 0, 1, 2, 3, 0]]


def test_padcrop_odd_crop_removes_the_extra_pixel_right():
    assert PadCrop(2, 1)(grid(1, 5))[0, 0].tolist() == [[2, 3]]


@pytest.mark.parametrize("border, expected", [
    ("ReplicateBorder", [1, 1, 1, 2, 3, 3, 3]),
    ("ReflectBorder", [2, 1, 1, 2, 3, 3, 2]),
    ("WrapBorder", [2, 3, 1, 2, 3, 1, 2]),
    ("MinusOneReflectBorder", [3, 2, 1, 2, 3, 2, 1]),
])
def test_padcrop_border_types(border, expected):
    assert PadCrop(7, 1, border_type=border)(grid(1, 3))[0, 0, 0].tolist() == expected


def test_padcrop_reflect_101_wider_than_the_image_reflects_again():
    out = PadCrop(9, 1)(grid(1, 3))[0, 0, 0]
    assert out.tolist() == [2, 3, 2, 1, 2, 3, 2, 1, 2]


def test_padcrop_constant_and_mean_fill_per_channel():
    x = torch.tensor([[[[1, 2]]], [[[4, 4]]]], dtype=torch.uint8).reshape(1, 2, 1, 2)
    constant = PadCrop(4, 1, border_type="ConstantBorder", border_value=[9])(x)
    assert constant[0].tolist() == [[[9, 1, 2, 9]], [[0, 4, 4, 0]]]
    mean = PadCrop(3, 1, border_type="MeanBorder")(x)          # mean 1.5 rounds to 2
    assert mean[0].tolist() == [[[2, 1, 2]], [[4, 4, 4]]]


def test_padcrop_additive_wh_grows_the_frame():
    assert PadCrop(2, 4, additive_wh=True)(grid(3, 3)).shape == (1, 1, 7, 5)


# --- SliceExtraction --------------------------------------------------------------

def test_slice_fixed_offset():
    out = SliceExtraction(2, 2, offset_x=1, offset_y=1)(grid(3, 4))[0, 0]
    assert out.tolist() == [[6, 7], [10, 11]]


def test_slice_random_offsets_cover_the_inclusive_range():
    columns = torch.arange(5, dtype=torch.uint8).expand(300, 1, 2, 5)
    out = SliceExtraction(3, 2, random_offset_x=True)(
        columns, torch.Generator().manual_seed(0))
    offsets = out[:, 0, 0, 0]
    assert set(offsets.tolist()) == {0, 1, 2}
    assert torch.equal(out[:, 0, 0, 2], offsets + 2)


def test_slice_random_offsets_are_reproducible_from_the_generator():
    x = grid(6, 6).expand(8, 1, 6, 6)
    slicer = SliceExtraction(3, 3, random_offset_x=True, random_offset_y=True)
    first = slicer(x, torch.Generator().manual_seed(4))
    again = slicer(x, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and slicer.random


def test_slice_that_does_not_fit_is_an_error_without_allow_padding():
    with pytest.raises(ValueError, match="AllowPadding"):
        SliceExtraction(3, 1, offset_x=2)(grid(1, 4))


def test_slice_padding_borders_the_cropped_part():
    out = SliceExtraction(4, 1, offset_x=2, allow_padding=True)(grid(1, 5))
    assert out[0, 0, 0].tolist() == [3, 4, 5, 4]
    out = SliceExtraction(4, 1, offset_x=2, allow_padding=True,
                          border_type="ConstantBorder", border_value=[7])(grid(1, 5))
    assert out[0, 0, 0].tolist() == [3, 4, 5, 7]


def test_random_needs_a_generator():
    with pytest.raises(ValueError, match="Generator"):
        Flip(random_horizontal_flip=True)(grid(2, 2))


# --- Flip -------------------------------------------------------------------------

def test_fixed_flips():
    x = grid(2, 2)
    assert Flip(horizontal_flip=True)(x)[0, 0].tolist() == [[2, 1], [4, 3]]
    assert Flip(vertical_flip=True)(x)[0, 0].tolist() == [[3, 4], [1, 2]]
    assert Flip(True, True)(x)[0, 0].tolist() == [[4, 3], [2, 1]]


def test_random_flip_flips_each_image_with_its_own_draw():
    x = grid(2, 3).expand(64, 1, 2, 3)
    flip = Flip(random_horizontal_flip=True)
    out = flip(x, torch.Generator().manual_seed(1))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped ^ kept).all()) and 10 < int(flipped.sum()) < 54
    expected = torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(1))
    assert flipped.tolist() == expected.bool().tolist()


# --- Rescale ----------------------------------------------------------------------

def test_rescale_bilinear_half_pixel_centres():
    x = torch.tensor([[0.0, 4.0], [8.0, 12.0]]).reshape(1, 1, 2, 2)
    out = Rescale(4, 4)(x)[0, 0]
    assert out.tolist() == [[0, 1, 3, 4], [2, 3, 5, 6], [6, 7, 9, 10], [8, 9, 11, 12]]


def test_rescale_keeps_8_bit_data_8_bit_rounded():
    x = torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8).reshape(1, 1, 2, 2)
    out = Rescale(4, 1)(x)
    assert out.dtype == torch.uint8 and out[0, 0].tolist() == [[1, 1, 2, 2]]


def test_rescale_keep_aspect_ratio_sizes():
    x = torch.zeros(1, 1, 10, 20)
    assert Rescale(8, 8, keep_aspect_ratio=True)(x).shape[-2:] == (4, 8)
    assert Rescale(8, 8, keep_aspect_ratio=True, resize_to_fit=False)(x).shape[-2:] \
        == (8, 16)


# --- RangeAffine, ColorSpace, ChannelExtraction ------------------------------------

def test_range_affine_per_channel_then_second_operator():
    x = torch.tensor([10, 20, 30], dtype=torch.uint8).reshape(1, 3, 1, 1)
    out = RangeAffine("Minus", [1, 2, 3], "Multiplies", [0.5])(x)
    assert out.dtype == torch.float32 and out.flatten().tolist() == [4.5, 9.0, 13.5]
    truncated = RangeAffine("Divides", [4.0], truncate=True)(-x.float())
    assert truncated.flatten().tolist() == [-2.0, -5.0, -7.0]


def test_range_affine_list_length_must_match_the_channels():
    with pytest.raises(ValueError, match="1 or one per channel"):
        RangeAffine("Plus", [1, 2])(torch.zeros(1, 3, 1, 1))


def test_color_space_bgr_rgb_and_grey():
    bgr = torch.tensor([1, 2, 3], dtype=torch.uint8).reshape(1, 3, 1, 1)
    assert ColorSpace("RGB")(bgr).flatten().tolist() == [3, 2, 1]
    assert ColorSpace("BGR")(torch.full((1, 1, 1, 1), 7)).flatten().tolist() == [7, 7, 7]
    bgra = torch.tensor([1, 2, 3, 4]).reshape(1, 4, 1, 1)
    assert ColorSpace("BGR")(bgra).flatten().tolist() == [1, 2, 3]


def test_ycrcb_of_pure_red_matches_opencv():
    red = torch.tensor([0, 0, 255], dtype=torch.uint8).reshape(1, 3, 1, 1)
    assert ColorSpace("YCrCb")(red).flatten().tolist() == [76, 255, 85]


def test_channel_extraction():
    bgr = torch.tensor([10, 20, 30], dtype=torch.uint8).reshape(1, 3, 1, 1)
    assert ChannelExtraction("Gray")(bgr).flatten().tolist() == [22]
    grey = ChannelExtraction("Gray")(bgr.float()).item()
    assert grey == pytest.approx(0.114 * 10 + 0.587 * 20 + 0.299 * 30)
    assert ChannelExtraction("Red")(bgr).flatten().tolist() == [30]
    assert ChannelExtraction("Blue")(bgr).shape == (1, 1, 1, 1)
    one = torch.full((1, 1, 2, 2), 5)
    assert torch.equal(ChannelExtraction("Green")(one), one)


def test_unsupported_options_are_errors_naming_the_key():
    with pytest.raises(ParameterError, match="not supported") as error:
        ColorSpace("HSV")
    assert error.value.key == "ColorSpace"
    with pytest.raises(ParameterError, match="RandomRotation"):
        SliceExtraction(2, 2, random_rotation=True)


# --- flags, ApplyTo, registry ------------------------------------------------------

def test_random_and_float_flags():
    assert Flip(random_vertical_flip=True).random and not Flip(horizontal_flip=True).random
    assert not Rescale(2, 2).random and not SliceExtraction(2, 2).random
    assert RangeAffine("Plus", [0]).float_output and not PadCrop(2, 2).float_output
    assert RangeAffine("Plus", [0]).output_dtype(torch.uint8) == torch.float32
    assert Rescale(2, 2).output_dtype(torch.uint8) == torch.uint8


@pytest.mark.parametrize("apply_to, sets", [
    ("All", {"Learn", "Validation", "Test"}), ("LearnOnly", {"Learn"}),
    ("ValidationOnly", {"Validation"}), ("TestOnly", {"Test"}),
    ("NoLearn", {"Validation", "Test"}), ("NoValidation", {"Learn", "Test"}),
    ("NoTest", {"Learn", "Validation"}),
])
def test_apply_to(apply_to, sets):
    assert {s for s in ("Learn", "Validation", "Test") if applies_to(apply_to, s)} == sets


def test_every_transformation_has_a_keys_table():
    assert len(TRANSFORMATIONS) == 7
    for name in TRANSFORMATIONS.names():
        keys = TRANSFORMATIONS.get(name).KEYS
        assert keys and all(isinstance(k, Key) for k in keys)
