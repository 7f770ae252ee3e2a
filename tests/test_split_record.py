"""-test -w DIR tests the split of the run that wrote DIR (issue 22, item 5)."""

import json
from pathlib import Path

from n2prune.cli import train_main
from n2prune.data.partition import N2D2Random, Partition
from n2prune.train.splitrecord import SPLIT_FILE

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")   # Learn/Validation/Test drawn with the seed


def _learn(tmp_path):
    output = tmp_path / "run"
    assert train_main([DIGITS, "-learn-epoch", "1", "-seed", "7", "--threads", "1", "--quiet",
                       "--output", str(output)]) == 0
    return output


def test_weights_folder_records_seed_and_split_and_test_uses_them(tmp_path, capsys):
    output = _learn(tmp_path)
    capsys.readouterr()
    report = json.loads((output / "report.json").read_text())
    record = json.loads((output / "weights" / SPLIT_FILE).read_text())
    assert record["seed"] == 7 and record["sets"] == report["sets"]
    assert len(record["digest"]) == 64
    other = tmp_path / "tested"
    # no -seed: the recorded one, so the Test set is the run's own
    assert train_main([DIGITS, "-test", "--quiet", "--output", str(other),
                       "-w", str(output / "weights")]) == 0
    tested = json.loads((other / "test_report.json").read_text())
    assert tested["seed"] == 7 and tested["test_accuracy"] == report["test_accuracy"]
    assert SPLIT_FILE not in capsys.readouterr().err


def test_contradicting_seed_is_one_line(tmp_path, capsys):
    output = _learn(tmp_path)
    capsys.readouterr()
    assert train_main([DIGITS, "-test", "-seed", "8", "--quiet", "--output",
                       str(tmp_path / "t"), "-w", str(output / "weights")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "-seed 8 contradicts" in err[0] and "-seed 7" in err[0]


def test_weights_without_record_warn_that_the_split_depends_on_the_seed(tmp_path, capsys):
    output = _learn(tmp_path)
    (output / "weights" / SPLIT_FILE).unlink()   # as N2D2 writes them
    capsys.readouterr()
    assert train_main([DIGITS, "-test", "-seed", "7", "--quiet", "--output",
                       str(tmp_path / "t"), "-w", str(output / "weights")]) == 0
    err = capsys.readouterr().err
    assert "has no n2prune_split.json" in err
    assert "draws its Test set with the seed, here 7" in err


def test_test_set_depends_on_seed_only_when_a_random_draw_chose_it():
    fixed = Partition(N2D2Random(1))       # MNIST-like: Learn/Validation drawn, Test file-given
    fixed.add(range(10))
    fixed.split(0.8, 0.2, 0.0)
    fixed.add(range(10, 15))
    fixed.split(0.0, 0.0, 1.0)
    assert not fixed.test_depends_on_seed
    drawn = Partition(N2D2Random(1))       # Digits-like: one pool for the three sets
    drawn.add(range(10))
    drawn.split(0.6, 0.2, 0.2)
    assert drawn.test_depends_on_seed
    ordered = Partition(None)              # RandomPartitioning=0
    ordered.add(range(10))
    ordered.split(0.6, 0.2, 0.2)
    assert not ordered.test_depends_on_seed
