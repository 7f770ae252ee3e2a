"""N2D2 weight files: exact text written, round trips through INI networks, import errors."""

import os
import re
import textwrap
import warnings

import pytest
import torch

from n2prune import atomic
from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.conv import Conv
from n2prune.cells.deconv import Deconv
from n2prune.cells.fc import Fc
from n2prune.n2d2io.write import cell_file_stem, write_weights
from n2prune.n2d2io.read import read_weights
from n2prune.network.build import load_network
from n2prune.prune.prunecell import PruneCell

NET_INI = """
[sp]
SizeX=8
SizeY=8
NbChannels=2

[conv1]
Input=sp
Type=Conv
KernelDims=3 3
NbOutputs=3
Mapping(env)=1 0 1 \\
             1 1 0
ConfigSection=pruned.config
QWeight=Prune

[conv2]
Input=conv1
Type=Conv
KernelDims=3 1
NbOutputs=6
Mapping.NbGroups=3
ConfigSection=nobias.config

[bn]
Input=conv2
Type=BatchNorm
NbOutputs=6

[up]
Input=bn
Type=Deconv
KernelDims=2 2
Stride=2
NbOutputs=2

[fc]
Input=up
Type=Fc
NbOutputs=4
ConfigSection=pruned.config
QWeight=Prune

[pruned.config]
QWeight.PruningMode=Static
QWeight.PruningFiller=IterNonStruct
QWeight.Threshold=0.5

[nobias.config]
NoBias=1
"""


def _net(tmp_path, seed=0):
    path = tmp_path / "net.ini"
    path.write_text(textwrap.dedent(NET_INI))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_network(str(path), seed=seed).eval()


def _randomise_bn(net):
    bn = net.cells["bn"]
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for tensor in (bn.weight, bn.bias, bn.running_mean):
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
        bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=generator) + 0.5)


def _fc(weights, biases=None):
    weights = torch.tensor(weights, dtype=torch.float32)
    cell = Fc(weights.shape[1], weights.shape[0], no_bias=biases is None)
    with torch.no_grad():
        cell.weight.copy_(weights)
        if biases is not None:
            cell.bias.copy_(torch.tensor(biases))
    return cell


# ----------------------------------------------------------------------------- format
# The writer's own output: float32 weights as C++ ``stream << setprecision(d)`` prints them
# (%g): 6 digits, 10 once a PruneCell is attached (N2D2 widens the precision for quantizers).
SIX_DIGITS = [(0.001234567, "0.00123457"), (1.234567e-05, "1.23457e-05"), (-0.5, "-0.5"),
              (0.0, "0"), (123456789.0, "1.23457e+08"), (100.0, "100"), (-0.0, "-0")]
TEN_DIGITS = [(0.1, "0.1000000015"), (-0.0009765625, "-0.0009765625"), (3.0, "3")]


@pytest.mark.parametrize("pruned, cases", [(False, SIX_DIGITS), (True, TEN_DIGITS)],
                         ids=["plain", "with-PruneCell"])
def test_values_print_like_cpp_streams(tmp_path, pruned, cases):
    cell = _fc([[value for value, _ in cases]], [cases[0][0]])
    if pruned:
        cell.quantizer = PruneCell()
    write_weights({"fc": cell}, tmp_path)
    texts = [text for _, text in cases]
    assert (tmp_path / "fc_weights.syntxt").read_text() == " ".join(texts) + " \n"
    assert (tmp_path / "fc_biases.syntxt").read_text() == texts[0] + "\n"


def test_fc_writes_one_line_per_output_with_trailing_spaces_and_biases_per_line(tmp_path):
    cell = _fc([[0.5, -0.25, 1e-5], [0.001234567, 2.0, 0.0]], [0.125, -3.0])
    files = write_weights({"fc": cell}, tmp_path / "w")
    assert [p.name for p in files] == ["fc_weights.syntxt", "fc_biases.syntxt"]
    assert (tmp_path / "w" / "fc_weights.syntxt").read_text() == \
        "0.5 -0.25 1e-05 \n0.00123457 2 0 \n"
    assert (tmp_path / "w" / "fc_biases.syntxt").read_text() == "0.125\n-3\n"


