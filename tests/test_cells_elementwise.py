import pytest
import torch

from fakesection import build_cell
from n2prune.cells.activation_functions import Rectifier, Tanh
from n2prune.cells.activation import ActivationCell
from n2prune.cells.dropout import Dropout
from n2prune.cells.elemwise import ElemWise
from n2prune.cells.scaling import Scaling
from n2prune.cells.target_bias import TargetBias
from n2prune.cells.threshold import Threshold
from n2prune.errors import ConfigError, ConfigWarning

A = torch.tensor([[[[1.0, -2.0]], [[3.0, 0.0]]]])     # 1, 2, 1, 2
B = torch.tensor([[[[-1.0, 4.0]], [[0.5, 0.0]]]])


# --- ElemWise --------------------------------------------------------------------------

def test_elemwise_operations():
    assert torch.equal(ElemWise(2, "Sum")(A, B), A + B)
    assert torch.equal(ElemWise(2, "AbsSum")(A, B), A.abs() + B.abs())
    assert torch.allclose(ElemWise(2, "EuclideanSum")(A, B), torch.sqrt(A ** 2 + B ** 2))
    assert torch.equal(ElemWise(2, "Prod")(A, B), A * B)
    assert torch.equal(ElemWise(2, "Max")(A, B), torch.maximum(A, B))


def test_elemwise_weights_and_shifts_per_input_and_per_layer():
    y = ElemWise(2, "Sum", weights=[0.5, 2.0], shifts=[0.1, -1.0])(A, B)
    assert torch.allclose(y, 0.5 * A + 0.1 + 2.0 * B - 1.0)
    y = ElemWise(2, "Sum", weights=[0.5], shifts=[1.0], coeff_mode="PerLayer")(A, B)
    assert torch.allclose(y, 0.5 * A + 1.0 + 0.5 * B + 1.0)
    y = ElemWise(2, "Sum", weights=[3.0])(A, B)             # missing weights default to 1
    assert torch.allclose(y, 3.0 * A + B)
    y = ElemWise(2, "EuclideanSum", weights=[2.0, 1.0], shifts=[0.0, 1.0])(A, B)
    assert torch.allclose(y, torch.sqrt((2 * A) ** 2 + (B + 1) ** 2))
    y = ElemWise(2, "AbsSum", weights=[2.0, 1.0], shifts=[5.0, 5.0])(A, B)   # no shift
    assert torch.allclose(y, 2 * A.abs() + B.abs())


def test_elemwise_per_channel_coefficients_are_input_major():
    y = ElemWise(2, "Sum", weights=[1.0, 2.0, 3.0, 4.0], coeff_mode="PerChannel")(A, B)
    scale_a = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    scale_b = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    assert torch.allclose(y, scale_a * A + scale_b * B)


def test_elemwise_gradients_euclidean_zero_and_max_first():
    a = torch.zeros(1, 1, 1, 1, requires_grad=True)
    b = torch.zeros(1, 1, 1, 1, requires_grad=True)
    ElemWise(1, "EuclideanSum")(a, b).sum().backward()
    assert a.grad.item() == 0.0 and b.grad.item() == 0.0      # not NaN
    a = torch.ones(1, 1, 1, 1, requires_grad=True)
    b = torch.ones(1, 1, 1, 1, requires_grad=True)
    ElemWise(1, "Max")(a, b).sum().backward()
    assert a.grad.item() + b.grad.item() == 1.0


def test_elemwise_activation_and_shape_check():
    assert torch.equal(ElemWise(2, "Sum", activation=Rectifier())(A, B), (A + B).clamp(min=0))
    with pytest.raises(ValueError, match="inputs must have the same shape"):
        ElemWise(2, "Sum")(A, torch.zeros(1, 2, 1, 3))
    with pytest.raises(ValueError, match="operation='Add'"):
        ElemWise(2, "Add")


def test_build_elemwise():
    values = {"NbOutputs": "2", "Operation": "Sum", "Weights": "0.5 1.0", "Shifts": "0 1"}
    module, shape = build_cell("ElemWise", values, [(2, 1, 2), (2, 1, 2)])
    assert shape == (2, 1, 2)
    assert torch.allclose(module(A, B), 0.5 * A + B + 1.0)
    with pytest.raises(ConfigError, match=r"\[cell\] Operation: missing required key"):
        build_cell("ElemWise", {"NbOutputs": "2"}, [(2, 1, 2), (2, 1, 2)])
    with pytest.raises(ConfigError, match=r"Operation=Abs: .*did you mean 'AbsSum'"):
        build_cell("ElemWise", {"NbOutputs": "2", "Operation": "Abs"}, [(2, 1, 2)])
    with pytest.raises(ConfigError, match=r"Input: inputs must have the same shape "
                                          r"\(in0 2x1x2, in1 2x1x3\)"):
        build_cell("ElemWise", {"NbOutputs": "2", "Operation": "Sum"}, [(2, 1, 2), (2, 1, 3)])
    with pytest.warns(ConfigWarning, match=r"Weights: ignored by Operation=Max"):
        build_cell("ElemWise", {"NbOutputs": "2", "Operation": "Max", "Weights": "2 2"},
                   [(2, 1, 2), (2, 1, 2)])
    with pytest.warns(ConfigWarning, match=r"Weights: 3 values given, PerInput uses 2"):
        build_cell("ElemWise", {"NbOutputs": "2", "Operation": "Sum", "Weights": "1 1 1"},
                   [(2, 1, 2), (2, 1, 2)])


