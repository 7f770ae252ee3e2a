"""N2D2's command-line options beyond the basic ones (issue 22, item 4)."""

import csv
import json
from pathlib import Path

from n2prune.cli import train_main

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")   # Gradual pruning reached in epoch 3


def test_stop_valid_stops_after_n_log_points_without_a_better_score(tmp_path):
    output = tmp_path / "run"
    assert train_main([DIGITS, "-learn-epoch", "12", "-seed", "7", "-stop-valid", "1",
                       "--quiet", "--output", str(output)]) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["stopped_early"] is True and report["epochs"] < 12
    rows = csv.DictReader((output / "log.csv").read_text().splitlines())
    scores = [float(row["validation_score"]) for row in rows if row["pruning_done"] == "True"]
    assert scores[-1] <= max(scores[:-1])   # the last log point did not improve
    assert all(b > a for a, b in zip(scores[:-2], scores[1:-1]))   # every earlier one did


def test_stop_valid_must_not_be_negative(capsys):
    assert train_main([DIGITS, "-learn-epoch", "1", "-stop-valid", "-1"]) == 2
    assert "-stop-valid must be >= 0" in capsys.readouterr().err
