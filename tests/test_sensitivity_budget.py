"""Budgets from sensitivity curves, their INI write-back and n2prune-sensitivity."""

from pathlib import Path

import pytest

import n2prune
from n2prune.compact.ini_writer import COMMENT_OUT
from n2prune.cli import sensitivity_main
from n2prune.sensitivity import Point, Sensitivity, allocate
from n2prune.sensitivity.ini import budget_edits, write_budget_ini

ROOT = Path(__file__).resolve().parent.parent
GRID = (0.2, 0.4, 0.6, 0.8)


def _result(curves, weights, macs=None):
    """A Sensitivity from curves given as metrics at GRID (dense metric 1.0)."""
    points = {cell: [Point(cell, s, m, int(s * weights[cell]),
                           None if macs is None else int(s * macs[cell]))
                     for s, m in zip(GRID, metrics)] for cell, metrics in curves.items()}
    return Sensitivity(1.0, points, weights, {c: "Magnitude/Unstructured" for c in curves},
                       parameters=sum(weights.values()) + 10,
                       macs=None if macs is None else sum(macs.values()))


def test_the_insensitive_cell_takes_the_sparsity():
    # 'flat' loses nothing up to 0.8, 'steep' loses 0.1 per 0.2 of sparsity: at 40 % overall
    # the budget puts 0.8 on flat (the same size as steep) and nothing on steep.
    result = _result({"flat": [1.0, 1.0, 1.0, 1.0], "steep": [0.9, 0.8, 0.7, 0.6]},
                     {"flat": 1000, "steep": 1000})
    budget = allocate(result, 0.4, resolution=0.05)
    assert budget.sparsities == pytest.approx({"flat": 0.8, "steep": 0.0})
    assert budget.achieved == pytest.approx(0.4) and budget.predicted_loss == pytest.approx(0)


def test_the_target_is_met_at_the_least_predicted_loss():
    result = _result({"a": [0.99, 0.97, 0.9, 0.7], "b": [1.0, 0.98, 0.96, 0.8],
                      "c": [0.95, 0.9, 0.85, 0.8]}, {"a": 300, "b": 600, "c": 100})
    budget = allocate(result, 0.5, resolution=0.2, floor=0.2)
    assert budget.achieved >= 0.5
    # every combination of the grid meeting the target loses at least as much (brute force)
    best = min(sum(1.0 - dict(zip(GRID, curve))[s] for curve, s in zip(
        ([0.99, 0.97, 0.9, 0.7], [1.0, 0.98, 0.96, 0.8], [0.95, 0.9, 0.85, 0.8]), combo))
        for combo in __import__("itertools").product(GRID, repeat=3)
        if 300 * combo[0] + 600 * combo[1] + 100 * combo[2] >= 500)
    assert budget.predicted_loss == pytest.approx(best)


def test_floor_ceiling_and_kinds():
    result = _result({"a": [1.0, 1.0, 1.0, 1.0], "b": [0.9, 0.8, 0.7, 0.6]},
                     {"a": 100, "b": 100}, macs={"a": 100, "b": 900})
    budget = allocate(result, 0.5, ceiling={"a": 0.6}, resolution=0.1)
    assert budget.sparsities["a"] == pytest.approx(0.6) and budget.sparsities["b"] >= 0.4 - 1e-9
    macs = allocate(result, 0.5, "MACs", resolution=0.1)   # b holds 90 % of the MACs
    assert macs.sparsities["b"] >= 0.5 and macs.achieved >= 0.5
    params = allocate(result, 0.5, "Parameters", resolution=0.1)   # 210 parameters in all
    assert 100 * params.sparsities["a"] + 100 * params.sparsities["b"] >= 105
    with pytest.raises(ValueError, match=r"ceilings reach only 60\.00% \(Sparsity\), short "
                                         r"of the target 90\.00%"):
        allocate(result, 0.9, ceiling=0.6)
    with pytest.raises(ValueError, match="a MACs target needs the MACs column"):
        allocate(_result({"a": [1.0] * 4}, {"a": 10}), 0.5, "MACs")
    with pytest.raises(ValueError, match="unknown budget target 'Latncy'"):
        allocate(result, 0.5, "Latncy")


def test_the_written_ini_trains_to_the_budget_and_keeps_the_rest(tmp_path):
    source = ROOT / "networks" / "digits.ini"
    net = n2prune.load_network(str(source))
    budget = {"conv1": 0.2, "conv2": 0.6, "fc1": 0.9, "fc2": 0.5}
    written = write_budget_ini(net, str(source), budget, tmp_path / "digits.ini")
    text = written.read_text()
    # the ConfigSection's threshold and start would override the cells' own: commented out
    assert "; QWeight.Threshold=0.75" in text and "; QWeight.StartThreshold=0.3" in text
    original = source.read_text().split("\n")
    assert [line for line in original if line.startswith(";")] == \
        [line for line in text.split("\n") if line in original and line.startswith(";")]
    again = n2prune.load_network(str(written))
    for name, target in budget.items():
        quantizer = again.cells[name].quantizer
        assert quantizer.threshold == pytest.approx(target)
        assert quantizer.start == pytest.approx(min(0.3, target))   # never starts above it
        assert quantizer.prune_mode == "Gradual"


