"""Patterns: N:M structure along the inputs, KxL blocks, whole channels, exact counts."""

import pytest
import torch
from torch import nn

from n2prune import ConfigError, PruneCell, load_network
from n2prune.cells import Conv, Fc
from n2prune.prune.patterns import PATTERNS, resolve_pattern
from nets import FC8_MAGNITUDE  # one Fc of 8 inputs, Magnitude to 0.5; {extra} at line 13


def fc_with(weight, **kwargs):
    fc = Fc(weight.shape[1], weight.shape[0], no_bias=True)
    with torch.no_grad():
        fc.weight.copy_(weight)
    fc.quantizer = PruneCell(prune_mode="Static", prune_filler="Magnitude", **kwargs)
    return fc


def test_two_of_four_keeps_the_two_largest_of_every_four_inputs():
    w = torch.tensor([[0.1, -0.4, 0.3, 0.2, 0.9, 0.8, -0.7, 0.6],
                      [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.1, 0.0]])
    fc = fc_with(w, threshold=0.5, pattern="2:4")
    assert fc.quantizer.mask.tolist() == [[0, 1, 1, 0, 1, 1, 0, 0],
                                          [0, 0, 1, 1, 0, 0, 1, 1]]  # ties: lower index pruned


def test_n_m_threshold_above_the_pattern_prunes_more_per_group():
    w = torch.arange(1.0, 9.0).reshape(1, 8)
    assert fc_with(w, threshold=0.75, pattern="2:4").quantizer.mask.tolist() == \
        [[0, 0, 0, 1, 0, 0, 0, 1]]
    assert fc_with(w, threshold=0.1, pattern="2:4").quantizer.mask.tolist() == \
        [[0, 0, 1, 1, 0, 0, 1, 1]]  # at most N kept, whatever a lower target says


def test_n_m_conv_groups_run_along_input_channels_at_fixed_kernel_position():
    conv = Conv(8, 3, kernel_dims=[2, 2], no_bias=True)
    torch.manual_seed(0)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape))
    conv.quantizer = PruneCell(prune_mode="Static", prune_filler="Magnitude", pattern="2:4",
                               threshold=0.5)
    mask = conv.quantizer.mask  # [O, C, kH, kW]
    groups = mask.movedim(1, -1).reshape(-1, 4)
    assert torch.all(groups.sum(1) == 2)
    top = conv.weight.detach().abs().movedim(1, -1).reshape(-1, 4).topk(2, dim=1).indices
    assert torch.all(groups.gather(1, top) == 1)


def test_n_m_short_last_group_counts_missing_members_as_pruned():
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])  # groups [0.1..0.4], [0.5, 0.6, -, -]
    assert fc_with(w, threshold=0.5, pattern="2:4").quantizer.mask.tolist() == \
        [[0, 0, 1, 1, 1, 1]]


def test_block_pattern_prunes_whole_blocks_by_l1_norm():
    w = torch.tensor([[1.0, 1.0, 0.1, 0.1],
                      [1.0, 1.0, 0.1, 0.1],
                      [0.2, 0.2, 3.0, 3.0],
                      [0.2, 0.3, 3.0, 3.0]])
    fc = fc_with(w, threshold=0.5, pattern="2x2")
    assert fc.quantizer.mask.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0],
                                          [0, 0, 1, 1], [0, 0, 1, 1]]


def test_block_4x1_over_conv_flattened_inputs():
    conv = Conv(2, 8, kernel_dims=[1, 1], no_bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(16.0).reshape(8, 2, 1, 1))
    conv.quantizer = PruneCell(prune_mode="Static", prune_filler="L1Norm", pattern="4x1",
                               threshold=0.5)
    mask = conv.quantizer.mask.reshape(8, 2)
    assert mask[:4].sum() == 0 and mask[4:].sum() == 8  # the 4 blocks with the smallest sums


def test_channel_pattern_zeroes_whole_output_channels_l2_vs_l1():
    w = torch.tensor([[0.9, 0.0, 0.0], [0.4, 0.4, 0.4], [0.1, 0.1, 0.1]])
    # L1: 0.9, 1.2, 0.3 -> prune channel 2 then 0; L2: 0.9, 0.69, 0.17 -> 2 then 1
    l1 = fc_with(w, threshold=0.6, pattern="Channel").quantizer.mask
    l2 = PruneCell(prune_mode="Static", prune_filler="L2Norm", pattern="Channel",
                   threshold=0.6)
    fc = Fc(3, 3, no_bias=True)
    with torch.no_grad():
        fc.weight.copy_(w)
    fc.quantizer = l2
    assert l1.tolist() == [[0] * 3, [1] * 3, [0] * 3]
    assert l2.mask.tolist() == [[1] * 3, [0] * 3, [0] * 3]


def test_channel_pattern_on_conv_transpose_uses_its_output_dimension():
    from n2prune import attach
    model = nn.Sequential(nn.ConvTranspose2d(2, 3, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 5.0, 0.1, 2.0, 4.0, 0.2]).reshape(2, 3, 1, 1))
    cells = attach(model, prune_mode="Static", prune_filler="Magnitude", pattern="Channel",
                   threshold=0.3)
    assert cells["0"].mask.reshape(2, 3).tolist() == [[1, 1, 0], [1, 1, 0]]


def test_shorthands_resolve_to_members_with_their_parameters():
    assert resolve_pattern("2:4") == ("N:M", {"n": 2, "m": 4})
    assert resolve_pattern("4x1") == ("KxL", {"k": 4, "l": 1})
    assert resolve_pattern("Channel") == ("Channel", {})
    assert PruneCell(prune_filler="Magnitude", pattern="N:M", n=1, m=8).params["pattern"] == \
        {"n": 1, "m": 8}


@pytest.mark.parametrize("kwargs,error,words", [
    ({"pattern": "5:4"}, ValueError, ["n=5 must be at most m=4"]),
    ({"pattern": "0:4"}, ValueError, ["n=0", "[1, inf)"]),
    ({"pattern": "Chanel"}, ValueError, ["did you mean 'Channel'", "'2:4'"]),
    ({"pattern": "2:4", "n": 1}, ValueError, ["n=1", "repeats"]),
    ({"pattern": "2:4", "scope": "Global"}, ValueError, ["Global"]),
    ({"pattern": "Channel", "prune_filler": "IterNonStruct"}, ValueError, ["criterion"]),
    ({"pattern": 4}, TypeError, ["pattern must be a string"]),
])
def test_bad_patterns_are_explained(kwargs, error, words):
    kwargs = {"prune_filler": "Magnitude", **kwargs}
    with pytest.raises(error) as info:
        PruneCell(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_pattern_from_ini_with_its_own_keys(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningMode=Static\n"
                                               "QWeight.PruningPattern=N:M\nQWeight.PruningN=1\n"
                                               "QWeight.PruningM=8"))
    mask = load_network(str(path)).cells["fc"].quantizer.mask
    assert mask.sum(1).tolist() == [1, 1, 1, 1]


def test_bad_pattern_in_ini_is_located(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningMode=Static\n"
                                               "QWeight.PruningPattern=4:2"))
    with pytest.raises(ConfigError, match=r"net.ini:14: \[fc\] QWeight.PruningPattern.*n=4"):
        load_network(str(path))


def test_every_pattern_is_registered_under_its_ini_spelling():
    for name in PATTERNS:
        assert PATTERNS.get(name).name == name
