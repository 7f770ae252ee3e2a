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
