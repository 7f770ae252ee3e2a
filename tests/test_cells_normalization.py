import pytest
import torch
import torch.nn.functional as F

from fakesection import build_cell
from n2prune.cells.activation_functions import Rectifier
from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.lrn import LRN, local_response_norm
from n2prune.cells.normalize import Normalize
from n2prune.cells.softmax import Softmax
from n2prune.errors import ConfigError, ConfigWarning


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- Softmax ---------------------------------------------------------------------------

def test_softmax_over_channels_at_each_position():
    x = rand(2, 4, 3, 3)
    assert torch.allclose(Softmax(4)(x), torch.softmax(x, dim=1))
    assert torch.allclose(Softmax(4)(x).sum(dim=1), torch.ones(2, 3, 3))


def test_softmax_groups_and_concatenated_inputs():
    a, b = rand(1, 2, 1, 1, seed=1), rand(1, 4, 1, 1, seed=2)
    y = Softmax(6, group_size=3)(a, b)
    x = torch.cat([a, b], 1)
    assert torch.allclose(y[:, :3], torch.softmax(x[:, :3], 1))
    assert torch.allclose(y[:, 3:], torch.softmax(x[:, 3:], 1))
    with pytest.raises(ValueError, match="group_size=4 must divide nb_outputs=6"):
        Softmax(6, group_size=4)


def test_build_softmax_with_loss_flag_and_errors():
    module, shape = build_cell("Softmax", {"NbOutputs": "10", "WithLoss": "1"}, [(10, 1, 1)])
    assert module.with_loss and shape == (10, 1, 1)
    module, _ = build_cell("Softmax", {"NbOutputs": "10"}, [(10, 1, 1)])
    assert not module.with_loss and module.group_size == 0
    with pytest.raises(ConfigError, match=r"NbOutputs: is 9 but must be 10"):
        build_cell("Softmax", {"NbOutputs": "9"}, [(10, 1, 1)])
    with pytest.raises(ConfigError, match=r"GroupSize: 4 must divide NbOutputs=10"):
        build_cell("Softmax", {"NbOutputs": "10", "GroupSize": "4"}, [(10, 1, 1)])
    with pytest.raises(ConfigError, match=r"WithLoss=true: boolean expected"):
        build_cell("Softmax", {"NbOutputs": "10", "WithLoss": "true"}, [(10, 1, 1)])


def test_build_softmax_input_window_crops_every_input():
    values = {"NbOutputs": "3", "InputOffsetX": "1", "InputWidth": "2", "InputOffsetY": "2"}
    module, shape = build_cell("Softmax", values, [(3, 4, 5)])
    assert shape == (3, 2, 2)
    x = rand(1, 3, 4, 5)
    assert torch.allclose(module(x), torch.softmax(x[:, :, 2:4, 1:3], 1))
    with pytest.raises(ConfigError, match=r"InputWidth: window x=1..5, y=2..3 does not fit"):
        build_cell("Softmax", {**values, "InputWidth": "5"}, [(3, 4, 5)])


# --- BatchNorm -------------------------------------------------------------------------

def test_batchnorm_training_uses_batch_stats_and_updates_running_like_torch():
    x = rand(4, 3, 5, 5) * 2 + 1
    bn = BatchNorm(3, epsilon=1e-5, moving_average_momentum=0.1)
    ref = torch.nn.BatchNorm2d(3, eps=1e-5, momentum=0.1)
    ref.running_var.zero_()                       # N2D2 starts the variance at 0
    assert torch.allclose(bn(x), ref(x), atol=1e-6)
    assert torch.allclose(bn.running_mean, ref.running_mean)
    assert torch.allclose(bn.running_var, ref.running_var)   # unbiased, m·batch + (1-m)·run
    batch_var = x.var(dim=(0, 2, 3), unbiased=True)
    assert torch.allclose(bn.running_var, 0.1 * batch_var)
    bn.eval()
    expected = (x - bn.running_mean[None, :, None, None]) / torch.sqrt(
        bn.running_var[None, :, None, None] + 1e-5)
    assert torch.allclose(bn(x), expected, atol=1e-5)


def test_batchnorm_zero_momentum_always_uses_running_stats():
    bn = BatchNorm(2, moving_average_momentum=0.0)
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(4.0)
    x = rand(3, 2, 2, 2)
    assert torch.allclose(bn(x), (x - 1.0) / torch.sqrt(torch.tensor(4.0 + 1e-5)))
    assert torch.equal(bn.running_mean, torch.ones(2))


def test_batchnorm_activation_and_concatenation_and_back_propagate():
    a = rand(2, 1, 3, 3, seed=1).requires_grad_()
    b = rand(2, 2, 3, 3, seed=2)
    bn = BatchNorm(3, activation=Rectifier())
    y = bn(a, b)
    assert y.shape == (2, 3, 3, 3) and bool((y >= 0).all())
    y.sum().backward()
    assert a.grad is not None
    frozen = rand(2, 3, 3, 3).requires_grad_()
    BatchNorm(3, back_propagate=False)(frozen).pow(2).sum().backward()
    assert frozen.grad is None


