"""The shared pruning contract: criteria registered from user code work from Python and INI,
their parameter tables are checked, statistics travel in state_dict, Magnitude is exact."""

import pytest
import torch

from n2prune import ConfigError, PruneCell, load_network
from n2prune.cells import Fc
from n2prune.ini.params import Key, Range
from n2prune.ini.values import read_float
from n2prune.prune.criteria import CRITERIA, register_criterion
from n2prune.prune.fillers import MASK_FILLERS, zeros_target
from nets import FC_STATIC as NET  # one pruned Fc cell; {extra} at line 13


@pytest.fixture
def plugin():
    """A criterion 'ShiftedTest' (|w - offset|) with its own parameter, removed afterwards."""
    @register_criterion("ShiftedTest", needs=(), params=(
        Key("ShiftOffset", "offset", read_float, 0.0, "", Range(-1.0, 1.0)),))
    def shifted(weight, stats, offset):
        return (weight - offset).abs()
    yield "ShiftedTest"
    CRITERIA._members.pop("ShiftedTest")


def fc_with(weight, **kwargs):
    fc = Fc(weight.shape[1], weight.shape[0], no_bias=True)
    with torch.no_grad():
        fc.weight.copy_(weight)
    fc.quantizer = PruneCell(**kwargs)
    return fc


def test_criterion_registered_after_import_works_from_python(plugin):
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    fc = fc_with(w, prune_mode="Static", threshold=0.5, prune_filler=plugin, offset=0.4)
    assert fc.quantizer.get_pruned_masks().tolist() == [[1, 1, 0, 0]]  # |w - 0.4| smallest


