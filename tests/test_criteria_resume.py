"""--resume is bit-exact with data-driven criteria: a run interrupted after a log point and
resumed ends with exactly the masks and weights of the uninterrupted run, with the
calibration window (batches gathered, thresholds it was opened at) and the Pruner's position
restored from the checkpoint."""

from pathlib import Path

import pytest
import torch

import n2prune.train.report as report
from n2prune.train.checkpoint import RUN_KEYS, load_checkpoint
from n2prune.train.trainer import TrainOptions, Trainer

ROOT = Path(__file__).resolve().parent.parent


class _Interrupted(Exception):
    """Stands for a kill right after a checkpoint was written."""


def _network(tmp_path: Path, filler: str, batches: int, extra: str = "") -> Path:
    text = (ROOT / "networks" / "digits.ini").read_text()
    text = text.replace("QWeight.PruningFiller=IterNonStruct",
                        f"QWeight.PruningFiller={filler}\n"
                        f"QWeight.CalibrationBatches={batches}\n{extra}")
    ini = tmp_path / f"digits-{filler}.ini"
    ini.write_text(text)
    return ini


def _train(ini: Path, output: Path, resume: bool = False) -> None:
    options = TrainOptions(learn_epoch=6, seed=5, threads=1, quiet=True, output=str(output),
                           resume=resume)
    Trainer(str(ini), options).run()


def _interrupted_after(ini: Path, output: Path, log_points: int, monkeypatch) -> None:
    original, calls = report.write_log, []

    def write_log(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        if len(calls) == log_points:
            raise _Interrupted
    with monkeypatch.context() as patch:
        patch.setattr(report, "write_log", write_log)
        with pytest.raises(_Interrupted):
            _train(ini, output)


# The threshold moves at each of the first 3 epochs' ends (40 batches each) and opens a window:
# 60 batches: the window opened then is still open at the checkpoint of epoch 4;
# 7 ends every window between log points. SnipMomentum's masks do not move between threshold
# steps (a pruned weight's score only decays): its regularisation ramp, which reads the
# Pruner's position, is what a resume must continue.
RAMP = "QWeight.Regularization=GroupLasso\nQWeight.RegularizationStrength=1e-3\n" \
       "QWeight.RegularizationEnd=20000"


@pytest.mark.parametrize("filler,batches,extra", [
    ("ActivationMagnitude", 60, ""), ("Snip", 7, ""), ("SnipMomentum", 60, RAMP)])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, filler, batches,
                                                      extra):
    ini = _network(tmp_path, filler, batches, extra)
    _train(ini, tmp_path / "whole")
    _interrupted_after(ini, tmp_path / "cut", 4, monkeypatch)
    _train(ini, tmp_path / "cut", resume=True)
    # the last log point's state (model.pt holds the best one's, maybe from before the cut)
    whole, resumed = (load_checkpoint(tmp_path / run / "checkpoint.pt", RUN_KEYS)
                      for run in ("whole", "cut"))
    assert whole["pruner"] == resumed["pruner"]
    assert whole["net"].keys() == resumed["net"].keys()
    for key, value in whole["net"].items():
        assert torch.equal(value, resumed["net"][key]), key
    masks = [key for key in whole["net"] if key.endswith("quantizer.mask")]
    assert len(masks) == 4
    assert all(0 < float(whole["net"][k].float().mean()) < 1 for k in masks)


@pytest.mark.parametrize("change,words", [
    (lambda c: c.update(format=2), "checkpoint format 2, this n2prune reads format 3"),
    (lambda c: c.pop("pruner"), "no 'pruner' entry"),
    (lambda c: c["pruner"]["collector"].update(seen=99), "pruner: collector: seen=99 is "
                                                         "outside 0..7"),
    (lambda c: c["pruner"]["collector"].update(batches=3), "gathers 3 batches, this one 7"),
    (lambda c: c["pruner"]["collector"]["thresholds"].pop("fc2"), "its thresholds are for"),
    (lambda c: c["pruner"].update(collector=None), "it gathers no calibration statistics"),
    (lambda c: c["pruner"].update(stimuli=-1), "'stimuli' is missing or not an integer"),
])
def test_a_checkpoint_with_a_bad_pruner_state_is_one_line(tmp_path, capsys, change, words):
    from n2prune.cli import train_main
    from n2prune.train.checkpoint import save_atomic
    ini = _network(tmp_path, "Snip", 7)
    argv = [str(ini), "-learn-epoch", "1", "-seed", "3", "--threads", "1", "--quiet",
            "--output", str(tmp_path / "run")]
    assert train_main(argv) == 0
    path = tmp_path / "run" / "checkpoint.pt"
    checkpoint = load_checkpoint(path, RUN_KEYS)
    change(checkpoint)
    save_atomic(checkpoint, path)
    capsys.readouterr()
    assert train_main(argv + ["--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and words in err[0], err


def test_a_pruner_state_continues_a_window_in_a_users_loop():
    """Pruner.state_dict() + the model's state_dict resume a hand-written loop exactly."""
    from n2prune import Pruner, attach

    def model_and_pruner():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(),
                                    torch.nn.Linear(5, 3))
        attach(model, prune_mode="Static", prune_filler="ActivationMagnitude", threshold=0.5)
        return model, Pruner(model, calibration_batches=3)

    def steps(model, pruner, count, first):
        for step in range(first, first + count):
            x = torch.randn(4, 6, generator=torch.Generator().manual_seed(step))
            pruner.on_step_begin(step)
            model.zero_grad()
            model(x).square().sum().backward()
            pruner.on_before_optimizer_step()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.01 * p.grad
            pruner.on_step_end(4)

    model, pruner = model_and_pruner()
    steps(model, pruner, 5, 0)
    twin, twin_pruner = model_and_pruner()
    twin.load_state_dict(model.state_dict())
    state = pruner.state_dict()
    assert state["stimuli"] == 20 and state["collector"]["seen"] == 3
    twin_pruner.load_state_dict(state)
    steps(model, pruner, 4, 5)
    steps(twin, twin_pruner, 4, 5)
    for (key, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), key
