import pytest
import torch
import torch.nn.functional as F

from fakesection import FakeSection, build_cell
from n2prune.cells.dims import pair, read_dims, read_kernel_dims
from n2prune.cells.padding import Padding
from n2prune.cells.reshape import Reshape, reshape_dims
from n2prune.cells.resize import Resize
from n2prune.errors import ConfigError, ConfigWarning


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- dims families ---------------------------------------------------------------------

def test_kernel_dims_priority_dims_then_size_then_width_height():
    both = {"KernelDims": "5 3", "KernelSize": "7", "KernelWidth": "1", "KernelHeight": "2"}
    assert read_kernel_dims(FakeSection(both)) == [5, 3]
    del both["KernelDims"]
    assert read_kernel_dims(FakeSection(both)) == [7, 7]
    del both["KernelSize"]
    assert read_kernel_dims(FakeSection(both)) == [1, 2]
    assert read_kernel_dims(FakeSection({**both, "KernelDepth": "3"})) == [1, 2, 3]
    with pytest.raises(ConfigError, match=r"KernelHeight: missing required key"):
        read_kernel_dims(FakeSection({"KernelWidth": "3"}))


def test_stride_like_dims_priority_and_per_axis_defaults():
    assert read_dims(FakeSection({"StrideDims": "2 1", "Stride": "3"}), "Stride", 2, 1) == [2, 1]
    assert read_dims(FakeSection({"Stride": "3", "StrideX": "5"}), "Stride", 2, 1) == [3, 3]
    assert read_dims(FakeSection({"StrideY": "4"}), "Stride", 2, 1) == [1, 4]
    assert read_dims(FakeSection({}), "Padding", 3, 0) == [0, 0, 0]
    assert read_dims(FakeSection({"StrideZ": "2"}), "Stride", 2, 1) == [1, 1]


def test_pair_extends_one_d_and_rejects_three_d():
    assert pair("pool_dims", [3], 1, 1) == (3, 1)
    assert pair("padding_dims", [2], 0, 0) == (2, 0)
    assert pair("padding_dims", 2, 0, 0) == (2, 2)  # an int is square, as in PyTorch
    with pytest.raises(ValueError, match="3-D dims are not supported"):
        pair("pool_dims", [1, 2, 3], 1, 1)


# --- Padding ---------------------------------------------------------------------------

def test_padding_pads_with_zeros_and_crops_when_negative():
    x = rand(1, 2, 4, 5)
    y = Padding(2, 1, 2, -1, 3)(x)
    assert y.shape == (1, 2, 4 + 1 + 2, 5 - 1 + 3)
    assert torch.equal(y, F.pad(x[:, :, :, 1:], (0, 3, 1, 2)))


def test_build_padding():
    values = {"NbOutputs": "2", "TopPadding": "1", "BottomPadding": "0", "LeftPadding": "2",
              "RightPadding": "-1"}
    module, shape = build_cell("Padding", values, [(2, 4, 5)])
    assert shape == (2, 5, 6) == tuple(module(rand(1, 2, 4, 5)).shape[1:])
    with pytest.raises(ConfigError, match=r"\[cell\] TopPadding: missing required key"):
        build_cell("Padding", {"NbOutputs": "2"}, [(2, 4, 5)])
    with pytest.raises(ConfigError, match=r"LeftPadding: cropping leaves an empty"):
        build_cell("Padding", {**values, "LeftPadding": "-6"}, [(2, 4, 5)])


# --- Resize ----------------------------------------------------------------------------

def test_resize_bilinear_tf_align_corners_equals_torch_align_corners():
    x = rand(1, 2, 3, 4)
    y = Resize(2, 7, 5, "BilinearTF", align_corners=True)(x)
    assert torch.allclose(y, F.interpolate(x, size=(5, 7), mode="bilinear",
                                           align_corners=True), atol=1e-6)


def test_resize_bilinear_tf_without_align_corners_samples_i_times_in_over_out():
    x = torch.tensor([[[[0.0, 10.0, 20.0]]]])                    # 1 x 3
    y = Resize(1, 6, 1, "BilinearTF", align_corners=False)(x)
    # positions 0, .5, 1, 1.5, 2, 2.5 (the last clamps to the edge)
    assert y.flatten().tolist() == pytest.approx([0.0, 5.0, 10.0, 15.0, 20.0, 20.0])


