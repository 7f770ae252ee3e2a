"""n2prune-train with a data-driven criterion and regularisation from INI: statistics come
from the learning set's batches, the penalty enters the loss, the target is reached."""

import json
from pathlib import Path

import torch

from n2prune.cli import train_main

ROOT = Path(__file__).resolve().parent.parent


def test_n2prune_train_with_snip_and_group_lasso_from_ini(tmp_path):
    text = (ROOT / "networks" / "digits.ini").read_text()
    text = text.replace("QWeight.PruningFiller=IterNonStruct",
                        "QWeight.PruningFiller=Snip\nQWeight.CalibrationBatches=3\n"
                        "QWeight.Regularization=GroupLasso\nQWeight.RegularizationStrength=1e-4")
    ini = tmp_path / "digits-snip.ini"
    ini.write_text(text)
    output = tmp_path / "run"
    assert train_main([str(ini), "-learn-epoch", "4", "-seed", "7", "--threads", "1",
                       "--quiet", "--output", str(output)]) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["sparsity"] >= 0.74
    assert report["test_accuracy"] > 0.8
    state = torch.load(output / "checkpoint.pt", weights_only=True)
    flat = json.dumps(sorted(_keys(state)))
    assert "stat_grad" in flat and "stat_grad_count" in flat  # statistics travel in checkpoints


def _keys(state, prefix=""):
    if isinstance(state, dict):
        for key, value in state.items():
            yield from _keys(value, f"{prefix}{key}.")
    else:
        yield prefix
