"""Schedules: Cubic's exact values, OneShot, Iterative, rewinding, windows in stimuli/epochs."""

import numpy as np
import pytest
import torch

from n2prune import ConfigError, PruneCell, load_network
from n2prune.cells import Fc
from n2prune.prune.schedules import SCHEDULES, cubic
from nets import FC8_MAGNITUDE  # one Fc of 8 inputs, Magnitude to 0.5; {extra} at line 13


def fc_with(schedule, size=(10, 10), **kwargs):
    fc = Fc(size[1], size[0], no_bias=True)
    with torch.no_grad():
        fc.weight.copy_(torch.arange(1.0, size[0] * size[1] + 1).reshape(size))
    fc.quantizer = PruneCell(prune_filler="Magnitude", schedule=schedule, **kwargs)
    return fc


def test_cubic_gives_zhu_and_gupta_values():
    assert [round(cubic(t, 0, 100, 0.0, 0.9), 7) for t in (25, 50, 75)] == \
        [0.5203125, 0.7875, 0.8859375]
    fc = fc_with("Cubic", threshold=0.9, start=0.0, end=1000)
    q = fc.quantizer
    assert q.prune_mode == "Gradual" and q.get_current_threshold() == 0.0
    seen = []
    for _ in range(4):
        assert q.update(250)
        seen.append(q.get_current_threshold())
    assert seen == [float(np.float32(v)) for v in (0.5203125, 0.7875, 0.8859375, 0.9)]
    assert int((q.mask == 0).sum()) == 90 and q.done


def test_cubic_steps_every_frequency_stimuli_from_begin():
    fc = fc_with("Cubic", threshold=0.8, start=0.0, begin=100, end=500, frequency=200)
    q = fc.quantizer
    values = []
    for _ in range(6):
        q.update(100)
        values.append(q.get_current_threshold())
    # positions 100..600: steps at 100 (0), 300 (half way), 500 (end)
    assert values == [0.0, 0.0, float(np.float32(0.8 - 0.8 * 0.125)),
                      float(np.float32(0.8 - 0.8 * 0.125)), float(np.float32(0.8)),
                      float(np.float32(0.8))]


def test_default_window_ends_at_three_quarters_of_the_horizon():
    fc = fc_with("Cubic", threshold=0.5, start=0.0)
    q = fc.quantizer
    with pytest.raises(ValueError, match="horizon"):
        q.update(10)
    q.horizon = 400  # the trainer or Pruner sets it: stimuli in the run
    q.update(290)
    assert not q.done
    q.update(10)
    assert q.done and q.get_current_threshold() == float(np.float32(0.5))


def test_window_in_epochs_uses_the_epoch_size():
    fc = fc_with("OneShot", threshold=0.5, end_epochs=2)
    q = fc.quantizer
    with pytest.raises(ValueError, match="epoch size"):
        q.update(1)
    q.epoch_size = 50
    assert not q.update(98) and q.sparsity() == 0.0
    assert q.update(2) and q.sparsity() == 0.5


def test_oneshot_prunes_once_at_the_end_of_the_window():
    fc = fc_with("OneShot", threshold=0.25, end=100)
    q = fc.quantizer
    assert q.get_current_threshold() == 0.0 and q.sparsity() == 0.0
    assert [q.update(50) for _ in range(3)] == [False, True, False]
    assert q.sparsity() == 0.25


def test_iterative_rounds_prune_the_same_share_of_what_is_left():
    fc = fc_with("Iterative", threshold=0.875, end=300, steps=3)
    q = fc.quantizer
    fractions = []
    for _ in range(3):
        q.update(100)
        fractions.append(q.get_current_threshold())
    assert fractions == [float(np.float32(v)) for v in (0.5, 0.75, 0.875)]


