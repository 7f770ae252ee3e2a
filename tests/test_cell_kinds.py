"""A weighted cell type is one builder in CELLS and one CellKind in CELL_KINDS: a toy registered
from outside the package is routed (its own solver key, QWeight=Prune), checked, learnt,
counted by costs, compacted (its shift map, a BatchNorm taking its offset), written to and
read from N2D2 weight files, and written back as an INI, like a built-in cell, from Python and
from INI."""

import ast
import contextlib
import dataclasses
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import n2prune.compact
from n2prune.cells import CELL_KINDS, CELLS, CellKind, Fc
from n2prune.cells.channels import fc_rule
from n2prune.cells.kinds import WEIGHT_ROLES, fc_macs, kind_of
from n2prune.cells.layouts import BATCHNORM_COLUMNS, FC_LAYOUT, ColumnFile
from n2prune.cells.shifted import Shifted, ShiftedFc
from n2prune.cells.shrinkers import shrink_fc
from n2prune.compact import compact
from n2prune.compact.costs import macs, parameters
from n2prune.compact.writeback import write_compacted
from n2prune.errors import ConfigError
from n2prune.n2d2io.read import read_weight_folder, read_weights
from n2prune.n2d2io.write import write_weights
from n2prune.network.build import load_network
from n2prune.solvers import SOLVERS


class ToyFc(Fc):
    """An Fc under another INI name, whose weight solver is named ``ToyWeightsSolver``."""


def toy_macs(module, inputs, output, weight):
    """Counts every weight twice (as if each connection were a multiply and an add): a
    counter that no built-in kind has, so the test sees the kind's own."""
    dense, nonzero = fc_macs(module, inputs, output, weight)
    return 2 * dense, 2 * nonzero


def build_toy(ctx):
    cell, shape = CELLS.get("Fc")(ctx)
    cell.__class__ = ToyFc   # same state as an Fc; only its kind differs
    return cell, shape


TOY_KIND = CellKind(ToyFc, (("ToyWeightsSolver", "weight"), ("BiasSolver", "bias")),
                    quantized=True, channel_rule=fc_rule, shrinker=shrink_fc, macs=toy_macs,
                    layout=FC_LAYOUT, shifted=ShiftedFc)


@contextlib.contextmanager
def toy_kind(**changes):
    """The toy registered (its builder and its kind, with ``changes``) for the block."""
    with CELLS.registered("ToyFc", build_toy), \
            CELL_KINDS.registered("ToyFc", dataclasses.replace(TOY_KIND, **changes)
                                  if changes else TOY_KIND):
        yield


@pytest.fixture
def toy():
    with toy_kind():
        yield


NET = """\
[sp]
SizeX=2
SizeY=2
NbChannels=1
BatchSize=4
[toy]
Input=sp
Type=ToyFc
NbOutputs=5
ToyWeightsSolver=Adam
ToyWeightsSolver.LearningRate=0.01
QWeight=Prune
QWeight.PruningMode=Static
QWeight.PruningFiller=IterNonStruct
QWeight.Threshold=0.25
[out]
Input=toy
Type=Fc
NbOutputs=3
[out.Target]
"""


def _net(tmp_path, text=NET):
    path = tmp_path / "toy.ini"
    path.write_text(text)
    return load_network(str(path), seed=1)


def test_a_registered_kind_is_found_and_an_unregistered_type_is_plain(toy):
    assert kind_of("ToyFc") is TOY_KIND and kind_of("Softmax") == CellKind()
    assert not kind_of("Softmax").quantized and kind_of("Softmax").channel_rule is None


def test_the_toy_is_built_from_ini_with_its_pruning_and_its_own_solver(toy, tmp_path):
    net = _net(tmp_path)
    cell = net.cells["toy"]
    assert type(cell) is ToyFc and cell.quantizer is not None
    assert 0.25 <= float((cell.quantizer.get_pruned_masks() == 0).float().mean()) < 0.5
    specs = net.info["toy"].solvers
    assert specs["weight"].type == "Adam" and specs["bias"].type == "SGD"
    assert specs["weight"].kwargs()["learning_rate"] == pytest.approx(0.01)
    # one learning step with the solver the INI asked for moves the weight
    spec = specs["weight"]
    solver = SOLVERS.get(spec.type)([{"params": [cell.weight], **spec.kwargs()}], batch_size=4)
    before = cell.weight.detach().clone()
    net(torch.randn(4, 1, 2, 2)).square().sum().backward()
    solver.step()
    assert not torch.equal(before, cell.weight.detach())


def test_without_its_kind_the_toy_gets_no_quantizer_and_no_solver_key(tmp_path):
    with CELLS.registered("ToyFc", build_toy):
        with pytest.raises(ConfigError, match=r"QWeight is read by Conv and Fc cells only, "
                                              r"not ToyFc"):
            _net(tmp_path)