def test_no_bias_cell_writes_no_biases_file(tmp_path):
    write_weights({"fc": _fc([[1.0, 2.0]])}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc_weights.syntxt"]


def test_mapped_conv_writes_connected_channels_only_x_fastest(tmp_path):
    # 3 wide, 2 high kernels; output 0 reads channels 0 and 1, output 1 only channel 1.
    cell = Conv(2, 2, kernel_dims=[3, 2], no_bias=True,
                connection=torch.tensor([[1, 1], [0, 1]]))
    with torch.no_grad():
        cell.weight.copy_(torch.arange(24, dtype=torch.float32).reshape(2, 2, 2, 3))
    write_weights({"c": cell}, tmp_path)
    # weight[o, c, y, x] = 12 o + 6 c + 3 y + x; output 1 channel 0 (6..11 + 12) is skipped
    assert (tmp_path / "c_weights.syntxt").read_text() == \
        "0 1 2 3 4 5 6 7 8 9 10 11 \n18 19 20 21 22 23 \n"


def test_grouped_conv_lines_hold_c_over_g_channels(tmp_path):
    cell = Conv(4, 6, kernel_dims=[1, 1], groups=2)
    write_weights({"g": cell}, tmp_path)
    lines = (tmp_path / "g_weights.syntxt").read_text().splitlines()
    assert [len(line.split()) for line in lines] == [2] * 6
    assert [float(v) for v in lines[4].split()] == pytest.approx(
        cell.weight[4].flatten().tolist(), rel=1e-5)


def test_deconv_writes_each_outputs_kernels_from_the_transposed_layout(tmp_path):
    cell = Deconv(2, 3, kernel_dims=[2, 1], no_bias=True)
    with torch.no_grad():  # weight[c, o, 0, x] = 10 c + 2 o + x
        cell.weight.copy_(torch.tensor([[[[10 * c + 2 * o + x for x in range(2)]]
                                         for o in range(3)] for c in range(2)]).float())
    write_weights({"d": cell}, tmp_path)
    assert (tmp_path / "d_weights.syntxt").read_text() == \
        "0 1 10 11 \n2 3 12 13 \n4 5 14 15 \n"


def test_deconv_hwco_and_flip_follow_its_export_options(tmp_path):
    cell = Deconv(1, 2, kernel_dims=[2, 1], no_bias=True)
    with torch.no_grad():
        cell.weight.copy_(torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]]))
    cell.export_options = {"weights_export_format": "HWCO", "weights_export_flip": True}
    write_weights({"d": cell}, tmp_path)
    # HWCO: one line per kernel position, one value per (channel, output); flipped kernels
    assert (tmp_path / "d_weights.syntxt").read_text() == "2 4 \n1 3 \n"
    fresh = Deconv(1, 2, kernel_dims=[2, 1], no_bias=True)
    fresh.export_options = dict(cell.export_options)
    read_weights({"d": fresh}, tmp_path)
    assert torch.equal(fresh.weight, cell.weight)


def test_pruned_cell_writes_10_digits_unmasked_weights_quant_weights_and_masks(tmp_path):
    cell = _fc([[0.1234567891, -0.9876543219, 0.5, 0.01]], [0.3333333333])
    cell.quantizer = PruneCell(prune_mode="Static", prune_filler="IterNonStruct",
                               threshold=0.5)
    files = write_weights({"fc": cell}, tmp_path)
    assert [p.name for p in files] == ["fc_weights.syntxt", "fc_biases.syntxt",
                                       "fc_quant_weights.syntxt", "fc_masks.syntxt"]
    assert (tmp_path / "fc_weights.syntxt").read_text() == \
        "0.123456791 -0.9876543283 0.5 0.009999999776 \n"  # float32 values, 10 digits
    assert (tmp_path / "fc_biases.syntxt").read_text() == "0.3333333433\n"
    assert (tmp_path / "fc_quant_weights.syntxt").read_text() == \
        "0 -0.9876543283 0.5 0 \n"
    assert (tmp_path / "fc_masks.syntxt").read_text() == "0 1 1 0 \n"


def test_batchnorm_writes_scales_biases_means_variances(tmp_path):
    cell = BatchNorm(2)
    with torch.no_grad():
        cell.weight.copy_(torch.tensor([1.5, 2.0]))
        cell.running_var.copy_(torch.tensor([0.25, 4.0]))
    names = [p.name for p in write_weights({"bn": cell}, tmp_path)]
    assert names == ["bn_scales.syntxt", "bn_biases.syntxt", "bn_means.syntxt",
                     "bn_variances.syntxt"]
    assert (tmp_path / "bn_scales.syntxt").read_text() == "1.5\n2\n"
    assert (tmp_path / "bn_variances.syntxt").read_text() == "0.25\n4\n"