def test_criterion_registered_after_import_works_from_ini(plugin, tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(NET.format(extra="QWeight.PruningFiller=ShiftedTest\nQWeight.ShiftOffset=0.5"))
    net = load_network(str(path))
    q = net.cells["fc"].quantizer
    assert q.prune_filler == "ShiftedTest" and q.params["criterion"] == {"offset": 0.5}
    assert int((q.mask == 0).sum()) == 8  # ceil(0.4 * 20)


def test_member_parameter_range_is_a_located_error(plugin, tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(NET.format(extra="QWeight.PruningFiller=ShiftedTest\nQWeight.ShiftOffset=3"))
    with pytest.raises(ConfigError, match=r"net.ini:14: \[fc\] QWeight.ShiftOffset.*"
                                          r"offset=3.0 is out of range; allowed: \[-1, 1\]"):
        load_network(str(path))


def test_member_parameter_of_an_unused_member_is_refused(plugin):
    with pytest.raises(ValueError, match="offset is a parameter of criterion 'ShiftedTest'"):
        PruneCell(prune_filler="Magnitude", offset=0.2)


def test_mask_filler_registered_after_import_works_from_ini(tmp_path):
    @MASK_FILLERS.register("FirstHalf")
    def first_half(weights, mask, target, **_):
        out = torch.ones_like(mask).reshape(-1)
        out[:zeros_target(target, out.numel())] = 0
        return out.reshape(mask.shape)
    try:
        path = tmp_path / "net.ini"
        path.write_text(NET.format(extra="QWeight.PruningFiller=FirstHalf"))
        mask = load_network(str(path)).cells["fc"].quantizer.mask
        assert mask.reshape(-1).tolist() == [0] * 8 + [1] * 12
    finally:
        MASK_FILLERS._members.pop("FirstHalf")


def test_unknown_filler_lists_criteria_too(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(NET.format(extra="QWeight.PruningFiller=Magnitud"))
    with pytest.raises(ConfigError, match=r"net.ini:13: .*did you mean 'Magnitude'.*nearest "
                                          r"first: .*ActivationMagnitude.*\d+ in all"):
        load_network(str(path))


def test_criterion_reads_statistics_and_they_travel_in_state_dict():
    @register_criterion("GradTimesWeight", needs=("grad",))
    def saliency(weight, stats):
        return (weight * stats["grad"]).abs()
    try:
        w = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
        fc = fc_with(w, prune_mode="Static", threshold=0.5, prune_filler="GradTimesWeight")
        assert fc.quantizer.mask.tolist() == [[1, 1, 1, 1]]  # no statistics yet: unchanged
        fc.quantizer.set_stat("grad", torch.tensor([[4.0, 1.0, 1.0, 0.1]]))
        fc.quantizer.recompute()
        assert fc.quantizer.mask.tolist() == [[1, 0, 1, 0]]  # scores 4, 2, 3, 0.4
        other = fc_with(w, prune_mode="Static", threshold=0.5, prune_filler="GradTimesWeight")
        other.load_state_dict(fc.state_dict())
        assert torch.equal(other.quantizer.stats["grad"], fc.quantizer.stats["grad"])
        assert torch.equal(other.quantizer.mask, fc.quantizer.mask)
    finally:
        CRITERIA._members.pop("GradTimesWeight")


def test_stats_argument_sets_initial_statistics():
    q = PruneCell(prune_filler="Magnitude", stats={"grad": torch.ones(2, 2)})
    assert torch.equal(q.stats["grad"], torch.ones(2, 2))
    assert "stat_grad" in dict(q.named_buffers())


@pytest.mark.parametrize("target,expected", [
    (0.0, [1, 1, 1, 1, 1, 1]),
    (0.3, [1, 0, 1, 1, 0, 1]),   # ceil(1.8) = 2: the two 0.1 (ties: both)
    (0.5, [0, 0, 1, 1, 0, 1]),   # 3: the 0.2 ties at index 0 and 3: index 0 first
    (0.6, [0, 0, 1, 0, 0, 1]),
    (1.0, [0, 0, 0, 0, 0, 0]),
])
def test_magnitude_prunes_exactly_ceil_t_n_smallest_lower_index_first(target, expected):
    w = torch.tensor([[0.2, -0.1, 0.5, -0.2, 0.1, 0.9]])
    fc = fc_with(w, prune_mode="Static", threshold=target, prune_filler="Magnitude")
    assert fc.quantizer.mask.reshape(-1).tolist() == expected


def test_magnitude_count_uses_n2d2_float32_rule():
    w = torch.arange(1, 11, dtype=torch.float32).reshape(1, 10)
    fc = fc_with(w, prune_mode="Static", threshold=0.3, prune_filler="Magnitude")
    assert int((fc.quantizer.mask == 0).sum()) == 3  # double arithmetic would give 4


def test_quantizer_registered_from_user_code_works_from_ini(tmp_path):
    from n2prune.quantizer import QUANTIZERS

    class HalfPrune(PruneCell):
        """A quantizer type of our own: PruneCell with another default threshold."""
    QUANTIZERS.register("HalfPrune")(HalfPrune)
    try:
        path = tmp_path / "net.ini"
        path.write_text(NET.format(extra="QWeight.PruningFiller=Magnitude").replace(
            "QWeight=Prune", "QWeight=HalfPrune"))
        q = load_network(str(path)).cells["fc"].quantizer
        assert type(q) is HalfPrune and int((q.mask == 0).sum()) == 8
    finally:
        QUANTIZERS._members.pop("HalfPrune")


@pytest.mark.parametrize("line,key,words", [
    ("QWeight.PruningScope=Globl", "QWeight.PruningScope", "did you mean 'Global'"),
    ("QWeight.PruningMinKeep=1.5", "QWeight.PruningMinKeep", "min_keep=1.5 is out of range"),
    ("QWeight.PruningSchedule=Cubc", "QWeight.PruningSchedule", "did you mean 'Cubic'"),
])
def test_bad_values_of_our_keys_are_located(tmp_path, line, key, words):
    path = tmp_path / "net.ini"
    path.write_text(NET.format(extra="QWeight.PruningFiller=Magnitude\n" + line))
    with pytest.raises(ConfigError) as info:
        load_network(str(path))
    assert f"net.ini:14: [fc] {key}" in str(info.value) and words in str(info.value)
