"""tools/bench_budgets_channels.py's --dense reference row: the unpruned network trained on
each seed by the same loop, keeping all of its MACs, paired with the sensitivity budget."""

import sys
from pathlib import Path

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