def test_the_toy_kind_s_quantizer_is_named_in_the_error_of_a_type_without_one(toy, tmp_path):
    text = NET.replace("[out.Target]", "QWeight=Prune\n[out.Target]").replace(
        "Type=Fc", "Type=Softmax").replace("NbOutputs=3", "NbOutputs=5")
    with pytest.raises(ConfigError, match=r"QWeight is read by Conv, Fc and ToyFc cells "
                                          r"only, not Softmax"):
        _net(tmp_path, text)


def test_a_checked_kind_rejects_the_keys_a_plain_one_only_warns_about(tmp_path):
    text = NET.replace("QWeight=Prune\nQWeight.PruningMode=Static\nQWeight.PruningFiller="
                       "IterNonStruct\nQWeight.Threshold=0.25\n", "Solvers.Momentum=0.9\n")
    with CELLS.registered("ToyFc", build_toy), CELL_KINDS.registered("ToyFc", TOY_KIND):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _net(tmp_path, text)
        assert any("Solvers.Momentum" in str(w.message) for w in caught)
    checked = dataclasses.replace(TOY_KIND, checked=True)
    with CELLS.registered("ToyFc", build_toy), CELL_KINDS.registered("ToyFc", checked):
        with pytest.raises(ConfigError, match=r"\[toy\] Solvers.Momentum"):
            _net(tmp_path, text)


def test_the_toy_is_counted_by_its_own_mac_counter_from_python_and_ini(toy, tmp_path):
    python = nn.Sequential(nn.Flatten(), ToyFc(4, 5), nn.Linear(5, 3))
    assert macs(python, (1, 2, 2)) == {"dense": 2 * 20 + 15, "nonzero": 2 * 20 + 15}
    net = _net(tmp_path)
    kept = int((net.cells["toy"].quantizer.get_pruned_masks() != 0).sum())
    assert macs(net) == {"dense": 2 * 20 + 15, "nonzero": 2 * kept + 15}
    assert parameters(net)["total"] - parameters(net)["nonzero"] == 20 - kept


def test_the_toy_is_compacted_by_its_kind_s_rule_and_shrinker(toy, tmp_path):
    net = _net(tmp_path)
    net.eval()
    with torch.no_grad():
        net.cells["toy"].weight[1:3] = 0   # two output channels gone
        net.cells["toy"].bias[1:3] = 0
    small = compact(net)
    assert type(small.cells["toy"]) is ToyFc
    assert small.cells["toy"].weight.shape == (3, 4)
    assert small.cells["out"].weight.shape == (3, 3)
    x = torch.randn(6, 1, 2, 2)
    assert torch.allclose(small(x), net(x), atol=1e-6)


def test_a_kind_with_a_malformed_solver_role_is_refused():
    with pytest.raises(TypeError, match=r"solver_roles holds \(type key, parameter\) pairs"):
        CellKind(solver_roles=("WeightsSolver", "weight"))
    with pytest.raises(ValueError, match="quantized=True needs a weight"):
        CellKind(quantized=True)
    assert CellKind(solver_roles=WEIGHT_ROLES).solver_roles == WEIGHT_ROLES


