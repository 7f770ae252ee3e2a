import math

import pytest
import torch

from fakesection import FakeSection
from n2prune.cells.activation_functions import (ACTIVATIONS, Linear, Logistic, LogisticWithLoss, Rectifier,
                                 Saturation, Softplus, Swish, Tanh, TanhLeCun, as_activation,
                                 build_activation)
from n2prune.errors import ConfigError

X = torch.tensor([-3.0, -0.5, 0.0, 0.25, 2.0, 10.0])


def test_registry_holds_the_nine_n2d2_names():
    assert {"Linear", "Rectifier", "Tanh", "TanhLeCun", "Logistic", "LogisticWithLoss",
            "Saturation", "Softplus", "Swish"} <= set(ACTIVATIONS.names())  # and plug-ins


def test_linear_is_identity_and_clips_symmetrically():
    assert torch.equal(Linear()(X), X)
    assert Linear(clipping=1.0)(X).tolist() == [-1.0, -0.5, 0.0, 0.25, 1.0, 1.0]


def test_rectifier_leak_and_clipping():
    assert Rectifier()(X).tolist() == [0.0, 0.0, 0.0, 0.25, 2.0, 10.0]
    assert Rectifier(leak_slope=0.1)(X).tolist() == pytest.approx(
        [-0.3, -0.05, 0.0, 0.25, 2.0, 10.0])
    # clipping caps positives only; negatives keep the leak
    assert Rectifier(leak_slope=0.1, clipping=1.5)(X).tolist() == pytest.approx(
        [-0.3, -0.05, 0.0, 0.25, 1.5, 1.5])


def test_rectifier_gradient_is_zero_above_clipping_and_leak_below_zero():
    x = torch.tensor([-1.0, 0.5, 3.0], requires_grad=True)
    Rectifier(leak_slope=0.2, clipping=1.0)(x).sum().backward()
    assert x.grad.tolist() == pytest.approx([0.2, 1.0, 0.0])


def test_tanh_alpha_and_tanh_lecun_is_tanh_of_1_1439_x():
    assert torch.allclose(Tanh(alpha=2.0)(X), torch.tanh(2.0 * X))
    assert TanhLeCun().alpha == pytest.approx(1.143933, abs=1e-6)
    assert torch.allclose(TanhLeCun()(X), torch.tanh(1.7159 * 2 / 3 * X))
    # not LeCun's 1.7159·tanh(2x/3)
    assert TanhLeCun()(torch.tensor([1.0])).item() == pytest.approx(math.tanh(1.143933), abs=1e-6)
    assert TanhLeCun()(torch.tensor([3.0])).item() < 1.0


def test_logistic_saturation_softplus_swish_formulas():
    assert torch.allclose(Logistic()(X), 1 / (1 + torch.exp(-X)))
    assert LogisticWithLoss.with_loss and not Logistic.with_loss
    assert Saturation(threshold=0.5)(X).tolist() == [-0.5, -0.5, 0.0, 0.25, 0.5, 0.5]
    assert Softplus()(torch.tensor([0.0])).item() == pytest.approx(math.log(2.0))
    assert torch.allclose(Softplus()(X), torch.log1p(torch.exp(X)))
    assert torch.allclose(Swish()(X), X * torch.sigmoid(X))


def test_negative_clipping_is_refused():
    with pytest.raises(ValueError, match="clipping must be >= 0"):
        Rectifier(clipping=-1.0)


def test_build_activation_absent_gives_none_or_the_cell_default():
    assert build_activation(FakeSection({})) is None
    assert isinstance(build_activation(FakeSection({}), default="Tanh"), Tanh)


def test_build_activation_reads_prefixed_parameters():
    section = FakeSection({"ActivationFunction": "Rectifier",
                           "ActivationFunction.LeakSlope": "0.1",
                           "ActivationFunction.Clipping": "6"})
    act = build_activation(section)
    assert isinstance(act, Rectifier)
    assert (act.leak_slope, act.clipping) == (0.1, 6.0)


def test_build_activation_unknown_name_suggests():
    with pytest.raises(ConfigError) as info:
        build_activation(FakeSection({"ActivationFunction": "Rectifer"}))
    message = str(info.value)
    assert "[cell] ActivationFunction" in message
    assert "did you mean 'Rectifier'" in message


def test_build_activation_unknown_parameter_names_the_key_and_suggests():
    section = FakeSection({"ActivationFunction": "Rectifier",
                           "ActivationFunction.LeakSlop": "0.1"})
    with pytest.raises(ConfigError) as info:
        build_activation(section)
    message = str(info.value)
    assert "ActivationFunction.LeakSlop" in message
    assert "did you mean 'ActivationFunction.LeakSlope'" in message


def test_build_activation_parameter_of_a_parameterless_function():
    section = FakeSection({"ActivationFunction": "Logistic", "ActivationFunction.Alpha": "2"})
    with pytest.raises(ConfigError, match="Logistic has no parameters"):
        build_activation(section)


def test_removed_quantization_parameters_fail_with_a_hint():
    section = FakeSection({"ActivationFunction": "Rectifier",
                           "ActivationFunction.QuantizationLevels": "255"})
    with pytest.raises(ConfigError, match="no longer exist in N2D2"):
        build_activation(section)


def test_bad_parameter_value_is_located():
    section = FakeSection({"ActivationFunction": "Tanh", "ActivationFunction.Alpha": "x"})
    with pytest.raises(ConfigError, match=r"\[cell\] ActivationFunction.Alpha=x"):
        build_activation(section)
    section = FakeSection({"ActivationFunction": "Saturation",
                           "ActivationFunction.Threshold": "-1"})
    with pytest.raises(ConfigError, match="threshold must be >= 0"):
        build_activation(section)


def test_prefixed_keys_without_the_type_key_are_not_read():
    # N2D2 ignores ActivationFunction.* when ActivationFunction= is absent.
    assert build_activation(FakeSection({"ActivationFunction.LeakSlope": "0.1"})) is None


def test_as_activation_and_repr():
    assert as_activation(None) is None
    assert isinstance(as_activation("Swish"), Swish)
    module = Rectifier()
    assert as_activation(module) is module
    with pytest.raises(TypeError, match="activation must be"):
        as_activation(3)
    assert repr(Tanh(alpha=0.5)) == "Tanh(alpha=0.5)"
