"""BatchNorm statistics re-estimated after a mask update (n2prune.prune.recalibration)."""

import pytest
import torch
from torch import nn

import n2prune
from n2prune.cells.batchnorm import BatchNorm
from n2prune.prune.recalibration import RecalibrateBatchNorm, batchnorm_layers, recalibrate


def _batches(count=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(4 + k, 2, 5, 5, generator=generator) * (k + 1) for k in range(count)]


@pytest.mark.parametrize("norm", [lambda: nn.BatchNorm2d(3, momentum=0.1),
                                  lambda: BatchNorm(3, moving_average_momentum=0.1)])
def test_running_statistics_become_the_equal_weight_average_of_the_batches(norm):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3)
    model = nn.Sequential(conv, norm(), nn.Dropout(0.5), nn.ReLU()).eval()
    batches = _batches()
    with torch.no_grad():
        inputs = [conv(x) for x in batches]
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    rng = torch.get_rng_state()
    assert recalibrate(model, batches) == 3
    layer = batchnorm_layers(model)[0]
    means = torch.stack([x.mean((0, 2, 3)) for x in inputs]).mean(0)
    variances = torch.stack([x.var((0, 2, 3), unbiased=True) for x in inputs]).mean(0)
    assert torch.allclose(layer.running_mean, means, atol=1e-5)
    assert torch.allclose(layer.running_var, variances, rtol=1e-4)
    assert not model.training and not any(m.training for m in model.modules())
    assert getattr(layer, "momentum", None) == 0.1 or layer.moving_average_momentum == 0.1
    assert torch.equal(torch.get_rng_state(), rng)  # Dropout stayed off: no draw
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_modes_are_restored_and_batches_may_come_from_a_callable():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Dropout()).train()
    model[2].eval()
    assert recalibrate(model, lambda: iter(_batches(2))) == 2
    assert [m.training for m in model] == [True, True, False]
    with pytest.raises(ValueError, match="gave no input tensor"):
        recalibrate(model, lambda: iter([]))
    with pytest.raises(ValueError, match="batches is empty"):
        RecalibrateBatchNorm(model, [])
    assert recalibrate(nn.Linear(2, 2), _batches()) == 0  # no BatchNorm: nothing to do


def test_the_callback_recalibrates_after_each_mask_update_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 3 * 3, 4))
    cells = n2prune.attach(model, prune_mode="Gradual", threshold=0.9, prune_filler="Magnitude",
                           scope="Global", schedule="Cubic", frequency=20)
    batches = _batches()
    callback = RecalibrateBatchNorm(model, batches)
    pruner = n2prune.Pruner(cells, horizon=200, callbacks=[callback])
    changes = 0
    for _ in range(20):
        model.train()
        model(torch.randn(10, 2, 5, 5))  # a training pass moves the running statistics
        before = callback.calls
        fired = pruner.on_step_end(10)
        assert pruner.masks_changed == fired and callback.calls == before + fired
        if fired:  # the statistics of the newly masked conv's outputs, batch for batch
            changes += 1
            with torch.no_grad():
                means = torch.stack([model[0](x).mean((0, 2, 3)) for x in batches]).mean(0)
            assert torch.allclose(model[1].running_mean, means, atol=1e-5)
            assert model.training  # the loop's mode is left as it was
    assert changes >= 5 and pruner.sparsity() == pytest.approx(0.9, abs=0.01)


class _Interrupted(Exception):
    """Stands for a kill right after a checkpoint was written."""


def test_a_resumed_recalibrating_run_ends_like_the_uninterrupted_one(tmp_path, monkeypatch):
    """n2prune-train --recalibrate-bn draws its batches from the seed and the Pruner's
    stimuli (both in the checkpoint): resuming is still exact."""
    import n2prune.train.report as report
    from n2prune.train.trainer import Trainer, TrainOptions
    from nets import BN_DIGITS
    ini = tmp_path / "bn.ini"
    ini.write_text(BN_DIGITS)

    def train(output, resume=False):
        Trainer(str(ini), TrainOptions(learn_epoch=3, seed=5, threads=1, quiet=True,
                                       recalibrate_bn=2, output=str(output),
                                       resume=resume)).run()

    train(tmp_path / "whole")
    original = report.write_log

    def write_log(*args, **kwargs):
        original(*args, **kwargs)
        raise _Interrupted
    with monkeypatch.context() as patch:
        patch.setattr(report, "write_log", write_log)
        with pytest.raises(_Interrupted):
            train(tmp_path / "cut")  # killed at the first log point, after a recalibration
    train(tmp_path / "cut", resume=True)
    whole, cut = (torch.load(tmp_path / name / "model.pt", weights_only=True)["net"]
                  for name in ("whole", "cut"))
    assert whole.keys() == cut.keys()
    for key, value in whole.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, cut[key]), key
