"""Conv, Fc and Sequence: N2D2's layouts, output sizes, and plain-PyTorch equivalence."""

import pytest
import torch
import torch.nn.functional as F

from n2prune.cells import Conv, Fc, Sequence


def test_conv_dims_are_width_first_and_weight_is_pytorch_layout():
    conv = Conv(3, 8, kernel_dims=[5, 3])
    assert conv.weight.shape == (8, 3, 3, 5)
    assert conv.bias.shape == (8,)
    assert Conv(3, 8, kernel_dims=[3, 3], no_bias=True).bias is None


def test_conv_equals_torch_conv2d_with_xy_swapped():
    torch.manual_seed(0)
    conv = Conv(2, 4, kernel_dims=[3, 2], stride_dims=[2, 1], padding_dims=[1, 0],
                dilation_dims=[1, 2])
    x = torch.randn(2, 2, 9, 7)
    expected = F.conv2d(x, conv.weight, conv.bias, stride=(1, 2), padding=(0, 1),
                        dilation=(2, 1))
    assert torch.allclose(conv(x), expected)


@pytest.mark.parametrize("kernel,stride,padding,dilation,subsample,size", [
    ([5, 5], [1, 1], [0, 0], [1, 1], [1, 1], (32, 32)),
    ([3, 3], [2, 2], [1, 1], [1, 1], [1, 1], (15, 16)),
    ([3, 1], [1, 3], [2, 0], [2, 1], [1, 1], (11, 9)),
    ([4, 4], [1, 1], [0, 0], [1, 1], [2, 2], (24, 23)),
    ([3, 3], [2, 1], [1, 1], [1, 1], [3, 2], (17, 13)),
    ([3, 3], [1, 1], [-1, -1], [1, 1], [1, 1], (10, 10)),
])
def test_conv_output_matches_n2d2_formula(kernel, stride, padding, dilation, subsample, size):
    conv = Conv(1, 2, kernel_dims=kernel, stride_dims=stride, padding_dims=padding,
                dilation_dims=dilation, sub_sample_dims=subsample)
    out = conv(torch.randn(1, 1, *size))
    assert tuple(out.shape[2:]) == conv.output_size(*size)


def test_subsampling_keeps_every_nth_output():
    torch.manual_seed(1)
    conv = Conv(1, 1, kernel_dims=[3, 3], sub_sample_dims=[2, 2])
    x = torch.randn(1, 1, 10, 10)
    dense = F.conv2d(x, conv.weight, conv.bias)
    assert torch.allclose(conv(x), dense[:, :, ::2, ::2])


def test_connection_map_skips_unconnected_kernels_in_forward_and_backward():
    # output 0 reads channel 0: N2D2 counts the map as a group and keeps the filler's values
    connection = torch.tensor([[1, 0], [0, 1], [1, 1]], dtype=torch.bool)
    conv = Conv(2, 3, kernel_dims=[3, 3], connection=connection)
    assert torch.all(conv.weight[0, 1] != 0) and torch.all(conv.weight[1, 0] != 0)
    x = torch.randn(2, 2, 5, 5)
    zeroed = conv.weight.detach() * connection[:, :, None, None]
    assert torch.equal(conv(x), F.conv2d(x, zeroed, conv.bias.detach()))
    conv(x).sum().backward()
    assert torch.all(conv.weight.grad[0, 1] == 0) and torch.all(conv.weight.grad[2] != 0)


def test_connection_map_without_output_0_to_channel_0_zeroes_unconnected_kernels():
    # N2D2's getNbGroups gives 0 for such a map, and only then are the kernels zeroed
    connection = torch.tensor([[0, 1], [1, 0], [1, 1]], dtype=torch.bool)
    conv = Conv(2, 3, kernel_dims=[3, 3], connection=connection)
    assert torch.all(conv.weight[0, 0] == 0) and torch.all(conv.weight[1, 1] == 0)
    assert torch.all(conv.weight[0, 1] != 0) and torch.all(conv.weight[2] != 0)


def test_groups_make_a_grouped_convolution():
    conv = Conv(4, 6, kernel_dims=[3, 3], groups=2)
    assert conv.weight.shape == (6, 2, 3, 3)
    x = torch.randn(1, 4, 6, 6)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, groups=2))


def test_multi_input_conv_concatenates_channels_in_input_order():
    conv = Conv(5, 2, kernel_dims=[1, 1], input_channels=[2, 3])
    a, b = torch.randn(1, 2, 4, 4), torch.randn(1, 3, 4, 4)
    assert torch.allclose(conv(a, b), F.conv2d(torch.cat([a, b], 1), conv.weight, conv.bias))
    assert conv.input_slices == [slice(0, 2), slice(2, 5)]


def test_default_fillers_are_normal_0_05():
    torch.manual_seed(0)
    conv = Conv(64, 64, kernel_dims=[3, 3])
    assert conv.weight.std().item() == pytest.approx(0.05, rel=0.05)
    assert abs(conv.weight.mean().item()) < 0.002


@pytest.mark.parametrize("kwargs,words", [
    ({"nb_inputs": 0, "nb_outputs": 2}, ["nb_inputs", "positive"]),
    ({"nb_inputs": 2, "nb_outputs": 2, "kernel_dims": [3, 3, 3]}, ["kernel_dims", "[X, Y]"]),
    ({"nb_inputs": 2, "nb_outputs": 2, "stride_dims": [0, 1]}, ["stride_dims", ">= 1"]),
    ({"nb_inputs": 3, "nb_outputs": 2, "groups": 2}, ["groups=2", "divide"]),
    ({"nb_inputs": 3, "nb_outputs": 2, "input_channels": [1, 1]}, ["input_channels", "sum"]),
    ({"nb_inputs": 2, "nb_outputs": 2, "connection": torch.ones(3, 3)}, ["connection"]),
])
def test_conv_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        Conv(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_fc_flattens_x_fastest_then_y_then_channel():
    fc = Fc(2 * 3 * 4, 5)
    x = torch.randn(2, 2, 3, 4)
    assert torch.allclose(fc(x), x.reshape(2, -1) @ fc.weight.t() + fc.bias)


def test_fc_multi_input_and_size_check():
    fc = Fc(7, 3, input_sizes=[3, 4])
    a, b = torch.randn(2, 3), torch.randn(2, 4)
    assert torch.allclose(fc(a, b), torch.cat([a, b], 1) @ fc.weight.t() + fc.bias)
    with pytest.raises(ValueError, match="12 features.*nb_inputs=7"):
        fc(torch.randn(2, 3, 2, 2))


def test_sequence_iterates_over_its_cells_and_chains_them():
    seq = Sequence([Conv(1, 2, kernel_dims=[3, 3], activation=torch.nn.ReLU()),
                    Fc(2 * 4 * 4, 3)])
    assert [type(cell).__name__ for cell in seq] == ["Conv", "Fc"]
    assert seq(torch.randn(5, 1, 6, 6)).shape == (5, 3)
    with pytest.raises(TypeError, match="item 1"):
        Sequence([Fc(2, 2), "relu"])
