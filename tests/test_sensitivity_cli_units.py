"""``n2prune-sensitivity`` on an INI network with Coupled cells: each coupled unit is analysed,
budgeted and written back as one, as ``n2prune-train --budget sensitivity`` does."""

import n2prune
from n2prune.cli import sensitivity_main
from nets import RESIDUAL
from test_sensitivity_train import _curves


def _run(tmp_path, *extra):
    net = tmp_path / "residual.ini"
    if not net.exists():
        net.write_text(RESIDUAL)
    out = tmp_path / "out"
    return sensitivity_main([str(net), "-o", str(out), "-seed", "3", "--sparsities", "0.5",
                             "0.75", "--target-sparsity", "0.4", "--quiet", *extra]), out


def test_the_command_analyses_and_writes_back_a_coupled_unit_as_one(tmp_path, capsys):
    code, out = _run(tmp_path)
    assert code == 0
    csv = out / "sensitivity.csv"
    assert {cell for cell, _ in _curves(csv)} == {"(dense)", "a", "stem+b"}
    assert "stem+b=[stem+b]:L1Norm/Channel" in csv.read_text().splitlines()[0]
    shown = capsys.readouterr().out
    rows = [line.split()[0] for line in shown.splitlines() if line.strip()]
    assert rows.count("stem+b") == 2 and "stem" not in rows and "b" not in rows  # both tables
    assert (out / "sensitivity.png").exists()
    cells = n2prune.load_network(str(out / "residual.ini")).pruned_cells()
    thresholds = {name: cell.quantizer.threshold for name, cell in cells.items()}
    assert thresholds["stem"] == thresholds["b"] != 0.5    # the unit's target, in both cells
    # the same command continues the analysis: nothing is scored again
    before = csv.stat().st_mtime_ns
    assert _run(tmp_path)[0] == 0 and csv.stat().st_mtime_ns == before


def test_a_csv_of_other_units_is_refused_in_one_line(tmp_path, capsys):
    code, out = _run(tmp_path)
    assert code == 0
    csv = out / "sensitivity.csv"
    header, _, body = csv.read_text().partition("\n")
    # as a run analysing stem and b alone would have written it
    csv.write_text(header.replace("stem+b=[stem+b]:L1Norm/Channel",
                                  "stem:L1Norm/Channel,b:L1Norm/Channel") + "\n" + body)
    capsys.readouterr()
    assert _run(tmp_path)[0] == 2
    err = capsys.readouterr().err.strip()
    assert "cells, units or their criteria differ" in err and "stem+b" in err
    assert len(err.splitlines()) == 1
    assert _run(tmp_path, "--overwrite")[0] == 0


def test_a_pattern_the_coupled_cells_cannot_take_is_refused(tmp_path, capsys):
    assert _run(tmp_path, "--pattern", "Unstructured")[0] == 2
    assert capsys.readouterr().err.strip() == (
        "error: --pattern Unstructured: stem+b prune the same channels "
        "(QWeight.PruningScope=Coupled), by the Channel pattern only; give --pattern Channel, "
        "or none (each cell's own)")
    assert _run(tmp_path, "--pattern", "Channel")[0] == 0

