"""Sensitivity analysis: points, CSV, PNG, resuming, refusals (n2prune.sensitivity)."""

import csv
import math

import pytest
import torch
from torch import nn

import n2prune
from n2prune.sensitivity.records import DENSE

GRID = (0.25, 0.5, 0.75)


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():  # distinct magnitudes: no tie decides a mask
        for layer in (model[0], model[2]):
            n = layer.weight.numel()
            layer.weight.copy_((torch.arange(1, n + 1, dtype=torch.float32) / n)
                               .reshape(layer.weight.shape))
    return model


def _zeros(model):
    """A metric exact on paper: fraction of the weights the forward uses that are zero."""
    total = zeros = 0
    for layer in (model[0], model[2]):
        weight = n2prune.compact.costs.used_weight(layer)
        total, zeros = total + weight.numel(), zeros + int((weight == 0).sum())
    return zeros / total


def _rows(path):
    with open(path) as stream:
        assert stream.readline().startswith("# n2prune-sensitivity net=")
        return list(csv.DictReader(stream))


def test_each_cell_alone_at_each_sparsity(tmp_path):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = n2prune.sensitivity(model, _zeros, sparsities=GRID, csv=tmp_path / "s.csv",
                                 plot=tmp_path / "s.png", input_shape=(8,))
    rows = _rows(tmp_path / "s.csv")
    assert [(r["cell"], float(r["sparsity"])) for r in rows] == \
        [(DENSE, 0.0)] + [(c, s) for c in ("0", "2") for s in GRID]
    for row in rows[1:]:
        n = 48 if row["cell"] == "0" else 18
        pruned = math.ceil(float(row["sparsity"]) * n)   # Magnitude: ceil(t * N) zeros
        assert int(row["parameters_removed"]) == pruned
        assert int(row["macs_removed"]) == pruned         # a Linear does one MAC per weight
        assert float(row["metric"]) == pytest.approx(pruned / 66, abs=1e-6)  # the rest dense
    assert result.dense == 0.0 and result.weights == {"0": 48, "2": 18}
    assert result.macs == 66 and result.parameters == 66 + 9
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_channel_pattern_removes_whole_rows():
    result = n2prune.sensitivity(_model(), _zeros, sparsities=(0.5,), pattern="Channel",
                                 criterion="L1Norm", input_shape=(8,))
    assert [p.parameters_removed for p in result.points["0"]] == [3 * 8]
    assert [p.parameters_removed for p in result.points["2"]] == [2 * 6]
    assert result.methods["0"] == "L1Norm/Channel"


def test_a_cells_own_prunecell_gives_its_method_and_is_left_alone():
    model = _model()
    n2prune.attach(model, include="0", prune_mode="Static", threshold=0.5,
                   prune_filler="L2Norm", pattern="Channel")
    result = n2prune.sensitivity(model, _zeros, sparsities=(0.5,), input_shape=(8,))
    assert list(result.points) == ["0"] and result.methods["0"] == "L2Norm/Channel"
    assert result.dense == 0.0                            # its mask is off for the analysis
    assert model[0].quantizer.sparsity() == 0.5   # and back afterwards


class _Stop(Exception):
    pass


def test_an_interrupted_run_continues_where_it_stopped(tmp_path):
    whole = n2prune.sensitivity(_model(), _zeros, sparsities=GRID, csv=tmp_path / "a.csv",
                                input_shape=(8,))
    calls = []

    def dies_at_the_fourth(model):
        calls.append(1)
        if len(calls) == 4:
            raise _Stop
        return _zeros(model)

    with pytest.raises(_Stop):
        n2prune.sensitivity(_model(), dies_at_the_fourth, sparsities=GRID,
                            csv=tmp_path / "b.csv", input_shape=(8,))
    assert len(_rows(tmp_path / "b.csv")) == 3            # dense and two points survived
    calls.clear()
    again = n2prune.sensitivity(_model(), lambda m: calls.append(1) or _zeros(m),
                                sparsities=GRID, csv=tmp_path / "b.csv", input_shape=(8,))
    assert len(calls) == 4                                 # only the 4 missing points
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert again.points == whole.points


def test_a_csv_of_another_grid_or_network_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    n2prune.sensitivity(_model(), _zeros, sparsities=GRID, csv=path, input_shape=(8,))
    with pytest.raises(ValueError, match=r"s\.csv: holds points of another analysis \(its "
                                         r"sparsity grid differs: '0\.25,0\.5,0\.75' there"):
        n2prune.sensitivity(_model(), _zeros, sparsities=(0.5,), csv=path, input_shape=(8,))
    other = _model()
    with torch.no_grad():
        other[0].weight[0, 0] += 1
    with pytest.raises(ValueError, match=r"its weights \(digest\) differ"):
        n2prune.sensitivity(other, _zeros, sparsities=GRID, csv=path, input_shape=(8,))
    path.write_text("cell,sparsity\n")
    with pytest.raises(ValueError, match="not a sensitivity CSV written by n2prune"):
        n2prune.sensitivity(_model(), _zeros, sparsities=GRID, csv=path, input_shape=(8,))


@pytest.mark.parametrize("bad, message", [
    (dict(sparsities=(0.0, 0.5)), "sparsities must lie strictly between 0 and 1"),
    (dict(cells=["nope"]), "cells: no layer named 'nope'"),
    (dict(criterion="Snip"), "criterion 'Snip' ranks with statistics gathered while learning"),
])
def test_bad_arguments_say_what_is_valid(bad, message):
    with pytest.raises(ValueError, match=message):
        n2prune.sensitivity(_model(), _zeros, input_shape=(8,), **bad)


def test_without_an_input_shape_the_macs_column_is_empty_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="MACs column stays empty"):
        result = n2prune.sensitivity(_model(), _zeros, sparsities=(0.5,), csv=tmp_path / "s.csv")
    assert result.macs is None and _rows(tmp_path / "s.csv")[1]["macs_removed"] == ""
