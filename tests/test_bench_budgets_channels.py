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


def test_coupled_prunes_the_residual_streams_too():
    units = bench.pruned_units(4, coupled=True)
    assert bench.streams_of(units)["stream0"] == ["stem", "blocks.0.conv2", "blocks.1.conv2"]
    assert bench.streams_of(units)["stream3"] == ["blocks.6.conv2", "blocks.6.skip.0",
                                                  "blocks.7.conv2"]
    model = bench.ResNet18(4).eval()
    bench.attach_units(model, units, {name: 0.5 for name in units}, prune_mode="Static",
                       **bench.PRUNE)
    small = bench.compact(model, bench.EXAMPLE)
    assert small.stem.out_channels == 2 and small.blocks[1].conv2.out_channels == 2
    assert small.blocks[0].conv1.out_channels == 2 and small.fc.in_features == 16
    x = torch.randn(3, 1, bench.SIZE, bench.SIZE)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)


def test_coupled_run_analyses_and_budgets_the_streams(tmp_path, monkeypatch, capsys):
    (tmp_path / "train-images-idx3-ubyte").touch()
    monkeypatch.setattr(bench, "digits", _tiny_digits)
    analysed = []
    original = bench.n2prune.sensitivity

    def spy(model, *args, **kwargs):
        analysed.append(sorted(kwargs["units"]))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(bench.n2prune, "sensitivity", spy)
    assert bench.main(["--coupled", "--epochs", "2", "--seeds", "1", "--width", "4",
                       "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert analysed == [["stream0", "stream1", "stream2", "stream3"]]
    budget = next(line for line in out.splitlines() if line.startswith("  seed 1 budget:"))
    assert "stream0 " in budget and "stream3 " in budget
    assert "conv1s and residual streams pruned" in out and "12 units x" in out
