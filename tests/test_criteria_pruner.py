"""Criteria through the Pruner in a user loop: statistics windows, regularisation penalty,
one-shot calibration, and ShrinkBench's strategies by name."""

import math

import pytest
import torch
import torch.nn.functional as F

import n2prune
from n2prune import strategies
from n2prune.prune.pruner import Pruner


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 4 * 4, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 3))


def _data(count: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen))
            for _ in range(count)]


def _loop(model, pruner, data, epochs: int = 1, penalty: bool = False):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner.on_train_begin()
    for epoch in range(epochs):
        pruner.on_epoch_begin(epoch)
        for step, (x, y) in enumerate(data):
            pruner.on_step_begin(step)
            loss = F.cross_entropy(model(x), y)
            if penalty:
                loss = loss + pruner.penalty()
            optimizer.zero_grad()
            loss.backward()
            pruner.on_before_optimizer_step()
            optimizer.step()
            pruner.on_step_end(len(x))
        pruner.on_epoch_end()
    pruner.on_train_end()


@pytest.mark.parametrize("name", ["Snip", "SnipMomentum", "Taylor", "ActivationMagnitude",
                                  "MagAct", "Magnitude+Snip"])
def test_gradual_data_driven_pruning_in_a_user_loop_reaches_the_target(name):
    model = _model()
    cells = n2prune.attach(model, prune_filler=name, threshold=0.8, schedule="Cubic", start=0.0,
                           end=6 * 8, frequency=2 * 8, calibration_batches=2)
    pruner = Pruner(cells, epoch_size=8 * 8, epochs=2)
    assert pruner.collector is not None and pruner.collector.batches == 2
    _loop(model, pruner, _data(8), epochs=2)
    for cell in cells.values():
        assert cell.get_current_threshold() == pytest.approx(0.8)
        zeros = int((cell.mask == 0).sum())
        if "+" in name:  # the union prunes at least the target
            assert zeros >= math.ceil(0.8 * cell.mask.numel())
        else:
            assert zeros == math.ceil(0.8 * cell.mask.numel())
    assert not pruner.collector._handles  # hooks removed at the end of training


def test_window_restarts_after_a_schedule_step_and_recomputes_when_complete():
    model = _model()
    cells = n2prune.attach(model, prune_filler="Snip", threshold=0.5, schedule="OneShot",
                           end=3 * 8, calibration_batches=2)
    pruner = Pruner(cells, epoch_size=64, epochs=1)
    data = _data(8)
    _loop(model, pruner, data[:2])  # window of 2 batches complete; OneShot not yet
    assert {float(c.stats["grad_count"]) for c in cells.values()} == {2.0}
    assert all(cell.sparsity() == 0.0 for cell in cells.values())
    _loop(model, pruner, data[2:4])  # batch 3 fires at 24 stimuli: a new window opens
    assert all(cell.sparsity() == 0.5 for cell in cells.values())
    assert {float(c.stats["grad_count"]) for c in cells.values()} == {1.0}


def test_penalty_is_the_sum_of_the_cells_scheduled_penalties():
    model = _model()
    cells = n2prune.attach(model, prune_filler="Magnitude", pattern="Channel", threshold=0.0,
                           prune_mode="Static", regularization="GroupLasso",
                           regularization_strength=0.1, regularization_end=16)
    pruner = Pruner(cells)
    assert float(pruner.penalty().detach()) == 0.0  # the ramp starts at 0 stimuli
    pruner.stimuli = 8
    expected = sum(0.05 * float(layer.weight.detach().reshape(layer.weight.shape[0], -1)
                                .norm(dim=1).sum()) for layer in pruner.layers.values())
    assert float(pruner.penalty().detach()) == pytest.approx(expected, rel=1e-5)
    assert float(Pruner(n2prune.attach(_model(), prune_filler="Magnitude")).penalty()) == 0.0


def test_group_lasso_drives_channels_towards_zero():
    norms = {}
    for strength in (0.0, 0.5):
        model = _model()
        cells = n2prune.attach(model, include=["0"], prune_filler="L2Norm", pattern="Channel",
                               prune_mode="Static", threshold=0.0, regularization="GroupLasso",
                               regularization_strength=strength)
        _loop(model, Pruner(cells), _data(8), epochs=3, penalty=True)
        norms[strength] = float(model[0].weight.detach().flatten(1).norm(dim=1).mean())
    assert norms[0.5] < 0.5 * norms[0.0]


def test_one_shot_calibration_through_the_pruner_ranks_globally():
    model = _model()
    cells = n2prune.attach(model, prune_mode="Static", threshold=0.9, prune_filler="Snip",
                           scope="Global")
    pruner = Pruner(cells, calibration_batches=3)
    assert pruner.sparsity() == 0.0
    assert pruner.calibrate(model, _data(5), F.cross_entropy) == 3
    assert pruner.statistics()["total"]["pruned"] == math.ceil(
        0.9 * sum(cell.mask.numel() for cell in cells.values()))


def test_strategies_prune_to_shrinkbench_compression():
    model = _model()
    total = sum(p.numel() for p in model.parameters())
    pruner = strategies.GlobalMagWeight(model, compression=4)
    remaining = total - pruner.statistics()["total"]["pruned"]
    assert total / remaining == pytest.approx(4, rel=0.01)
    assert "5" not in pruner.cells  # the classifier is left alone, as in ShrinkBench
    with pytest.raises(ValueError, match="criterion 'MagGrad' needs data"):
        strategies.LayerMagGrad(_model(), compression=2)
    with pytest.raises(ValueError, match="compression=0.5 must be a number >= 1"):
        strategies.LayerMagWeight(_model(), compression=0.5)


@pytest.mark.parametrize("name", strategies.STRATEGIES.names())
def test_every_strategy_is_one_call(name):
    model = _model()
    pruner = strategies.prune(model, 2, name, data=_data(2), seed=0)
    strategy = strategies.STRATEGIES.get(name)
    for cell in pruner.cells.values():
        assert (cell.prune_filler, cell.scope, str(cell.pattern_rule)) == \
            (strategy.criterion, strategy.scope, strategy.pattern)
    if strategy.pattern == "Channel":
        for cell in pruner.cells.values():
            rows = cell.mask.reshape(cell.mask.shape[0], -1)
            assert int((rows.sum(1) == 0).sum()) == math.ceil(0.5 * rows.shape[0])
    else:
        total = sum(p.numel() for p in model.parameters())
        assert total / (total - pruner.statistics()["total"]["pruned"]) == \
            pytest.approx(2, rel=0.01)