def test_compaction_modules_import_n2prune_only_at_module_level():
    """No import cycle hidden in a function (costs <-> onnx_export, costs -> compact)."""
    hidden = []
    for path in sorted(Path(n2prune.compact.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                hidden += [f"{path.name}:{inner.lineno}" for inner in ast.walk(node)
                           if isinstance(inner, ast.ImportFrom)
                           and (inner.module or "").startswith("n2prune")]
    assert hidden == []


def test_the_toy_s_weight_files_follow_its_kind_s_layout(tmp_path):
    with toy_kind():
        _the_toy_s_weight_files_round_trip(tmp_path)
    # the kind decides: without a layout the toy has no files, and a folder without them
    # is complete
    with toy_kind(layout=None):
        net = _net(tmp_path)
        names = {path.name for path in write_weights(net, tmp_path / "none")}
        assert names and not any(name.startswith("toy") for name in names)
        assert read_weight_folder(_net(tmp_path), tmp_path / "none")


def _the_toy_s_weight_files_round_trip(tmp_path):
    net = _net(tmp_path)
    written = {path.name for path in write_weights(net, tmp_path / "w")}
    assert {"toy_weights.syntxt", "toy_biases.syntxt", "toy_quant_weights.syntxt",
            "toy_masks.syntxt"} <= written
    lines = (tmp_path / "w" / "toy_weights.syntxt").read_text().splitlines()
    assert [len(line.split()) for line in lines] == [4] * 5   # OC: one line per output
    fresh = _net(tmp_path)
    with torch.no_grad():
        fresh.cells["toy"].weight.zero_()
    read_weight_folder(fresh, tmp_path / "w")
    toy, back = net.cells["toy"], fresh.cells["toy"]
    assert torch.allclose(back.weight, toy.weight, atol=1e-6)
    assert torch.equal(back.quantizer.get_pruned_masks(), toy.quantizer.get_pruned_masks())


def test_a_kind_s_column_files_are_written_read_and_checked(tmp_path):
    """A toy kind whose per-output parameters are column files (as BatchNorm's) of its own:
    a ``gain`` buffer (1 when its file is absent) and a non-negative ``bias``."""
    columns = (ColumnFile("gains", "gain", default=1.0), ColumnFile("offsets", "bias",
                                                                     minimum=0.0))

    def net_with_gains(values):
        net = _net(tmp_path)
        net.cells["toy"].register_buffer("gain", torch.tensor(values))
        return net

    with toy_kind(layout=None, columns=columns):
        net = net_with_gains([0.5, 2.0, 3.0, 4.0, 5.0])
        with torch.no_grad():
            net.cells["toy"].bias.abs_()
        written = {path.name for path in write_weights(net, tmp_path / "w")}
        assert {"toy_gains.syntxt", "toy_offsets.syntxt"} <= written
        fresh = net_with_gains([0.0] * 5)
        read_weights(fresh, tmp_path / "w", ignore_missing=False)
        assert torch.equal(fresh.cells["toy"].gain, net.cells["toy"].gain)
        assert torch.allclose(fresh.cells["toy"].bias, net.cells["toy"].bias, atol=1e-6)
        (tmp_path / "w" / "toy_gains.syntxt").unlink()   # a default: 1 when absent
        read_weights(fresh, tmp_path / "w")
        assert fresh.cells["toy"].gain.tolist() == [1.0] * 5
        (tmp_path / "w" / "toy_offsets.syntxt").write_text("-1\n" + "1\n" * 4)
        with pytest.raises(ValueError, match=r"toy_offsets.syntxt: negative offset -1 for "
                                             r"channel 0"):
            read_weights(fresh, tmp_path / "w")
        (tmp_path / "w" / "toy_offsets.syntxt").unlink()   # the first file without default
        with pytest.warns(UserWarning, match="partial folder: 1 cell"):
            assert read_weight_folder(fresh, tmp_path / "w", allow_partial=True)
        with pytest.raises(ValueError, match=r"toy_offsets.syntxt missing \(1 of 2 cells\)"):
            read_weight_folder(fresh, tmp_path / "w")


def test_the_toy_is_written_back_as_an_ini_that_reads_back(toy, tmp_path):
    net = _net(tmp_path)
    net.eval()
    with torch.no_grad():
        net.cells["toy"].weight[1:3] = 0
        net.cells["toy"].bias[1:3] = 0
    files, small = write_compacted(net, str(tmp_path / "toy.ini"), str(tmp_path / "out"),
                                   onnx=False)   # every write-back is read back and compared
    text = (tmp_path / "out" / "toy.ini").read_text()
    assert "Type=ToyFc" in text and "NbOutputs=3" in text
    assert (tmp_path / "out" / "weights" / "toy_weights.syntxt").is_file()
    x = torch.randn(6, 1, 2, 2)
    assert torch.allclose(small(x), net(x), atol=1e-6)


SHIFT_NET = """\
[sp]
SizeX=2
SizeY=2
NbChannels=1
[fc1]
Input=sp
Type=Fc
NbOutputs=4
[toy]
Input=fc1
Type=ToyFc
NbOutputs=3
ActivationFunction=Linear
[out]
Input=toy
Type=Fc
NbOutputs=2
[out.Target]
"""


def test_the_toy_takes_a_removed_channel_s_constant_by_its_kind_s_shifted_class(toy,
                                                                               tmp_path):
    net = _net(tmp_path, SHIFT_NET)
    net.eval()
    net.cells["toy"].bias = None   # nothing else can take the constant
    with torch.no_grad():   # fc1's channel 1 carries its bias only: a constant
        net.cells["fc1"].weight[1] = 0
        net.cells["fc1"].bias[1] = 2.0
    small = compact(net)
    assert small.compaction["folds"]["toy"] == "shift"
    assert isinstance(small.cells["toy"], Shifted) and small.cells["toy"].weight.shape == (3, 3)
    x = torch.randn(6, 1, 2, 2)
    assert torch.allclose(small(x), net(x), atol=1e-5)
    # a kind whose next cell absorbs the offset takes it instead
    absorbed = []
    taker = dataclasses.replace(kind_of("Fc"), absorb_input_offset=lambda cell, offset:
                                absorbed.append(offset))
    with CELL_KINDS.registered("ToyTaker", taker), CELLS.registered("ToyTaker",
                                                                    CELLS.get("Fc")):
        net = _net(tmp_path, SHIFT_NET.replace("Type=Fc\nNbOutputs=2", "Type=ToyTaker\n"
                                                                           "NbOutputs=3"))
        net.cells["toy"].bias = None
        with torch.no_grad():
            net.cells["fc1"].weight[1] = 0
            net.cells["fc1"].bias[1] = 2.0
        assert compact(net).compaction["folds"]["toy"] == "batchnorm" and len(absorbed) == 1


def test_a_kind_s_layout_columns_and_shifted_are_checked():
    with pytest.raises(TypeError, match="layout must be a WeightLayout"):
        CellKind(layout="OC")
    with pytest.raises(ValueError, match="a weight layout or column files, not both"):
        CellKind(layout=FC_LAYOUT, columns=BATCHNORM_COLUMNS)
    with pytest.raises(TypeError, match="shifted must be a Shifted subclass"):
        CellKind(shifted=Fc)