def test_resize_nearest_neighbor_floor_of_i_in_over_out():
    x = torch.arange(4.0).view(1, 1, 1, 4)
    assert Resize(1, 8, 1, "NearestNeighbor")(x).flatten().tolist() == \
        [0, 0, 1, 1, 2, 2, 3, 3]
    assert Resize(1, 3, 1, "NearestNeighbor")(x).flatten().tolist() == [0, 1, 2]
    x = rand(1, 2, 6, 6)
    assert torch.equal(Resize(2, 3, 3, "NearestNeighbor")(x),
                       F.interpolate(x, size=(3, 3), mode="nearest"))


def test_resize_gradient_flows():
    x = rand(1, 1, 2, 2).requires_grad_()
    Resize(1, 4, 4, "BilinearTF")(x).sum().backward()
    assert x.grad.sum().item() == pytest.approx(16.0)


def test_build_resize_and_bilinear_refused():
    values = {"NbOutputs": "2", "OutputWidth": "8", "OutputHeight": "6", "Mode": "BilinearTF"}
    module, shape = build_cell("Resize", values, [(2, 3, 4)], config={"AlignCorners": "0"})
    assert shape == (2, 6, 8) and module.align_corners is False
    assert module(rand(1, 2, 3, 4)).shape == (1, 2, 6, 8)
    with pytest.raises(ConfigError, match=r"Mode: Resize: mode 'Bilinear' is not implemented "
                                          r"in N2D2"):
        build_cell("Resize", {**values, "Mode": "Bilinear"}, [(2, 3, 4)])
    with pytest.raises(ConfigError, match=r"\[cell\] Mode: missing required key"):
        build_cell("Resize", {k: v for k, v in values.items() if k != "Mode"}, [(2, 3, 4)])


# --- Reshape ---------------------------------------------------------------------------

def test_reshape_dims_zero_copies_minus_one_infers_x_first():
    assert reshape_dims((3, 4, 5), [0, 0, 0]) == (3, 4, 5)
    assert reshape_dims((3, 4, 5), [1, 1, -1]) == (60, 1, 1)
    assert reshape_dims((3, 4, 5), [-1, 4]) == (1, 4, 15)        # padded with 1: [X, 4, 1]
    assert reshape_dims((3, 4, 5), [5, 0, 3, 0]) == (3, 4, 5)    # batch entry ignored
    with pytest.raises(ValueError, match="at most one dimension can be -1"):
        reshape_dims((3, 4, 5), [-1, -1, 3])
    with pytest.raises(ValueError, match=r"gives 7x1x1 \(XxYxZ\), which does not hold the "
                                         r"5x4x3 input"):
        reshape_dims((3, 4, 5), [7])


def test_reshape_keeps_n2d2_memory_order():
    x = rand(2, 3, 4, 5)
    y = Reshape(60, (60, 1, 1))(x)
    assert torch.equal(y.flatten(1), x.flatten(1))


def test_build_reshape():
    module, shape = build_cell("Reshape", {"NbOutputs": "60", "Dims": "1 1 -1"}, [(3, 4, 5)])
    assert shape == (60, 1, 1) and module(rand(2, 3, 4, 5)).shape == (2, 60, 1, 1)
    with pytest.raises(ConfigError, match=r"\[cell\] Dims: Dims=\[7\] gives"):
        build_cell("Reshape", {"NbOutputs": "7", "Dims": "7"}, [(3, 4, 5)])
    with pytest.warns(ConfigWarning, match=r"Dims: the fourth \(batch\) dimension is ignored"):
        build_cell("Reshape", {"NbOutputs": "60", "Dims": "1 1 60 2"}, [(3, 4, 5)])
    with pytest.warns(ConfigWarning, match=r"NbOutputs: is 6 but Dims gives 60 channels"):
        build_cell("Reshape", {"NbOutputs": "6", "Dims": "1 1 -1"}, [(3, 4, 5)])