def test_odd_characters_in_cell_names_become_underscores(tmp_path):
    assert cell_file_stem('a<b>:c"d|e?f*g\x01h\x7fi.j') == "a_b__c_d_e_f_g_h_i.j"
    write_weights({"fc<1>?": _fc([[1.0]])}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc_1___weights.syntxt"]


def test_a_cell_name_cannot_lead_outside_the_directory(tmp_path):
    with pytest.raises(ValueError, match=r"cell name '\.\./x' cannot be a file name inside"):
        write_weights({"../x": _fc([[1.0]])}, tmp_path / "w")


def test_writing_creates_the_directory(tmp_path):
    write_weights({"fc": _fc([[1.0]])}, tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / "fc_weights.syntxt").read_text() == "1 \n"


# ----------------------------------------------------------------------------- round trips
def test_round_trip_through_a_fresh_network_gives_the_same_outputs(tmp_path):
    net = _net(tmp_path, seed=0)
    _randomise_bn(net)
    write_weights(net, tmp_path / "w")
    fresh = _net(tmp_path, seed=7)
    fresh_initial = fresh.cells["conv1"].weight.detach().clone()
    x = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(fresh(x), net(x))
    read = read_weights(fresh, tmp_path / "w")
    assert {p.name for p in read} == {p.name for p in (tmp_path / "w").iterdir()} - {
        "conv1_quant_weights.syntxt", "fc_quant_weights.syntxt"}
    torch.testing.assert_close(fresh(x), net(x), rtol=1e-5, atol=1e-6)
    conv1 = fresh.cells["conv1"]
    for name in ("conv1", "fc"):  # 10 digits: float32 values come back exactly
        connection = getattr(fresh.cells[name], "connection", None)
        kept = 1 if connection is None else connection
        assert torch.equal(fresh.cells[name].weight * kept, net.cells[name].weight * kept)
        assert torch.equal(fresh.cells[name].bias, net.cells[name].bias)
        assert torch.equal(fresh.cells[name].quantizer.mask, net.cells[name].quantizer.mask)
    # the files hold connected kernels only: the others keep the fresh net's values (N2D2)
    assert torch.equal(conv1.weight * (1 - conv1.connection),
                       fresh_initial * (1 - conv1.connection))
    assert fresh.cells["conv1"].quantizer.get_current_threshold() == pytest.approx(0.5)


def test_masks_are_kept_when_no_masks_file_is_present(tmp_path):
    net = _net(tmp_path, seed=0)
    write_weights(net, tmp_path / "w")
    os.unlink(tmp_path / "w" / "fc_masks.syntxt")
    fresh = _net(tmp_path, seed=7)
    before = fresh.cells["fc"].quantizer.mask.clone()
    read_weights(fresh, tmp_path / "w")
    assert torch.equal(fresh.cells["fc"].quantizer.mask, before)
    assert torch.equal(fresh.cells["fc"].weight, net.cells["fc"].weight)


def test_missing_files_are_skipped_by_default_and_errors_otherwise(tmp_path):
    net = _net(tmp_path)
    before = net.cells["fc"].weight.clone()
    assert read_weights(net, tmp_path / "empty") == []
    assert torch.equal(net.cells["fc"].weight, before)
    with pytest.raises(ValueError, match=r"conv1_weights\.syntxt: weights file not found for "
                                         r"cell 'conv1' \(nor a combined conv1\.syntxt\)"):
        read_weights(net, tmp_path / "empty", ignore_missing=False)


def test_a_missing_masks_file_is_an_error_when_not_ignoring(tmp_path):
    cell = _fc([[1.0, 2.0]], [0.0])
    cell.quantizer = PruneCell(prune_mode="Static", prune_filler="IterNonStruct",
                               threshold=0.5)
    write_weights({"fc": cell}, tmp_path)
    os.unlink(tmp_path / "fc_masks.syntxt")
    with pytest.raises(ValueError, match=r"fc_masks\.syntxt: masks file not found for cell "
                                         r"'fc' \(it has a PruneCell\)"):
        read_weights({"fc": cell}, tmp_path, ignore_missing=False)


def test_combined_file_holds_each_outputs_weights_then_its_bias(tmp_path):
    cell = Conv(2, 2, kernel_dims=[2, 1], connection=torch.tensor([[1, 0], [1, 1]]))
    unconnected = cell.weight[0, 1].tolist()   # not in the file: it keeps its value (N2D2)
    # output 0: channel 0 kernel, bias; output 1: channels 0 and 1, bias (any line breaks)
    (tmp_path / "c.syntxt").write_text("1 2 0.5\n3 4\n5 6 -1")
    assert [p.name for p in read_weights({"c": cell}, tmp_path)] == ["c.syntxt"]
    assert cell.weight.tolist() == [[[[1, 2]], unconnected], [[[3, 4]], [[5, 6]]]]
    assert cell.bias.tolist() == [0.5, -1]


def test_combined_file_takes_precedence_and_works_for_fc_and_batchnorm(tmp_path):
    fc, bn = _fc([[0.0, 0.0]], [0.0]), BatchNorm(2)
    (tmp_path / "fc.syntxt").write_text("1 2 3\n")
    (tmp_path / "fc_weights.syntxt").write_text("9 9 \n")
    (tmp_path / "bn.syntxt").write_text("2 0.5 1 4\n3 -0.5 -1 9\n")
    read_weights({"fc": fc, "bn": bn}, tmp_path)
    assert fc.weight.tolist() == [[1, 2]] and fc.bias.tolist() == [3]
    assert bn.weight.tolist() == [2, 3] and bn.bias.tolist() == [0.5, -0.5]
    assert bn.running_mean.tolist() == [1, -1] and bn.running_var.tolist() == [4, 9]


def test_batchnorm_scales_default_to_one_when_missing_and_ignoring(tmp_path):
    bn = BatchNorm(2)
    with torch.no_grad():
        bn.weight.fill_(5.0)
    for suffix, text in (("biases", "1\n2\n"), ("means", "0\n0\n"), ("variances", "1\n1\n")):
        (tmp_path / f"bn_{suffix}.syntxt").write_text(text)
    read_weights({"bn": bn}, tmp_path)
    assert bn.weight.tolist() == [1, 1] and bn.bias.tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"bn_scales\.syntxt: file not found"):
        read_weights({"bn": bn}, tmp_path, ignore_missing=False)