def test_batchnorm_validation_and_build():
    with pytest.raises(ValueError, match=r"moving_average_momentum must be in \[0, 1\)"):
        BatchNorm(3, moving_average_momentum=1.0)
    module, shape = build_cell("BatchNorm", {"NbOutputs": "3", "ActivationFunction": "Rectifier"},
                               [(3, 4, 4)], config={"Epsilon": "0.001",
                                                    "MovingAverageMomentum": "0.2"})
    assert (module.epsilon, module.moving_average_momentum) == (0.001, 0.2)
    assert isinstance(module.activation, Rectifier) and shape == (3, 4, 4)
    module, _ = build_cell("BatchNorm", {"NbOutputs": "3"}, [(3, 4, 4)])
    assert (module.epsilon, module.moving_average_momentum) == (1e-5, 0.1)
    with pytest.raises(ConfigError, match=r"\[config\] MovingAverageMomentum: .*\[0, 1\)"):
        build_cell("BatchNorm", {"NbOutputs": "3"}, [(3, 4, 4)],
                   config={"MovingAverageMomentum": "1.5"})
    with pytest.raises(ConfigError, match=r"NbOutputs: is 4 but must be 3"):
        build_cell("BatchNorm", {"NbOutputs": "4"}, [(3, 4, 4)])


def test_batchnorm_parameter_in_cell_section_is_ignored_with_a_warning():
    with pytest.warns(ConfigWarning, match=r"\[cell\] Epsilon: ignored: Epsilon is a cell "
                                           r"parameter, read only from a ConfigSection"):
        module, _ = build_cell("BatchNorm", {"NbOutputs": "3", "Epsilon": "0.1"}, [(3, 4, 4)])
    assert module.epsilon == 1e-5


# --- LRN -------------------------------------------------------------------------------

def test_lrn_alpha_is_divided_by_n_and_window_is_centered():
    x = rand(2, 7, 3, 3)
    y = LRN(7, n=5, alpha=0.1, beta=0.75, k=2.0)(x)
    c = 3
    expected = x[:, c] / (2.0 + 0.1 / 5 * (x[:, 1:6] ** 2).sum(1)) ** 0.75
    assert torch.allclose(y[:, c], expected)
    edge = x[:, 0] / (2.0 + 0.1 / 5 * (x[:, 0:3] ** 2).sum(1)) ** 0.75
    assert torch.allclose(y[:, 0], edge)
    assert torch.allclose(y, F.local_response_norm(x, 5, 0.1, 0.75, 2.0))


def test_lrn_even_n_uses_the_n_plus_one_window_of_the_spec():
    x = rand(1, 5, 1, 1)
    y = local_response_norm(x, 2, 1.0, 1.0, 1.0)
    expected = x[:, 2] / (1.0 + 1.0 / 2 * (x[:, 1:4] ** 2).sum(1))
    assert torch.allclose(y[:, 2], expected)


def test_build_lrn_reads_config():
    module, shape = build_cell("LRN", {"NbOutputs": "4"}, [(4, 2, 2)],
                               config={"N": "3", "Alpha": "0.01", "Beta": "0.5", "K": "1"})
    assert (module.n, module.alpha, module.beta, module.k) == (3, 0.01, 0.5, 1.0)
    assert shape == (4, 2, 2)
    module, _ = build_cell("LRN", {"NbOutputs": "4"}, [(4, 2, 2)])
    assert (module.n, module.alpha, module.beta, module.k) == (5, 1e-4, 0.75, 2.0)
    with pytest.raises(ConfigError, match=r"\[config\] N: LRN: n must be >= 1"):
        build_cell("LRN", {"NbOutputs": "4"}, [(4, 2, 2)], config={"N": "0"})


# --- Normalize -------------------------------------------------------------------------

def test_normalize_l2_with_n2d2_epsilon_and_gradient():
    x = rand(2, 3, 2, 2).requires_grad_()
    y = Normalize(3)(x)
    assert torch.allclose(y, x / torch.sqrt((x ** 2).sum(1, keepdim=True) + 1e-6))
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_build_normalize_refuses_l1_like_n2d2():
    module, shape = build_cell("Normalize", {"NbOutputs": "3", "Norm": "L2"}, [(3, 1, 1)])
    assert module.norm == "L2" and shape == (3, 1, 1)
    with pytest.raises(ConfigError, match=r"Norm: Normalize: norm='L1' is not supported"):
        build_cell("Normalize", {"NbOutputs": "3", "Norm": "L1"}, [(3, 1, 1)])
    with pytest.raises(ConfigError, match=r"\[cell\] Norm: missing required key"):
        build_cell("Normalize", {"NbOutputs": "3"}, [(3, 1, 1)])
    with pytest.raises(ConfigError, match="exactly one input"):
        build_cell("Normalize", {"NbOutputs": "3", "Norm": "L2"}, [(3, 1, 1), (3, 1, 1)])
