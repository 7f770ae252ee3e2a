"""Cell constructors from Python: activation names, X-first dims, several inputs."""

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import n2prune.cells
from n2prune.cells import Conv, Fc
from n2prune.cells.activation import ActivationCell
from n2prune.cells.activation_functions import Rectifier
from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.deconv import Deconv
from n2prune.cells.elemwise import ElemWise
from n2prune.cells.pool import Pool
from n2prune.cells.shifted import ShiftedConv, ShiftedFc


def _shifted(cls, cell, shift):
    """``cell`` turned into ``cls`` (what compaction does) with a zero shift map."""
    cls.attach_shift(cell, shift)
    return cell


# One small instance of every cell class that takes an ``activation``, with its input.
WITH_ACTIVATION = {
    Conv: (lambda act: Conv(2, 3, kernel_dims=[2, 2], activation=act), (1, 2, 4, 4)),
    Fc: (lambda act: Fc(8, 3, activation=act), (1, 2, 2, 2)),
    Deconv: (lambda act: Deconv(2, 3, [2, 2], activation=act), (1, 2, 3, 3)),
    Pool: (lambda act: Pool(2, [2, 2], [2, 2], pooling="Average", activation=act),
           (1, 2, 4, 4)),
    BatchNorm: (lambda act: BatchNorm(2, activation=act), (4, 2, 3, 3)),
    ElemWise: (lambda act: ElemWise(2, "Sum", activation=act), (1, 2, 3, 3)),
    ActivationCell: (lambda act: ActivationCell(2, activation=act), (1, 2, 3, 3)),
    ShiftedConv: (lambda act: _shifted(ShiftedConv, Conv(2, 3, kernel_dims=[2, 2],
                                                         activation=act), torch.zeros(3, 3, 3)),
                  (1, 2, 4, 4)),
    ShiftedFc: (lambda act: _shifted(ShiftedFc, Fc(8, 3, activation=act), torch.zeros(3)),
                (1, 2, 2, 2)),
}


def _cell_classes_with_an_activation_argument():
    found = set()
    for info in pkgutil.iter_modules(n2prune.cells.__path__):
        module = importlib.import_module(f"n2prune.cells.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, nn.Module) and cls.__module__ == module.__name__ \
                    and "activation" in inspect.signature(cls.__init__).parameters:
                found.add(cls)
    return found


def test_every_cell_with_an_activation_argument_is_covered_here():
    assert _cell_classes_with_an_activation_argument() == set(WITH_ACTIVATION)


@pytest.mark.parametrize("cls", list(WITH_ACTIVATION), ids=lambda c: c.__name__)
def test_an_activation_name_builds_that_activation(cls):
    make, shape = WITH_ACTIVATION[cls]
    torch.manual_seed(0)
    plain, named = make(None), make("Rectifier")
    named.load_state_dict(plain.state_dict())
    assert isinstance(named.activation, Rectifier)
    x = torch.randn(*shape)
    expected = torch.relu(plain(x))
    assert (expected == 0).any() and (expected > 0).any()  # the activation matters here
    assert torch.equal(named(x), expected)


@pytest.mark.parametrize("cls", list(WITH_ACTIVATION), ids=lambda c: c.__name__)
def test_a_bad_activation_is_refused_at_construction(cls):
    make, _ = WITH_ACTIVATION[cls]
    with pytest.raises(ValueError, match=r"unknown activation function 'Rectifer'; did you "
                                         r"mean 'Rectifier'\?"):
        make("Rectifer")
    with pytest.raises(TypeError, match="activation must be None, an activation name or a "
                                        "module, not int"):
        make(3)


# X-first dims: Conv, Deconv and Pool read them with one helper (n2prune.cells.dims.pair).
@pytest.mark.parametrize("dims, expected", [
    ([3], [3, 1]),      # N2D2's 1-D dims: [n] is [n, 1]
    (3, [3, 3]),        # an int is square
    ([3, 2], [3, 2]),   # width first
])
def test_conv_deconv_and_pool_read_kernel_dims_alike(dims, expected):
    conv, deconv, pool = Conv(1, 1, kernel_dims=dims), Deconv(1, 1, dims), Pool(1, dims)
    assert conv.kernel_dims == deconv.kernel_dims == pool.pool_dims == expected
    width, height = expected
    assert conv.weight.shape[2:] == deconv.weight.shape[2:] == (height, width)


def test_one_item_padding_pads_the_width_only_in_every_cell():
    conv = Conv(1, 1, kernel_dims=[1, 1], padding_dims=[2])
    deconv = Deconv(1, 1, [1, 1], padding_dims=[-2])
    assert conv.padding_dims == [2, 0]
    assert deconv.padding_dims == [-2, 0]
    assert conv(torch.ones(1, 1, 3, 3)).shape == (1, 1, 3, 7)


@pytest.mark.parametrize("make", [lambda d: Conv(1, 1, kernel_dims=d),
                                  lambda d: Deconv(1, 1, d)], ids=["Conv", "Deconv"])
@pytest.mark.parametrize("dims, message", [
    ([3, 3, 3], r"kernel_dims=\[3, 3, 3\]: expected \[X\] or \[X, Y\] \(width first\); 3-D "
                r"dims are not supported"),
    ([0, 3], r"kernel_dims=\[0, 3\]: values must be >= 1"),
    ("3", r"kernel_dims='3': expected an int, \[X\] or \[X, Y\] \(width first\)"),
    ([3, 2.0], r"kernel_dims=\[3, 2.0\]: expected integers"),
    (1.5, r"kernel_dims=1.5: expected an int, \[X\] or \[X, Y\]"),
])
def test_bad_dims_name_argument_and_form(make, dims, message):
    with pytest.raises(ValueError, match=message):
        make(dims)


def test_grouped_conv_with_several_inputs_is_refused_with_the_equivalent_form():
    with pytest.raises(ValueError, match=r"^Conv: input_channels=\[2, 2\] with groups=2 is not "
                                         r"supported: .*use groups=1 with a block-diagonal "
                                         r"connection map"):
        Conv(4, 4, groups=2, input_channels=[2, 2])


def test_grouped_conv_with_one_input_and_the_equivalent_two_input_conv_agree():
    grouped = Conv(4, 4, kernel_dims=[3, 3], groups=2, input_channels=[4])
    assert [grouped.weight[:, part].shape[1] for part in grouped.input_slices] == [2]
    block = torch.block_diag(torch.ones(2, 2), torch.ones(2, 2)).bool()
    two_inputs = Conv(4, 4, kernel_dims=[3, 3], connection=block, input_channels=[2, 2])
    with torch.no_grad():
        two_inputs.weight.zero_()
        two_inputs.weight[:2, :2] = grouped.weight[:2]
        two_inputs.weight[2:, 2:] = grouped.weight[2:]
        two_inputs.bias.copy_(grouped.bias)
    assert [two_inputs.weight[:, part].numel() for part in two_inputs.input_slices] == [72, 72]
    x = torch.randn(1, 4, 5, 5)
    assert torch.allclose(two_inputs(x[:, :2], x[:, 2:]), grouped(x), atol=1e-6)