def test_rewinding_restores_the_saved_weights_after_each_step_and_keeps_masks():
    fc = fc_with("Iterative", threshold=0.75, end=200, steps=2, rewind=0)
    q = fc.quantizer
    saved = fc.weight.detach().clone()
    assert torch.equal(q.rewind_weight, saved)
    with torch.no_grad():
        fc.weight.mul_(-2.0)  # "training" moved the weights
    q.update(100)  # step 1: 50 % pruned, weights rewound
    assert torch.equal(fc.weight.detach(), saved) and q.sparsity() == 0.5
    mask = q.mask.clone()
    with torch.no_grad():
        fc.weight.add_(1.0)
    q.update(50)  # no step: no rewind
    assert torch.equal(fc.weight.detach(), saved + 1.0) and torch.equal(q.mask, mask)
    other = fc_with("Iterative", threshold=0.75, end=200, steps=2, rewind=0)
    other.load_state_dict(fc.state_dict())
    assert torch.equal(other.quantizer.rewind_weight, saved)


def test_rewind_point_after_the_start_saves_weights_when_reached():
    fc = fc_with("Cubic", threshold=0.5, start=0.0, end=400, rewind=100)
    q = fc.quantizer
    assert q.rewind_weight is None
    q.update(50)
    assert q.rewind_weight is None
    with torch.no_grad():
        fc.weight.mul_(3.0)
    q.update(50)
    assert torch.equal(q.rewind_weight, fc.weight.detach())


@pytest.mark.parametrize("kwargs,words", [
    ({"schedule": "Cubic", "prune_mode": "Static"}, ["needs prune_mode='Gradual'"]),
    ({"schedule": "Cubc"}, ["did you mean 'Cubic'"]),
    ({"schedule": "Cubic", "end": 10, "end_epochs": 1}, ["not both"]),
    ({"schedule": "Iterative", "steps": 0}, ["steps=0", "[1, inf)"]),
    ({"end": 10}, ["end is a parameter of schedule"]),
])
def test_bad_schedule_arguments_are_explained(kwargs, words):
    with pytest.raises((ValueError, TypeError)) as info:
        PruneCell(prune_filler="Magnitude", **kwargs)
    for word in words:
        assert word in str(info.value)


def test_schedule_alone_from_ini_prunes_gradually(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningSchedule=Cubic\n"
                                               "QWeight.StartThreshold=0"))
    net = load_network(str(path))
    q = net.cells["fc"].quantizer
    q.horizon = 100
    assert q.prune_mode == "Gradual" and q.sparsity() == 0.0
    while not q.done:
        q.update(5)
    assert int(q.position) == 75 and q.sparsity() == 0.5


def test_schedule_keys_errors_are_located(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningSchedule=OneShot\n"
                                               "QWeight.PruningEnd=-3"))
    with pytest.raises(ConfigError, match=r"net.ini:14: \[fc\] QWeight.PruningEnd.*end=-3"):
        load_network(str(path))


def test_every_schedule_stays_in_its_range_and_reaches_the_target():
    for name in SCHEDULES:
        if SCHEDULES.get(name).staircase:
            continue
        fc = fc_with(name, threshold=0.6, start=0.1, end=1000)
        q = fc.quantizer
        values = []
        for _ in range(12):
            q.update(100)
            values.append(q.get_current_threshold())
        assert all(0.0 <= v <= np.float32(0.6) for v in values), name
        assert values == sorted(values) and q.done, name


def test_summary_shows_pattern_scope_and_schedule_per_cell(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningSchedule=Cubic\n"
                                               "QWeight.PruningEnd=600\n"
                                               "QWeight.PruningScope=Global\n"
                                               "QWeight.PruningMinKeep=0.1\n"
                                               "QWeight.PruningPattern=Channel\n"
                                               "QWeight.PruningRewind=0"))
    net = load_network(str(path))
    row = next(line for line in net.summary() if line.startswith("fc "))
    assert "Gradual/Magnitude t=0.5 pattern=Channel scope=Global(min_keep=0.1) " \
           "schedule=Cubic(end=600 rewind=0) now=" in row
