"""Registries stay open: a member registered after import works from Python and from INI."""

from dataclasses import dataclass
from typing import ClassVar, Tuple

import pytest
import torch

from n2prune.cells.activation_functions import ACTIVATIONS, Activation
from n2prune.cells.initializers import WEIGHT_INITIALIZERS, Initializer
from n2prune.errors import ConfigError
from n2prune.ini.params import Key, kwargs_from
from n2prune.ini.values import read_enum, read_float
from n2prune.network.build import load_network
from n2prune.registry import Registry
from n2prune.solvers.lr_policies import LR_POLICIES
from n2prune.solvers import SGD_KEYS, SOLVERS, N2D2SGD

from fakesection import FakeSection

NET = """
[sp]
SizeX=3
SizeY=3
NbChannels=1
[conv]
Input=sp
Type=Conv
KernelDims=3 3
NbOutputs=2
{extra}
[conv.Target]
"""


def net_with(tmp_path, extra: str):
    path = tmp_path / "net.ini"
    path.write_text(NET.format(extra=extra))
    return load_network(str(path))


def test_unregister_returns_the_member_and_frees_the_name():
    colours = Registry("colour")
    colours.register("Red")(1)
    assert colours.unregister("Red") == 1
    assert "Red" not in colours and colours.names() == []
    colours.register("Red")(2)  # the name can be taken again
    assert colours.get("Red") == 2
    with pytest.raises(ValueError, match=r"unknown colour 'Blue' \(known: Red\)"):
        colours.unregister("Blue")


def test_registered_is_undone_even_when_the_block_raises():
    colours = Registry("colour")
    with pytest.raises(RuntimeError):
        with colours.registered("Red", 1):
            assert colours.get("Red") == 1
            raise RuntimeError
    assert "Red" not in colours


def test_read_enum_over_a_registry_sees_later_members_and_names_the_family():
    colours = Registry("colour")
    reader = read_enum(colours)
    with pytest.raises(ValueError, match=r"^unknown colour 'Red' \(known: \)$"):
        reader("Red")
    with colours.registered("Red", 1):
        assert reader("Red") == "Red"
        with pytest.raises(ValueError, match=r"unknown colour 'Rde'; did you mean 'Red'\?"):
            reader("Rde")


def test_read_enum_keeps_the_list_form_and_takes_a_callable():
    assert read_enum(["A", "B"])("B") == "B"
    with pytest.raises(ValueError, match=r"^unknown value 'C' \(known: A, B\)$"):
        read_enum(["A", "B"])("C")
    names = ["A"]
    reader = read_enum(lambda: names, what="letter")
    names.append("B")
    assert reader("B") == "B"
    with pytest.raises(ValueError, match=r"^unknown letter 'C'"):
        reader("C")


def halving(it: int, stimuli: int, p) -> float:
    """A plug-in policy: the rate halves after every update."""
    return p.learning_rate * 0.5 ** it


def test_lr_policy_registered_after_import_is_read_from_ini_and_used():
    section = FakeSection({"Solvers.LearningRatePolicy": "Halving",
                           "Solvers.LearningRate": "0.8"})
    with LR_POLICIES.registered("Halving", halving):
        kwargs = kwargs_from(section, SGD_KEYS, "Solvers.")
        assert kwargs == {"lr_policy": "Halving", "learning_rate": 0.8}
        weight = torch.nn.Parameter(torch.zeros(1))
        optimizer = N2D2SGD([weight], 1, **kwargs)
        rates = []
        for _ in range(3):
            weight.grad = torch.ones(1)
            optimizer.step()
            rates.append(optimizer.current_lr)
    assert rates == [0.8, 0.4, 0.2]
    assert weight.item() == pytest.approx(-1.4)
    with pytest.raises(ValueError, match="unknown learning-rate policy 'Halving'"):
        kwargs_from(section, SGD_KEYS, "Solvers.")


class PlainSGD(N2D2SGD):
    """A plug-in solver: N2D2's SGD under another INI name."""


def test_solver_registered_after_import_is_accepted_from_ini(tmp_path):
    extra = "Solvers=PlainSGD\nSolvers.LearningRate=0.25"
    with SOLVERS.registered("PlainSGD", PlainSGD):
        spec = net_with(tmp_path, extra).info["conv"].solvers["weight"]
        assert (spec.type, spec.kwargs()) == ("PlainSGD", {"learning_rate": 0.25})
    with pytest.raises(ConfigError, match=r"net.ini:\d+: \[conv\] Solvers=PlainSGD: unknown "
                                          r"solver 'PlainSGD'"):
        net_with(tmp_path, extra)


@dataclass(frozen=True)
class OnesFiller(Initializer):
    """A plug-in weight filler: every value = scale."""

    KEYS: ClassVar[Tuple[Key, ...]] = (Key("Scale", "scale", read_float, 1.0),)
    scale: float = 1.0

    def fill(self, tensor, generator, fan_in, fan_out):
        return tensor.fill_(self.scale)


def test_weight_filler_registered_after_import_fills_from_ini(tmp_path):
    with WEIGHT_INITIALIZERS.registered("OnesFiller", OnesFiller):
        net = net_with(tmp_path, "WeightsFiller=OnesFiller\nWeightsFiller.Scale=0.5")
        # the name is written once, in the registration; written back the same
        assert OnesFiller(0.5).ini_lines("WeightsFiller") == \
            ["WeightsFiller=OnesFiller", "WeightsFiller.Scale=0.5"]
    assert torch.equal(net.cells["conv"].weight, torch.full((2, 1, 3, 3), 0.5))


class Negate(Activation):
    """A plug-in activation: y = -x."""

    def forward(self, x):
        return -x


def test_activation_registered_after_import_is_built_from_ini(tmp_path):
    with ACTIVATIONS.registered("Negate", Negate):
        net = net_with(tmp_path, "ActivationFunction=Negate\nWeightsFiller=ConstantFiller\n"
                                 "WeightsFiller.Value=1\nBiasFiller=ConstantFiller\n"
                                 "BiasFiller.Value=0")
    out = net(torch.ones(1, 1, 3, 3))
    assert torch.equal(out.flatten(), torch.tensor([-9.0, -9.0]))
