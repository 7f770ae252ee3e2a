"""tools/bench_budgets_channels.py's --dense reference row: the unpruned network trained on
each seed by the same loop, keeping all of its MACs, paired with the sensitivity budget."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import bench_budgets_channels as bench  # noqa: E402
import digit_tasks  # noqa: E402


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
    monkeypatch.setattr(digit_tasks, "digits", _tiny_digits)
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
    monkeypatch.setattr(digit_tasks, "digits", _tiny_digits)
    assert bench.main(["--epochs", "2", "--seeds", "1", "--width", "4",
                       "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dense" not in out
    assert any(line.startswith("| uniform channel targets |") for line in out.splitlines())


def test_analyse_later_prunes_from_that_epoch(tmp_path, monkeypatch, capsys):
    (tmp_path / "train-images-idx3-ubyte").touch()
    monkeypatch.setattr(digit_tasks, "digits", _tiny_digits)
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
    monkeypatch.setattr(digit_tasks, "digits", _tiny_digits)
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


def _flat_digits(count, value, seed):
    """``count`` 28x28 'digits' whose ink (the central 20x20) is all ``value``."""
    images = torch.zeros(count, 1, 28, 28)
    images[:, :, 4:24, 4:24] = value
    return images, torch.randint(0, 10, (count,), generator=torch.Generator().manual_seed(seed))


def test_cluttered_task_is_deterministic_shaped_and_test_clutter_is_test_only():
    sets = {"Learn": _flat_digits(30, 0.25, 1), "Validation": _flat_digits(10, 0.5, 2),
            "Test": _flat_digits(20, 1.0, 3)}
    made = digit_tasks.cluttered(sets, seed=7, canvas=36)
    again = digit_tasks.cluttered(sets, seed=7, canvas=36)
    other = digit_tasks.cluttered(sets, seed=8, canvas=36)
    for name, (x, labels) in made.items():
        assert x.shape == (len(sets[name][0]), 1, 36, 36)
        assert torch.equal(labels, sets[name][1]) and torch.equal(x, again[name][0])
        assert not torch.equal(x, other[name][0])
        digit = (x == x.max(-1).values.max(-1).values[..., None, None]).flatten(1).sum(1)
        assert (digit >= 400).all()          # the whole 20x20 digit is on every canvas
    # pixel values tell the sources apart: Learn 0.25, Validation 0.5, Test 1.0
    assert set(made["Test"][0].unique().tolist()) == {0.0, 1.0}
    assert set(made["Validation"][0].unique().tolist()) == {0.0, 0.25, 0.5}
    assert set(made["Learn"][0].unique().tolist()) == {0.0, 0.25}
    learn = made["Learn"][0].flatten(1)
    assert ((learn == 0.25).sum(1) > 400).all()    # clutter outside the digit on every canvas


def test_cluttered_images_never_carry_pieces_of_themselves():
    images = torch.zeros(4, 1, 28, 28)
    for i in range(4):
        images[i, :, 4:24, 4:24] = i + 1.0
    x = digit_tasks.clutter(images, images, torch.Generator().manual_seed(0), canvas=40,
                                pieces=8, piece=6, skip_self=True)
    for i in range(4):
        rows, cols = (x[i, 0] == i + 1.0).nonzero().unbind(1)
        # its own value only inside its 20x20 digit (others' pieces may cover part of it)
        assert rows.max() - rows.min() < 20 and cols.max() - cols.min() < 20
        assert int((x[i] > 0).sum()) > 400      # clutter of the others outside it
    assert int((x[3] == 4.0).sum()) == 400      # the brightest digit whole
    # the same draw without skip_self does put pieces of an image on itself (the test bites)
    same = digit_tasks.clutter(images, images, torch.Generator().manual_seed(0),
                                   canvas=40, pieces=8, piece=6)
    spans = [(same[i, 0] == i + 1.0).nonzero() for i in range(4)]
    assert any(int((s.max(0).values - s.min(0).values).max()) >= 20 for s in spans)


def test_cluttered_run_trains_on_the_canvas(tmp_path, monkeypatch, capsys):
    (tmp_path / "train-images-idx3-ubyte").touch()
    seen = []

    def tiny_mnist(environ, seed, scratch):
        generator = torch.Generator().manual_seed(seed)
        return {name: (torch.rand(count, 1, 28, 28, generator=generator),
                       torch.randint(0, 10, (count,), generator=generator))
                for name, count in (("Learn", 128), ("Validation", 32), ("Test", 40))}

    original = bench.run

    def spy(method, keep, uniform, seed, epochs, width, sets, *args):
        seen.append(tuple(sets["Test"][0].shape))
        return original(method, keep, uniform, seed, epochs, width, sets, *args)

    monkeypatch.setattr(digit_tasks, "mnist", tiny_mnist)
    monkeypatch.setattr(bench, "run", spy)
    assert bench.main(["--task", "cluttered", "--canvas", "32", "--epochs", "2", "--seeds", "1",
                       "--width", "4", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert seen == [(40, 1, 32, 32)] * 2
    assert "cluttered MNIST 32x32, 6 pieces of 6x6" in out


def test_recalibrate_while_retraining_scores_the_analysis_after_batchnorm(tmp_path, monkeypatch,
                                                                           capsys):
    (tmp_path / "train-images-idx3-ubyte").touch()
    monkeypatch.setattr(digit_tasks, "digits", _tiny_digits)
    calls = []
    original = bench.recalibrate

    def spy(model, batches):
        calls.append(len(batches))
        return original(model, batches)

    monkeypatch.setattr(bench, "recalibrate", spy)
    assert bench.main(["--epochs", "2", "--seeds", "1", "--width", "4", "--data", str(tmp_path)
                       ]) == 0
    assert calls == []
    plain = capsys.readouterr().out
    assert bench.main(["--recalibrate", "2", "--epochs", "2", "--seeds", "1", "--width", "4",
                       "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # every analysis point (8 cells x 10 sparsities, and the dense score) after re-estimation
    assert len(calls) >= 8 * len(bench.DEFAULT_SPARSITIES) and set(calls) == {2}
    assert "analysis points after BatchNorm re-estimated on 2 batches" in out
    uniform = [line for line in out.splitlines() if line.startswith("seed 1 uniform")]
    assert uniform == [line for line in plain.splitlines() if line.startswith("seed 1 uniform")]
