"""A plug-in declares its parameters with the public n2prune.parameter (no INI internals), its
name is written once (in the registration), and colliding parameters are refused."""

import pytest
from torch import nn

import n2prune
from n2prune.network import load_network
from n2prune.prune import CRITERIA, PATTERNS
from n2prune.prune.patterns import Pattern

POWER = n2prune.parameter("ToyPower", "power", 2.0, low=0.0, high=8.0, doc="exponent")


def _toy(weight, stats, power=2.0):
    return weight.detach().abs() ** power


def test_a_plugin_criterion_parameter_works_from_python_and_ini(tmp_path):
    n2prune.register_criterion("ToyPower", params=(POWER,))(_toy)
    try:
        cell = n2prune.PruneCell(prune_mode="Static", prune_filler="ToyPower", power=3.0,
                                 threshold=0.5)
        assert cell.params["criterion"] == {"power": 3.0}
        with pytest.raises(ValueError, match=r"power=9.0 is out of range; allowed: \[0, 8\]"):
            n2prune.PruneCell(prune_mode="Static", prune_filler="ToyPower", power=9.0)
        path = tmp_path / "net.ini"
        path.write_text("[sp]\nSizeX=4\nSizeY=1\nNbChannels=1\n[fc]\nInput=sp\nType=Fc\n"
                        "NbOutputs=2\nQWeight=Prune\nQWeight.PruningMode=Static\n"
                        "QWeight.PruningFiller=ToyPower\nQWeight.ToyPower=1.5\n"
                        "QWeight.Threshold=0.5\n[fc.Target]\n")
        assert load_network(path).cells["fc"].quantizer.params["criterion"] == {"power": 1.5}
    finally:
        CRITERIA.unregister("ToyPower")


def test_colliding_parameters_between_criteria_are_refused():
    n2prune.register_criterion("ToyPower", params=(POWER,))(_toy)
    try:
        other = n2prune.parameter("ToyPower", "exponent", 1.0)
        with pytest.raises(ValueError, match=r"criterion 'ToyOther': parameter ToyPower / "
                                             r"exponent collides with criterion 'ToyPower'"):
            n2prune.register_criterion("ToyOther", params=(other,))(_toy)
        n2prune.register_criterion("ToyShared", params=(POWER,))(_toy)  # the same: fine
        CRITERIA.unregister("ToyShared")
    finally:
        CRITERIA.unregister("ToyPower")
    assert "ToyOther" not in CRITERIA


def test_a_registered_pattern_class_takes_its_registered_name():
    class EveryOther(Pattern):
        """Toy: the pattern of the base class, registered under a new name."""
    with PATTERNS.registered("EveryOther", EveryOther):
        assert EveryOther.name == "EveryOther"
        layer = nn.Linear(4, 2)
        n2prune.attach(layer, prune_mode="Static", prune_filler="Magnitude", threshold=0.5,
                       pattern="EveryOther")
        assert str(layer.quantizer.pattern_rule) == "EveryOther"


@pytest.mark.parametrize("args, message", [
    ({"kind": list}, r"kind=<class 'list'>"),
    ({"kind": float, "ini": "bad name"}, r"must be identifiers"),
])
def test_bad_declarations_say_what_is_allowed(args, message):
    ini = args.pop("ini", "Good")
    with pytest.raises((TypeError, ValueError), match=message):
        n2prune.parameter(ini, "good", 1.0, **args)


def test_choices_and_flags():
    word = n2prune.parameter("ToyMode", "mode", "a", choices=["a", "b"])
    assert word.check("b") == "b"
    with pytest.raises(ValueError, match=r"mode='c': unknown value 'c' \(known: a, b\)"):
        word.check("c")
    flag = n2prune.parameter("ToyFlag", "flag", False)
    assert flag.check(True) is True
    with pytest.raises(TypeError, match=r"flag must be True or False"):
        flag.check(1)