# --- Activation, Scaling, Threshold ----------------------------------------------------

def test_activation_cell_default_tanh_and_build():
    assert torch.allclose(ActivationCell(2)(A), torch.tanh(A))
    module, shape = build_cell("Activation", {"NbOutputs": "2"}, [(2, 1, 2)])
    assert isinstance(module.activation, Tanh) and shape == (2, 1, 2)
    module, _ = build_cell("Activation", {"NbOutputs": "2", "ActivationFunction": "Rectifier"},
                           [(2, 1, 2)])
    assert torch.equal(module(A), A.clamp(min=0))


def test_scaling():
    assert torch.equal(Scaling(2, 0.5)(A), 0.5 * A)
    module, shape = build_cell("Scaling", {"NbOutputs": "2", "Factor": "3"}, [(2, 1, 2)])
    assert torch.equal(module(A), 3 * A) and shape == (2, 1, 2)
    with pytest.raises(ConfigError, match=r"\[cell\] Factor: missing required key"):
        build_cell("Scaling", {"NbOutputs": "2"}, [(2, 1, 2)])


@pytest.mark.parametrize("operation,expected", [
    ("Binary", [[5.0, 0.0], [5.0, 0.0]]), ("BinaryInverted", [[0.0, 5.0], [0.0, 5.0]]),
    ("Truncate", [[0.5, -2.0], [0.5, 0.0]]), ("ToZero", [[1.0, 0.0], [3.0, 0.0]]),
    ("ToZeroInverted", [[0.0, -2.0], [0.0, 0.0]])])
def test_threshold_operations(operation, expected):
    y = Threshold(2, 0.5, operation, max_value=5.0)(A)
    assert y[0, :, 0].tolist() == expected


def test_build_threshold():
    module, _ = build_cell("Threshold", {"NbOutputs": "2", "Threshold": "0.5"}, [(2, 1, 2)],
                           config={"Operation": "ToZero"})
    assert (module.threshold, module.operation, module.max_value) == (0.5, "ToZero", 1.0)
    with pytest.raises(ConfigError, match=r"\[config\] Operation=Zero"):
        build_cell("Threshold", {"NbOutputs": "2", "Threshold": "0.5"}, [(2, 1, 2)],
                   config={"Operation": "Zero"})


# --- TargetBias ------------------------------------------------------------------------

def test_target_bias_adds_bias_to_targets_in_training_only():
    x = torch.tensor([[[[0.8]], [[-0.9]], [[0.4]]], [[[0.2]], [[-0.9]], [[0.4]]]])
    cell = TargetBias(3, -0.5)
    target = torch.tensor([[[[1.0]], [[0.0]], [[0.0]]]] * 2)
    cell.set_target(target)
    # a target gets the bias only where x > -bias (N2D2's condition): 0.8 yes, 0.2 no
    assert cell(x).flatten().tolist() == pytest.approx([0.3, -0.9, 0.4, 0.2, -0.9, 0.4])
    cell.eval()
    assert torch.equal(cell(x), x)
    cell.train()
    cell.set_target(None)
    assert torch.equal(cell(x), x)
    module, shape = build_cell("TargetBias", {"NbOutputs": "3", "Bias": "-0.5"}, [(3, 1, 1)])
    assert module.bias == -0.5 and shape == (3, 1, 1)


# --- Dropout ---------------------------------------------------------------------------

def test_dropout_rescales_like_nn_dropout_and_is_identity_in_eval():
    x = torch.ones(4, 8, 10, 10)
    cell = Dropout(8, 0.25, generator=torch.Generator().manual_seed(0))
    y = cell(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert 0.70 < kept.float().mean().item() < 0.80
    cell.eval()
    assert torch.equal(cell(x), x)


def test_dropout_frame_cpu_mode_does_not_rescale():
    y = Dropout(8, 0.5, rescale=False, generator=torch.Generator().manual_seed(0))(
        torch.ones(2, 8, 4, 4))
    assert set(y.unique().tolist()) == {0.0, 1.0}


def test_dropout_concatenates_inputs():
    cell = Dropout(4, 0.5).eval()
    assert torch.equal(cell(A, B), torch.cat([A, B], 1))


def test_build_dropout_rate_from_config_only():
    module, shape = build_cell("Dropout", {"NbOutputs": "84"}, [(84, 1, 1)],
                               config={"Dropout": "0.2"})
    assert module.dropout == 0.2 and shape == (84, 1, 1)
    with pytest.warns(ConfigWarning, match=r"\[cell\] Dropout: ignored"):
        module, _ = build_cell("Dropout", {"NbOutputs": "84", "Dropout": "0.2"}, [(84, 1, 1)])
    assert module.dropout == 0.5               # as N2D2: the cifar-10.ini case
    with pytest.raises(ConfigError, match=r"NbOutputs: is 80 but must be 84"):
        build_cell("Dropout", {"NbOutputs": "80"}, [(84, 1, 1)])
    with pytest.raises(ConfigError, match=r"\[config\] Dropout: .*must be in \[0, 1\]"):
        build_cell("Dropout", {"NbOutputs": "84"}, [(84, 1, 1)], config={"Dropout": "1.5"})
