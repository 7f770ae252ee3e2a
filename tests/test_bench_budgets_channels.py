"""tools/bench_budgets_channels.py's --dense reference row: the unpruned network trained on
each seed by the same loop, keeping all of its MACs, paired with the sensitivity budget."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import bench_budgets_channels as bench  # noqa: E402


def _tiny_digits(environ, seed, scratch):
    """Random 16x16 'digits' (a few batches) instead of mnist-10k: the loop, not the data."""
    generator = torch.Generator().manual_seed(seed)
    sets = {}
    for name, count in (("Learn", 128), ("Validation", 32), ("Test", 40)):
        sets[name] = (torch.randn(count, 1, bench.SIZE, bench.SIZE, generator=generator),
                      torch.randint(0, 10, (count,), generator=generator))
    return sets


def test_dense_row_keeps_all_macs_and_is_paired(tmp_path, monkeypatch, capsys):
    (tmp_path / "train-images-idx3-ubyte").touch()
    monkeypatch.setattr(bench, "digits", _tiny_digits)
    assert bench.main(["--dense", "--epochs", "2", "--seeds", "1", "2", "--width", "4",
                       "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "seed 1 dense        " in out and "seed 2 dense        " in out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    dense = next(line for line in rows if line.startswith("| dense (no pruning) |"))
    assert " 100.0 % (max) |" in dense
    assert " ± " in dense and " ± " in next(r for r in rows if r.startswith("| uniform"))
    sensitivity = next(line for line in rows if line.startswith("| sensitivity budget |"))
    assert sensitivity.endswith("| – |") and "100.0 %" not in sensitivity


def test_without_dense_there_is_no_dense_row(tmp_path, monkeypatch, capsys):
    (tmp_path / "train-images-idx3-ubyte").touch()
    monkeypatch.setattr(bench, "digits", _tiny_digits)
    assert bench.main(["--epochs", "2", "--seeds", "1", "--width", "4",
                       "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dense" not in out
    assert any(line.startswith("| uniform channel targets |") for line in out.splitlines())


def test_analyse_later_prunes_from_that_epoch(tmp_path, monkeypatch, capsys):
    (tmp_path / "train-images-idx3-ubyte").touch()
    monkeypatch.setattr(bench, "digits", _tiny_digits)
    batches_seen = []      # training batches before the analysis: 2 per epoch of 128 images
    original = bench.n2prune.sensitivity

    def spy(model, *args, **kwargs):
        batches_seen.append(int(model.bn.num_batches_tracked))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(bench.n2prune, "sensitivity", spy)
    assert bench.main(["--epochs", "3", "--analyse", "2", "--seeds", "1", "--width", "4",
                       "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert batches_seen == [4] and "pruning from epoch 2" in out and "seed 1 budget:" in out
    uniform = next(line for line in out.splitlines() if line.startswith("seed 1 uniform"))
    assert "MACs kept 100.00 %" not in uniform


def test_analyse_after_the_pruning_horizon_is_refused(tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte").touch()
    with pytest.raises(SystemExit) as stop:
        bench.main(["--epochs", "2", "--analyse", "2", "--data", str(tmp_path)])
    assert stop.value.code == 2
    assert "--analyse 2: must be an epoch from 1 to before the end of pruning (1.5 epochs" \
        in capsys.readouterr().err