def test_values_are_read_as_float32(tmp_path):
    cell = _fc([[0.0]], [0.0])
    (tmp_path / "fc.syntxt").write_text("0.1 0.30000000000000004\n")
    read_weights({"fc": cell}, tmp_path)
    assert cell.weight.dtype == torch.float32
    assert cell.weight.item() == float(torch.tensor(0.1, dtype=torch.float32))
    assert cell.bias.item() == float(torch.tensor(0.3, dtype=torch.float32))


@pytest.mark.parametrize("make", [lambda: Deconv(4, 6, kernel_dims=[3, 2], groups=2),
                                  lambda: Conv(4, 6, kernel_dims=[3, 2], groups=2),
                                  lambda: Deconv(2, 3, kernel_dims=[2, 2], connection=torch.tensor(
                                      [[1, 0], [1, 1], [0, 1]]))])
def test_grouped_and_mapped_cells_round_trip(tmp_path, make):
    cell, fresh = make(), make()
    write_weights({"c": cell}, tmp_path)
    read_weights({"c": fresh}, tmp_path)
    torch.testing.assert_close(fresh.weight, cell.weight, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fresh.bias, cell.bias, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- errors
def _conv_files(tmp_path, weights_text, biases_text="0\n0\n"):
    cell = Conv(2, 2, kernel_dims=[3, 3], connection=torch.tensor([[1, 1], [0, 1]]))
    (tmp_path / "conv1_weights.syntxt").write_text(weights_text)
    (tmp_path / "conv1_biases.syntxt").write_text(biases_text)
    return {"conv1": cell}


def test_a_wrong_value_count_names_file_line_and_expectation(tmp_path):
    cells = _conv_files(tmp_path, "1 " * 18 + "\n" + "1 " * 8 + "\n")
    with pytest.raises(ValueError, match=re.escape(
            "conv1_weights.syntxt:2: 8 values, expected 9 (1 connected channel x 3x3 "
            "kernel)")):
        read_weights(cells, tmp_path)


def test_an_unparsable_value_names_file_line_and_value(tmp_path):
    cells = _conv_files(tmp_path, "1 " * 18 + "\n" + "1 " * 4 + "1_0 " + "1 " * 4 + "\n")
    with pytest.raises(ValueError, match=re.escape(
            "conv1_weights.syntxt:2: value 5 is '1_0', not a number")):
        read_weights(cells, tmp_path)


@pytest.mark.parametrize("text, message", [
    ("1 " * 18 + "\n", "conv1_weights.syntxt:1: file ends after 1 lines, expected 2 "
                       "(one per output)"),
    ("1 " * 18 + "\n" + "1 " * 9 + "\n1\n", "conv1_weights.syntxt:3: more lines than the 2 "
                                            "expected (one per output)")])
def test_a_wrong_line_count_is_an_error(tmp_path, text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        read_weights(_conv_files(tmp_path, text), tmp_path)


def test_trailing_blank_lines_are_accepted(tmp_path):
    cells = _conv_files(tmp_path, "1 " * 18 + "\n" + "2 " * 9 + "\n\n  \n")
    read_weights(cells, tmp_path)
    assert cells["conv1"].weight[1, 1].flatten().tolist() == [2.0] * 9


def test_biases_file_errors(tmp_path):
    cells = _conv_files(tmp_path, "1 " * 18 + "\n" + "1 " * 9 + "\n", "0 1\n0\n")
    with pytest.raises(ValueError, match=re.escape(
            "conv1_biases.syntxt:1: 2 values, expected 1 (one bias per line)")):
        read_weights(cells, tmp_path)
    os.unlink(tmp_path / "conv1_biases.syntxt")
    with pytest.raises(ValueError, match=re.escape(
            "conv1_biases.syntxt: file not found (cell 'conv1' has biases)")):
        read_weights(cells, tmp_path)


@pytest.mark.parametrize("text, message", [
    ("1 2\n", "c.syntxt:1: file ends after 2 values, expected 3 (1 outputs, each its weights "
              "then its bias)"),
    ("1 2 3\n4\n", "c.syntxt:2: more values than the 3 expected")])
def test_combined_file_count_errors(tmp_path, text, message):
    (tmp_path / "c.syntxt").write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_weights({"c": Conv(1, 1, kernel_dims=[2, 1])}, tmp_path)


def test_negative_variance_is_an_error(tmp_path):
    (tmp_path / "bn.syntxt").write_text("1 0 0 1\n1 0 0 -2\n")
    with pytest.raises(ValueError, match=re.escape("bn.syntxt: negative variance -2 for "
                                                   "channel 1")):
        read_weights({"bn": BatchNorm(2)}, tmp_path)


def test_an_error_in_any_file_imports_nothing(tmp_path):
    good, bad = _fc([[0.0]], [0.0]), _fc([[0.0]], [0.0])
    (tmp_path / "a.syntxt").write_text("1 2\n")
    (tmp_path / "b.syntxt").write_text("1\n")
    with pytest.raises(ValueError, match=r"b\.syntxt:1: file ends after 1 values"):
        read_weights({"a": good, "b": bad}, tmp_path)
    assert good.weight.item() == 0.0 and good.bias.item() == 0.0


def test_a_bad_masks_file_rolls_back_every_cell(tmp_path):
    first, second = _fc([[1.0, 2.0]], [0.0]), _fc([[1.0, 2.0]], [0.0])
    for cell in (first, second):
        cell.quantizer = PruneCell(prune_mode="Static", prune_filler="IterNonStruct",
                                   threshold=0.5)
    write_weights({"a": first, "b": second}, tmp_path)
    (tmp_path / "a.syntxt").write_text("5 6 7\n")
    (tmp_path / "a_masks.syntxt").write_text("1 1 \n")
    (tmp_path / "b_masks.syntxt").write_text("1 1 1 \n")
    with pytest.raises(ValueError, match=r"b_masks\.syntxt: masks file holds 3 values"):
        read_weights({"a": first, "b": second}, tmp_path)
    assert first.weight.tolist() == [[1.0, 2.0]]
    assert first.quantizer.mask.tolist() == [[0.0, 1.0]]


def test_writing_is_atomic_an_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    write_weights({"fc": _fc([[1.0]])}, tmp_path)

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_weights({"fc": _fc([[2.0]])}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc_weights.syntxt"]
    assert (tmp_path / "fc_weights.syntxt").read_text() == "1 \n"


def test_net_must_be_a_network_or_a_mapping(tmp_path):
    with pytest.raises(TypeError, match="net must be a Network or a mapping of cell names"):
        write_weights([_fc([[1.0]])], tmp_path)