def test_cells_outside_the_budget_keep_their_values():
    net = n2prune.load_network(str(ROOT / "networks" / "digits.ini"))
    edits = budget_edits(net, {"fc1": 0.95})
    assert edits["common.config"] == {"QWeight.Threshold": COMMENT_OUT}
    assert edits["fc1"] == {"QWeight.Threshold": "0.9500"}
    assert edits["conv1"] == edits["fc2"] == {"QWeight.Threshold": "0.7500"}
    with pytest.raises(ValueError, match="'pool1' is not a cell with QWeight=Prune"):
        budget_edits(net, {"pool1": 0.5})


def test_template_cells_are_written_in_their_expanded_sections(tmp_path):
    source = ROOT / "networks" / "resnet-mini.ini"
    net = n2prune.load_network(str(source), environ={"N2D2_DATA": "/nonexistent"})
    budget = {name: 0.5 + 0.01 * i for i, name in enumerate(net.pruned_cells())}
    written = write_budget_ini(net, str(source), budget, tmp_path / "resnet-mini.ini")
    again = n2prune.load_network(str(written), environ={"N2D2_DATA": "/nonexistent"})
    assert {n: round(c.quantizer.threshold, 4) for n, c in again.pruned_cells().items()} == \
        pytest.approx(budget)


def test_command_line_analysis_budget_and_resume(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [str(ROOT / "networks" / "digits.ini"), "-o", str(out), "--sparsities", "0.5", "0.9",
            "--target-sparsity", "0.8", "--quiet"]
    assert sensitivity_main(argv) == 0
    shown = capsys.readouterr().out
    assert "predicted loss" in shown and f"wrote {out / 'digits.ini'}" in shown
    assert (out / "sensitivity.png").exists() and len((out / "sensitivity.csv").read_text()
                                                      .strip().split("\n")) == 2 + 1 + 4 * 2
    net = n2prune.load_network(str(out / "digits.ini"))
    assert n2prune.prune.sparsity.sparsity(net.pruned_cells().values()) >= 0  # it loads
    assert sum(c.quantizer.threshold * c.weight.numel() for c in net.pruned_cells().values()) \
        >= 0.8 * sum(c.weight.numel() for c in net.pruned_cells().values()) - 1
    assert sensitivity_main(argv[:-4] + ["0.5", "--quiet"]) == 2
    assert "sparsity grid differs" in capsys.readouterr().err
    assert sensitivity_main(argv[:-4] + ["0.5", "--quiet", "--overwrite"]) == 0


def test_a_measured_target_with_diminishing_returns_is_met():
    # measured whole, every bin asked beyond 30 % saves 1 % of its worth, and 0.0001 less:
    # asking the shortfall more (one bin a round) would need 40 rounds; growing steps meet it
    from n2prune.sensitivity import budget as module

    def measured(result, sparsities):
        first = sum(s * result.weights[c] for c, s in sparsities.items()) / 2000
        return 0.3 + (first - 0.3) * 0.01 - 0.0001

    shrinking = module.Target(module._weights_removed, lambda r: 2000.0, "test", measured)
    result = _result({"a": [1.0, 0.99, 0.98, 0.97], "b": [1.0, 0.99, 0.98, 0.97]},
                     {"a": 1000, "b": 1000})
    with module.TARGETS.registered("Shrinking", shrinking):
        budget = allocate(result, 0.3, "Shrinking")
    assert budget.achieved >= 0.3
    assert measured(result, budget.sparsities) == budget.achieved


def test_the_written_ini_prunes_with_the_criterion_and_pattern_analysed(tmp_path, capsys):
    """--criterion and --pattern replace the cells' own in the analysis: the INI written for
    its budget trains with them (the ConfigSection's filler commented out), not with the
    IterNonStruct filler the source names."""
    out = tmp_path / "out"
    argv = [str(ROOT / "networks" / "digits.ini"), "-o", str(out), "--sparsities", "0.25",
            "0.5", "--criterion", "L1Norm", "--pattern", "Channel", "--target-macs", "0.3",
            "--quiet"]
    assert sensitivity_main(argv) == 0, capsys.readouterr().err
    text = (out / "digits.ini").read_text()
    assert "; QWeight.PruningFiller=IterNonStruct" in text
    net = n2prune.load_network(str(out / "digits.ini"))
    for name, cell in net.pruned_cells().items():
        assert (cell.quantizer.prune_filler, cell.quantizer.pattern) == ("L1Norm", "Channel")
    assert not list(out.glob(".*.check"))  # the read-back's scratch file is gone


def test_a_budget_ini_that_does_not_read_back_is_not_written(tmp_path, monkeypatch):
    source = ROOT / "networks" / "digits.ini"
    net = n2prune.load_network(str(source))
    broken = dict(budget_edits(net, {"fc1": 0.9}))
    broken["fc1"] = {"QWeight.Threshold": "0.8000"}   # an edit that loses the budget
    monkeypatch.setattr("n2prune.sensitivity.ini.budget_edits", lambda *a: broken)
    with pytest.raises(RuntimeError, match=r"\[fc1\] holds QWeight.Threshold=0.8000 instead "
                                           r"of QWeight.Threshold=0.9000; nothing written"):
        write_budget_ini(net, str(source), {"fc1": 0.9}, tmp_path / "digits.ini")
    assert list(tmp_path.iterdir()) == []
