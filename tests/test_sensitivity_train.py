"""n2prune-train --budget sensitivity --target-sparsity S (n2prune.train.budget)."""

import json
from pathlib import Path

import pytest
import torch

import n2prune
from n2prune.cli import sensitivity_main, train_main
from n2prune.compact.costs import macs
from n2prune.sensitivity import allocate, measure_latency, sensitivity
from nets import RESIDUAL  # stem + b summed (Coupled), a alone, on the embedded digits

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")


def _report(out):
    return json.loads((out / "report.json").read_text())


def test_budget_from_the_first_epoch_is_trained_to_and_survives_resume(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [DIGITS, "-learn-epoch", "2", "-seed", "3", "--output", str(out), "--quiet",
            "--budget", "sensitivity", "--target-sparsity", "0.85"]
    assert train_main(argv) == 0
    report = _report(out)
    budget = report["budget"]["cells"]
    assert set(budget) == {"conv1", "conv2", "fc1", "fc2"} and report["budget"]["achieved"] >= 0.85
    # the cells were given the budget (the INI says 0.75 for every cell)
    assert {name: cell["threshold"] for name, cell in report["cells"].items()} == \
        pytest.approx(budget)
    assert (out / "sensitivity.csv").exists() and (out / "sensitivity.png").exists()
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert saved["state"]["budget"]["cells"] == budget
    # a resumed run rebuilds the cells from the INI: the checkpoint's budget is reapplied
    assert train_main(argv + ["--resume"]) == 0
    assert {name: cell["threshold"] for name, cell in _report(out)["cells"].items()} == \
        pytest.approx(budget)


def _warm_budget(tmp_path):
    """A one-epoch run, then a run warm-started from its weights with the sensitivity budget
    analysed on them: (the first run's folder, the second's)."""
    first, out = tmp_path / "first", tmp_path / "warm"
    assert train_main([DIGITS, "-learn-epoch", "1", "-seed", "3", "--output", str(first),
                       "--quiet"]) == 0
    assert train_main([DIGITS, "-learn-epoch", "1", "-seed", "3", "--output", str(out),
                       "--quiet", "-w", str(first / "weights"), "--budget", "sensitivity",
                       "--target-sparsity", "0.9"]) == 0
    return first, out


def test_budget_from_warm_started_weights(tmp_path):
    _, out = _warm_budget(tmp_path)
    report = _report(out)
    assert report["budget"]["target_sparsity"] == 0.9
    # analysed before learning, scored by minus the validation loss: the warm-started
    # weights' loss, well below an untrained network's ln(10)
    assert report["budget"]["metric"] == "-loss (Validation)"
    assert -1.0 < report["budget"]["dense_metric"] < 0.0


@pytest.mark.parametrize("extra, message", [
    (["--budget", "sensitivity"], "--budget sensitivity needs --target-sparsity F"),
    (["--budget", "sensitivity", "--target-sparsity", "1.5"], "strictly between 0 and 1"),
    (["--target-sparsity", "0.5"], "no cell has QWeight.PruningBudget=Sensitivity"),
])
def test_bad_budget_options(tmp_path, capsys, extra, message):
    assert train_main([DIGITS, "-learn-epoch", "1", "--output", str(tmp_path), "--quiet"]
                      + extra) == 2
    assert message in capsys.readouterr().err


def _digits_with(tmp_path, *lines, after="QWeight.Threshold=0.75"):
    """networks/digits.ini with ``lines`` added to its prune ConfigSection."""
    text = (ROOT / "networks" / "digits.ini").read_text()
    assert after in text
    path = tmp_path / "digits.ini"
    path.write_text(text.replace(after, "\n".join((after,) + lines)))
    return str(path)


def test_ini_key_pruning_budget_sensitivity_trains_to_the_ini_threshold(tmp_path):
    net = _digits_with(tmp_path, "QWeight.PruningBudget=Sensitivity")
    out = tmp_path / "run"
    assert train_main([net, "-learn-epoch", "2", "-seed", "3", "--output", str(out),
                       "--quiet"]) == 0
    report = _report(out)
    budget = report["budget"]
    # the INI's QWeight.Threshold=0.75 is the team's overall target, spread unevenly
    assert budget["target_sparsity"] == 0.75 and budget["achieved"] >= 0.75
    assert set(budget["cells"]) == {"conv1", "conv2", "fc1", "fc2"}
    assert len({round(s, 4) for s in budget["cells"].values()}) > 1
    assert {name: cell["threshold"] for name, cell in report["cells"].items()} == \
        pytest.approx(budget["cells"])


def test_the_command_line_target_overrides_the_ini_threshold(tmp_path):
    net = _digits_with(tmp_path, "QWeight.PruningBudget=Sensitivity")
    out = tmp_path / "run"
    assert train_main([net, "-learn-epoch", "2", "-seed", "3", "--output", str(out),
                       "--quiet", "--target-sparsity", "0.9"]) == 0
    budget = _report(out)["budget"]
    assert budget["target_sparsity"] == 0.9 and budget["achieved"] >= 0.9


def test_cells_outside_the_ini_budget_keep_their_threshold(tmp_path):
    text = (ROOT / "networks" / "digits.ini").read_text().replace(
        "[fc2]\nInput=fc1\nType=Fc\nNbOutputs=10\nConfigSection=common.config\nQWeight=Prune",
        "[fc2]\nInput=fc1\nType=Fc\nNbOutputs=10\nConfigSection=common.config,fc2.config\n"
        "QWeight=Prune\n\n[fc2.config]\nQWeight.PruningBudget=Sensitivity\n"
        "QWeight.Threshold=0.5")
    assert "fc2.config" in text
    net = tmp_path / "digits.ini"
    net.write_text(text)
    out = tmp_path / "run"
    assert train_main([str(net), "-learn-epoch", "2", "-seed", "3", "--output", str(out),
                       "--quiet"]) == 0
    report = _report(out)
    assert set(report["budget"]["cells"]) == {"fc2"}       # a team of one: its own threshold
    assert report["budget"]["cells"]["fc2"] == pytest.approx(0.5, abs=0.003)
    assert report["cells"]["conv1"]["threshold"] == pytest.approx(0.75)


@pytest.mark.parametrize("lines, message", [
    (("QWeight.PruningBudget=Sensitivty",), "did you mean 'Sensitivity'"),
    (("QWeight.PruningBudget=Sensitivity", "QWeight.Threshold=0"),
     "prunes threshold=0.0 of the cells' weights overall: a fraction strictly between 0"),
])
def test_bad_ini_budget_values_are_located(tmp_path, capsys, lines, message):
    net = _digits_with(tmp_path, *lines)
    assert train_main([net, "-learn-epoch", "1", "--output", str(tmp_path / "o"),
                       "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    line = 86 + len(lines)   # the last key added, after QWeight.Threshold=0.75 (line 86)
    assert f"digits.ini:{line}:" in err and "[common.config]" in err


def _curves(path):
    rows = [line.split(",") for line in path.read_text().splitlines()
            if line and not line.startswith("#") and not line.startswith("cell,")]
    return {(cell, float(s)): float(metric) for cell, s, metric, *_ in rows}


def test_the_command_scores_by_loss_as_the_training_budget_does(tmp_path):
    """``n2prune-sensitivity -valid-metric Loss`` on the weights a ``--budget sensitivity``
    run analysed gives the same points as that run's analysis (the same metric, the same set)."""
    first, warm = _warm_budget(tmp_path)
    out = tmp_path / "cli"
    assert sensitivity_main([DIGITS, "-w", str(first / "weights"), "-seed", "3", "--quiet",
                             "-valid-metric", "Loss", "--output", str(out),
                             "--sparsities", "0.5", "0.9"]) == 0
    trained, command = _curves(warm / "sensitivity.csv"), _curves(out / "sensitivity.csv")
    assert len(command) == 1 + 4 * 2 and command[("(dense)", 0.0)] < 0
    assert command == pytest.approx({k: trained[k] for k in command}, abs=1e-6)
    assert sensitivity_main([DIGITS, "--quiet", "-valid-metric", "Lost", "--output",
                             str(tmp_path / "bad")]) == 2


def test_coupled_cells_are_one_unit_of_the_budget(tmp_path):
    """Cells of the Coupled scope (a residual stream: stem and b) prune the same channels, so
    the analysis prunes them together (one curve) and the budget gives them one target."""
    net = tmp_path / "residual.ini"
    net.write_text(RESIDUAL)
    out = tmp_path / "run"
    assert train_main([str(net), "-learn-epoch", "2", "-seed", "3", "--output", str(out),
                       "--quiet", "--budget", "sensitivity", "--target-sparsity", "0.5"]) == 0
    budget = _report(out)["budget"]
    cells = budget["cells"]
    assert set(cells) == {"stem", "a", "b"} and cells["stem"] == cells["b"]
    curves = {cell for cell, _ in _curves(out / "sensitivity.csv")}
    assert curves == {"(dense)", "a", "stem+b"}
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    stem, b = (saved["net"][f"layers.{n}.quantizer.mask"] for n in ("stem", "b"))
    assert torch.equal(stem.flatten(1).amax(1) == 0, b.flatten(1).amax(1) == 0)


def test_an_ini_networks_units_need_no_example_for_the_latency_model(tmp_path):
    """An INI network's coupled cells form a unit of the analysis and of the latency model
    from its own channel graph (no example input)."""
    path = tmp_path / "residual.ini"
    path.write_text(RESIDUAL)
    net = n2prune.load_network(str(path))
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    net.eval()
    reference = net(x).detach()
    result = sensitivity(net, lambda m: -float((m(x) - reference).abs().mean().detach()),
                         cells=["a"], units={"stem+b": ["stem", "b"]}, pattern="Channel",
                         criterion="L1Norm", sparsities=(0.25, 0.5, 0.75))
    shape = tuple(net.input_shape)
    result.latency = measure_latency(net, result, timer=lambda nets: {
        name: float(macs(n, shape)["dense"]) for name, n in nets.items()})
    budget = allocate(result, 0.3, "Latency")
    assert set(budget.sparsities) == {"a", "stem+b"} and budget.achieved >= 0.3
