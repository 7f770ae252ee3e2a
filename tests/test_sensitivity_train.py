"""n2prune-train --budget sensitivity --target-sparsity S (n2prune.train.budget)."""

import json
from pathlib import Path

import pytest
import torch

from n2prune.cli import train_main

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


def test_budget_from_warm_started_weights(tmp_path):
    first = tmp_path / "first"
    assert train_main([DIGITS, "-learn-epoch", "1", "-seed", "3", "--output", str(first),
                       "--quiet"]) == 0
    out = tmp_path / "warm"
    assert train_main([DIGITS, "-learn-epoch", "1", "-seed", "3", "--output", str(out),
                       "--quiet", "-w", str(first / "weights"), "--budget", "sensitivity",
                       "--target-sparsity", "0.9"]) == 0
    report = _report(out)
    assert report["budget"]["target_sparsity"] == 0.9
    # analysed before learning: the dense metric is that of the warm-started weights
    assert report["budget"]["dense_metric"] > 0.5


@pytest.mark.parametrize("extra, message", [
    (["--budget", "sensitivity"], "--budget sensitivity needs --target-sparsity F"),
    (["--budget", "sensitivity", "--target-sparsity", "1.5"], "strictly between 0 and 1"),
    (["--target-sparsity", "0.5"], "--budget must be 'sensitivity'"),
])
def test_bad_budget_options(tmp_path, capsys, extra, message):
    assert train_main([DIGITS, "-learn-epoch", "1", "--output", str(tmp_path), "--quiet"]
                      + extra) == 2
    assert message in capsys.readouterr().err
