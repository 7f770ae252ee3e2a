import math

import pytest
import torch
import torch.nn.functional as F

from fakesection import build_cell
from n2prune.cells.activation_functions import Rectifier
from n2prune.cells.deconv import Deconv, deconv_output_size
from n2prune.errors import ConfigError, ConfigWarning
from n2prune.cells.initializers import ConstantFiller, HeFiller


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size,k,s,p,d", [(1, 3, 2, 0, 1), (3, 3, 2, 0, 1), (15, 3, 2, 0, 1),
                                          (5, 4, 3, 1, 1), (4, 3, 1, 1, 2), (6, 2, 2, -1, 1)])
def test_output_formula_matches_actual_output(size, k, s, p, d):
    cell = Deconv(2, 3, [k, k], [s, s], [p, p], [d, d])
    y = cell(rand(1, 2, size, size))
    expected = size * s + d * (k - 1) + 1 - 2 * p - s
    assert y.shape[2:] == (expected, expected) == cell.output_size(size, size)
    assert deconv_output_size(size, k, s, p, d) == expected


def test_forward_is_torch_conv_transpose_with_x_first_dims():
    cell = Deconv(3, 4, kernel_dims=[3, 2], stride_dims=[2, 1], padding_dims=[1, 0])
    x = rand(2, 3, 4, 5)
    expected = F.conv_transpose2d(x, cell.weight, cell.bias, stride=(1, 2), padding=(0, 1))
    assert cell.weight.shape == (3, 4, 2, 3)
    assert torch.allclose(cell(x), expected)


def test_negative_padding_adds_zero_borders_then_bias():
    cell = Deconv(1, 1, [1, 1], padding_dims=[-1, -1], activation=Rectifier())
    with torch.no_grad():
        cell.weight.fill_(2.0)
        cell.bias.fill_(0.5)
    y = cell(torch.ones(1, 1, 1, 1))
    assert y[0, 0].tolist() == [[0.5, 0.5, 0.5], [0.5, 2.5, 0.5], [0.5, 0.5, 0.5]]


def test_default_fillers_are_normal_0_0_05():
    cell = Deconv(64, 64, [3, 3])
    assert cell.weight.std().item() == pytest.approx(0.05, rel=0.05)
    assert abs(cell.bias.mean().item()) < 0.02


def test_fillers_use_n2d2_fans_per_input():
    cell = Deconv(96, 50, [3, 3], input_channels=[32, 64])
    cell.reset_parameters(HeFiller(), ConstantFiller(0.1), torch.Generator().manual_seed(0))
    assert cell.weight[:32].std().item() == pytest.approx(math.sqrt(2 / (9 * 32)), rel=0.05)
    assert cell.weight[32:].std().item() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.05)
    assert torch.all(cell.bias == 0.1)
    cell.reset_parameters(HeFiller("FanOut"), generator=torch.Generator().manual_seed(0))
    assert cell.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 50)), rel=0.05)


def test_connection_mask_zeroes_unconnected_kernels_and_their_gradients():
    connection = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.bool)   # [O, C]
    cell = Deconv(2, 3, [2, 2], connection=connection)
    assert torch.all(cell.weight[0, 2] == 0) and torch.all(cell.weight[1, 0] == 0)
    cell(rand(1, 2, 3, 3)).sum().backward()
    assert torch.all(cell.weight.grad[0, 2] == 0) and torch.all(cell.weight.grad[1, 0] == 0)
    assert torch.any(cell.weight.grad[0, 0] != 0)


def test_back_propagate_false_stops_the_input_gradient():
    x = rand(1, 2, 3, 3).requires_grad_()
    Deconv(2, 2, [2, 2], back_propagate=False)(x).sum().backward()
    assert x.grad is None


def test_build_mnist_autoencoder_decoder_chain():
    sizes, channels = [1], [100]
    for nb_outputs in (32, 16, 8, 1):
        module, shape = build_cell(
            "Deconv", {"KernelDims": "3 3", "NbOutputs": str(nb_outputs), "Stride": "2",
                       "ActivationFunction": "Rectifier", "WeightsFiller": "HeFiller"},
            [(channels[-1], sizes[-1], sizes[-1])])
        assert module(rand(1, channels[-1], sizes[-1], sizes[-1])).shape[1:] == shape
        sizes.append(shape[1])
        channels.append(nb_outputs)
    assert sizes == [1, 3, 7, 15, 31]
    # desp: 3x3x8x1 weights + 1 bias, as N2D2 counts them
    assert module.weight.numel() + module.bias.numel() == 73


def test_build_groups_and_masks_and_config():
    module, _ = build_cell("Deconv", {"KernelSize": "3", "NbOutputs": "4",
                                      "Mapping.ChannelsPerGroup": "1"}, [(4, 5, 5)],
                           config={"NoBias": "1", "WeightsExportFormat": "HWCO"})
    assert module.groups == 4 and module.connection is None and module.bias is None
    assert module.weight.shape == (4, 1, 3, 3)
    assert module.export_options == {"weights_export_format": "HWCO"}
    module, _ = build_cell("Deconv", {"KernelSize": "3", "NbOutputs": "2",
                                      "Mapping(a)": "1 0 1 1"}, [(2, 5, 5)], names=["a"])
    assert module.groups == 1 and module.connection is not None
    assert torch.all(module.weight[0, 1] == 0)        # channel 0 -> output 1: row 0, col 1


def test_build_errors_and_warnings():
    with pytest.raises(ConfigError, match=r"\[cell\] NbOutputs: missing required key"):
        build_cell("Deconv", {"KernelSize": "3"}, [(2, 5, 5)])
    with pytest.raises(ConfigError, match=r"\[cell\] WeightsFiller: unknown filler"):
        build_cell("Deconv", {"KernelSize": "3", "NbOutputs": "2",
                              "WeightsFiller": "Xavier"}, [(2, 5, 5)])
    with pytest.raises(ConfigError, match=r"KernelDims: .*3-D dims are not supported"):
        build_cell("Deconv", {"KernelDims": "3 3 3", "NbOutputs": "2"}, [(2, 5, 5)])
    with pytest.raises(ConfigError, match=r"KernelSize: a 5x5 input gives an empty"):
        build_cell("Deconv", {"KernelSize": "1", "NbOutputs": "2", "Padding": "3"}, [(2, 5, 5)])
    with pytest.warns(ConfigWarning, match="output map #1 has no input connection"):
        build_cell("Deconv", {"KernelSize": "3", "NbOutputs": "2", "Mapping(in0)": "1 0"},
                   [(1, 5, 5)])
