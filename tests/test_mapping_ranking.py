"""Masks under a hand-made Mapping(P) table: N2D2's ranking (All) and the live-weight count
(QWeight.PruningCount=Connected)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from n2prune import PruneCell
from n2prune.cells import Conv
from n2prune.errors import ConfigError
from n2prune.n2d2io.read import read_weights
from n2prune.n2d2io.write import write_weights
from n2prune.network.build import load_network
from n2prune.network.summary import network_summary
from n2prune.prune.counting import PRUNING_COUNTS, PruningCount
from n2prune.prune.fillers import fill_iter_nonstruct_loop, zeros_target

# LeNet.ini's conv2 table: 6 rows (pool1's channels) of 16 columns (conv2's outputs)
LENET_TABLE = """\\
1 0 0 0 1 1 1 0 0 1 1 1 1 0 1 1 \\
1 1 0 0 0 1 1 1 0 0 1 1 1 1 0 1 \\
1 1 1 0 0 0 1 1 1 0 0 1 0 1 1 1 \\
0 1 1 1 0 0 1 1 1 1 0 0 1 0 1 1 \\
0 0 1 1 1 0 0 1 1 1 1 0 1 1 0 1 \\
0 0 0 1 1 1 0 0 1 1 1 1 0 1 1 1"""

LENET_CONV2 = f"""
[sp]
SizeX=14
SizeY=14
NbChannels=6
[conv2]
Input=sp
Type=Conv
KernelDims=5 5
NbOutputs=16
Mapping(env)={LENET_TABLE}
WeightsFiller=HeFiller
QWeight=Prune
QWeight.PruningMode=Static
QWeight.PruningFiller={{filler}}
QWeight.Threshold=0.9
{{extra}}
[conv2.Target]
"""


def lenet_conv2(tmp_path, filler="IterNonStruct", extra="", seed=3):
    path = tmp_path / "conv2.ini"
    path.write_text(LENET_CONV2.format(filler=filler, extra=extra))
    net = load_network(str(path), seed=seed)
    return net, net.cells["conv2"]


def live(cell):
    return cell.connection.expand_as(cell.weight) != 0


# ----------------------------------------------------------------------------- by hand
# outputs x channels: output 0 does not read channel 1 (output 0 reads channel 0, so N2D2
# counts the table as a group and keeps the disconnected kernel's filler values)
CONNECTION = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
WEIGHTS = torch.tensor([[[[0.313, -0.054, 0.65]], [[0.94, -0.87, 0.71]]],   # [0, 1]: unconnected
                        [[[0.023, -0.42, 0.18]], [[0.076, 0.53, -0.264]]]])


def hand_conv(**prune):
    conv = Conv(2, 2, kernel_dims=[3, 1], connection=CONNECTION)
    with torch.no_grad():
        conv.weight.copy_(WEIGHTS)
    conv.quantizer = PruneCell(prune_mode="Static", prune_filler="IterNonStruct",
                               threshold=0.5, delta=0.01, **prune)
    return conv


def test_n2d2_ranks_the_unconnected_entries_with_the_rest():
    # All 12 entries ranked: 6 zeros needed (6/12 >= 0.5). The 6 smallest |w| are 0.023,
    # 0.054, 0.076, 0.18, 0.264, 0.313 (all connected), cutoff 0.32; the unconnected 0.94,
    # 0.87, 0.71 are kept, so 6 of the 9 live weights are pruned.
    conv = hand_conv()
    assert conv.quantizer.mask.int().tolist() == [[[[0, 0, 1]], [[1, 1, 1]]],
                                                  [[[0, 1, 0]], [[0, 1, 0]]]]
    np.testing.assert_array_equal(                      # N2D2's literal loop (spec §4.9b)
        conv.quantizer.mask.numpy(),
        fill_iter_nonstruct_loop(WEIGHTS.numpy(), 0.5, 0.01).reshape(WEIGHTS.shape))
    assert conv.quantizer.sparsity() == pytest.approx(6 / 9)


def test_kept_unconnected_values_do_not_change_the_output():
    conv = hand_conv()
    x = torch.randn(2, 2, 4, 5, generator=torch.Generator().manual_seed(0))
    used = WEIGHTS * CONNECTION[:, :, None, None] * conv.quantizer.mask
    torch.testing.assert_close(conv(x), F.conv2d(x, used, conv.bias.detach()), rtol=0, atol=0)


def test_connected_counts_the_target_over_live_weights():
    # 9 live entries ranked: 5 zeros needed (5/9 >= 0.5): 0.023, 0.054, 0.076, 0.18, 0.264,
    # cutoff 0.27; the unconnected entries get 0
    conv = hand_conv(count="Connected")
    assert conv.quantizer.mask.int().tolist() == [[[[1, 0, 1]], [[0, 0, 0]]],
                                                  [[[0, 1, 0]], [[0, 1, 0]]]]
    assert conv.quantizer.sparsity() == pytest.approx(5 / 9)


def test_a_table_without_output_0_on_channel_0_is_zeroed_as_n2d2_does():
    # N2D2's getNbGroups gives 0 for it: the unconnected kernels are 0, so they go first
    connection = torch.tensor([[0, 1], [1, 1]], dtype=torch.bool)
    conv = Conv(2, 2, kernel_dims=[3, 1], connection=connection)
    assert torch.all(conv.weight[0, 0] == 0) and torch.all(conv.weight[0, 1] != 0)


def test_each_input_follows_n2d2s_rule_on_its_own_map():
    # input 0 (channel 0): output 0 does not read it -> zeroed; input 1 (channels 1, 2):
    # output 0 reads channel 1 -> its unconnected kernel [0, 2] keeps its value
    connection = torch.tensor([[0, 1, 0], [1, 1, 1]], dtype=torch.bool)
    conv = Conv(3, 2, kernel_dims=[3, 1], connection=connection, input_channels=[1, 2])
    assert torch.all(conv.weight[0, 0] == 0) and torch.all(conv.weight[0, 2] != 0)


# ----------------------------------------------------------------------------- LeNet's conv2
def test_lenet_conv2_masks_equal_n2d2s_rule_on_the_full_tensor(tmp_path):
    net, conv2 = lenet_conv2(tmp_path)
    weight = conv2.weight.detach()
    assert int(live(conv2).sum()) == 1500 and int((weight[~live(conv2)] != 0).sum()) == 900
    expected = fill_iter_nonstruct_loop(weight.numpy(), 0.9, 0.001).reshape(weight.shape)
    np.testing.assert_array_equal(conv2.quantizer.mask.numpy(), expected)
    # the old behaviour (unconnected weights held at 0, pruned first) differs
    zeroed = fill_iter_nonstruct_loop((weight * live(conv2)).numpy(), 0.9, 0.001)
    assert int((zeroed.reshape(weight.shape) != expected).sum()) > 100


def test_lenet_conv2_connected_reaches_the_fraction_of_live_weights(tmp_path):
    net, conv2 = lenet_conv2(tmp_path, filler="Random", extra="QWeight.PruningCount=Connected")
    assert conv2.quantizer.count == "Connected" and "count='Connected'" in repr(conv2.quantizer)
    assert any("count=Connected now=0.900" in line for line in network_summary(net))
    mask, connected = conv2.quantizer.mask, live(conv2)
    assert int(((mask == 0) & connected).sum()) == zeros_target(0.9, 1500) == 1350
    assert bool((mask[~connected] == 0).all())
    assert conv2.quantizer.sparsity() == 0.9

    _, conv2 = lenet_conv2(tmp_path, extra="QWeight.PruningCount=Connected")
    absw = conv2.weight.detach().abs()[live(conv2)]
    pruned = (conv2.quantizer.mask == 0) & live(conv2)
    # IterNonStruct: the smallest multiple of delta whose cutoff prunes 90 % of the live ones
    cutoff = np.float32(absw[pruned[live(conv2)]].max())
    assert int(pruned.sum()) >= 1350
    below = np.float32(np.float32(0.001) * np.float32(math.ceil(cutoff / 0.001) - 1))
    assert int((absw <= float(below)).sum()) < 1350


def test_all_is_the_default_and_prunes_all_entries_to_the_fraction(tmp_path):
    _, conv2 = lenet_conv2(tmp_path, filler="Random")
    assert conv2.quantizer.count == "All"
    assert int((conv2.quantizer.mask == 0).sum()) == zeros_target(0.9, 2400)


# ----------------------------------------------------------------------------- files
def test_saved_files_hold_connected_weights_and_every_mask_bit(tmp_path):
    net, conv2 = lenet_conv2(tmp_path)
    write_weights(net, tmp_path / "w")
    lines = (tmp_path / "w" / "conv2_weights.syntxt").read_text().splitlines()
    table = conv2.connection[:, :, 0, 0] != 0
    assert [len(line.split()) for line in lines] == [int(n) * 25 for n in table.sum(1)]
    assert [float(v) for v in lines[0].split()] == pytest.approx(
        conv2.weight.detach()[0][table[0]].reshape(-1).tolist(), rel=1e-8)
    masks = (tmp_path / "w" / "conv2_masks.syntxt").read_text().split()
    assert [int(v) for v in masks] == conv2.quantizer.mask.int().reshape(-1).tolist()

    fresh, fresh_conv2 = lenet_conv2(tmp_path, seed=8)
    before = fresh_conv2.weight.detach().clone()
    read_weights(fresh, tmp_path / "w")
    assert torch.equal(fresh_conv2.quantizer.mask, conv2.quantizer.mask)
    assert torch.equal(fresh_conv2.weight[live(conv2)], conv2.weight[live(conv2)])
    # as N2D2's OCHW import: what the file does not hold keeps its value
    assert torch.equal(fresh_conv2.weight[~live(conv2)], before[~live(conv2)])


def test_hwco_import_zeroes_unconnected_kernels_as_n2d2_does(tmp_path):
    conv = Conv(2, 2, kernel_dims=[3, 1], connection=CONNECTION)
    conv.export_options = {"weights_export_format": "HWCO"}
    # 3 kernel positions, each: channel 0 (outputs 0, 1), channel 1 (output 1)
    (tmp_path / "c_weights.syntxt").write_text("1 2 3\n4 5 6\n7 8 9\n")
    (tmp_path / "c_biases.syntxt").write_text("0\n0\n")
    read_weights({"c": conv}, tmp_path)
    assert conv.weight.tolist() == [[[[1, 4, 7]], [[0, 0, 0]]], [[[2, 5, 8]], [[3, 6, 9]]]]


# ----------------------------------------------------------------------------- errors, registry
def test_connected_with_a_criterion_is_refused():
    with pytest.raises(ValueError, match=r"count='Connected' applies to the mask fillers .*"
                                         r"prune_filler='Magnitude' ranks every entry"):
        PruneCell(prune_filler="Magnitude", count="Connected")


def test_a_misspelt_count_is_a_located_error(tmp_path):
    with pytest.raises(ConfigError, match=r"conv2\.ini:\d+: \[conv2\] QWeight\.PruningCount.*"
                                          r"did you mean 'Connected'"):
        lenet_conv2(tmp_path, extra="QWeight.PruningCount=Conected")


def test_a_count_registered_later_works_from_the_ini(tmp_path):
    def first_output_only(cell, part):
        counted = torch.zeros_like(cell.weight[:, part], dtype=torch.bool)
        counted[0] = True
        return counted

    with PRUNING_COUNTS.registered("FirstOutput", PruningCount("FirstOutput",
                                                               first_output_only)):
        _, conv2 = lenet_conv2(tmp_path, filler="Random", extra="QWeight.PruningCount=FirstOutput")
        mask = conv2.quantizer.mask
        assert int((mask[0] == 0).sum()) == zeros_target(0.9, 150)
        assert bool((mask[1:] == 0).all())
