"""Pruner.on_step_end's shortcut for steps where no schedule is due
(``PruneCell.quiet_plan``): every cell ends each step exactly as calling each cell's ``update``
(what on_step_end did before) leaves it, Gradual steps, other schedules, rewind and a resumed
state included."""

import copy
from typing import Dict, Optional

import pytest
import torch
from torch import nn

import n2prune


def quiet_counts(cells, batch_size):
    plans = [cell.quiet_plan(batch_size) for cell in cells]
    return None if any(plan is None for plan in plans) else plans


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(),
                         nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(),
                         nn.Linear(6, 4))


def _attach_mixed(model: nn.Module, cubic: bool = True) -> None:
    """Staircase cells with different periods, a Static cell, one that saves rewind weights
    and a position-based schedule, on the five layers."""
    gradual = dict(prune_mode="Gradual", prune_filler="IterNonStruct", threshold=0.8,
                   start=0.2, gamma=0.2)
    gradual = dict(gradual, seed=1)  # the same cells in every model built so
    n2prune.attach(model, include=["0"], stepsize=24, **gradual)
    n2prune.attach(model, include=["2"], stepsize=40, **gradual)
    n2prune.attach(model, include=["4"], prune_mode="Static", prune_filler="IterNonStruct",
                   threshold=0.5, seed=2)
    # saved at the 7th step (53 stimuli with _train_both's batches), where no Gradual step
    # is due: the shortcut must decline it
    n2prune.attach(model, include=["6"], stepsize=16, rewind=50, **gradual)
    if cubic:
        n2prune.attach(model, include=["8"], schedule="Cubic", stepsize=1000, **gradual)


def _state(model: nn.Module):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def _assert_same(a, b, when: str) -> None:
    assert a.keys() == b.keys(), when
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs {when}"


def _reference_step(cells, batch: int) -> bool:
    """What on_step_end did for Layer-scope cells before the shortcut: every update."""
    fired = False
    for cell in cells:
        fired = cell.update(batch) or fired
    return fired


def _train_both(steps: int, batch: int = 8, resume_at: int = -1, cubic: bool = True,
                replace: Optional[Dict[int, str]] = None):
    ours, theirs = _model(), _model()
    _attach_mixed(ours, cubic)
    _attach_mixed(theirs, cubic)
    pruner = n2prune.Pruner(ours, horizon=steps * batch)
    reference = list(n2prune.Pruner(theirs, horizon=steps * batch).cells.values())
    shortcuts = 0
    for step in range(steps):
        with torch.no_grad():   # the weights move, so masks recomputed at a step differ
            for a, b in zip(ours.parameters(), theirs.parameters()):
                a.add_(torch.sin(a * (step + 1)) * 0.1)
                b.add_(torch.sin(b * (step + 1)) * 0.1)
        if step == resume_at:   # a checkpoint written by the reference, loaded into ours
            ours.load_state_dict(copy.deepcopy(theirs.state_dict()))
        if replace and step in replace:  # a new tensor, as .to(device) makes them
            name = replace[step]
            for cell, other in zip(pruner.cells.values(), reference):
                setattr(cell, name, getattr(cell, name).clone())
                if name == "increment":   # a new value too, else a stale one goes unseen
                    cell.increment.fill_(4)
                    other.increment.fill_(4)
        size = batch if step % 5 != 3 else batch - 3  # a short batch now and then
        shortcuts += quiet_counts(pruner.cells.values(), size) is not None
        before = [float(cell.current_threshold) for cell in reference]
        fired = pruner.on_step_end(size)
        assert fired == _reference_step(reference, size), f"step {step}"
        moved = any(float(c.current_threshold) != t for c, t in zip(reference, before))
        assert pruner.masks_changed == (fired and moved), f"step {step}"
        _assert_same(_state(ours), _state(theirs), f"after step {step}")
    return pruner, shortcuts


def test_on_step_end_leaves_every_cell_as_each_update_would():
    pruner, shortcuts = _train_both(steps=30)
    assert shortcuts == 0  # the Cubic cell's position-based schedule: every update runs
    pruner, shortcuts = _train_both(steps=30, cubic=False)
    assert pruner.stimuli == 30 * 8 - 6 * 3
    assert 0 < shortcuts < 30  # the shortcut ran on the quiet steps, update on the others
    done = [c for c in pruner.cells.values() if c.prune_mode == "Gradual"]
    assert all(float(c.current_threshold) > c.start for c in done)  # steps fired
    assert pruner.cells["6"].rewind_weight is not None


def test_counters_written_from_outside_are_read_again():
    _train_both(steps=20, resume_at=9, cubic=False)


def test_counter_tensors_replaced_are_the_ones_counted():
    # each before a step where no schedule is due (the 11th, 13th and 17th)
    _train_both(steps=24, cubic=False,
                replace={10: "counter", 12: "position", 16: "increment"})


def test_shortcut_declines_what_it_does_not_know():
    model = _model()
    _attach_mixed(model)
    cells = list(n2prune.Pruner(model, horizon=1000).cells.values())
    for cell in cells:
        cell.update(8)  # the first update sets the staircase increment
    assert quiet_counts(cells[:3], 8) is not None
    assert quiet_counts(cells[:4], 8) is None  # the rewind weights are still to save
    cells[4].increment.fill_(8)  # (only the staircase sets it: as if loaded from another)
    assert quiet_counts(cells[:3] + cells[4:], 8) is None  # a position-based schedule
    cells = cells[:3]
    for bad in (0, -8, 8.0, True):  # update names the problem
        assert quiet_counts(cells, bad) is None

    class Counting(type(cells[0])):
        def update(self, batch_size):
            return super().update(batch_size)

    cells[0].__class__ = Counting   # a subclass's own update is always called
    assert quiet_counts(cells, 8) is None


def test_first_update_of_a_fresh_cell_sets_the_increment():
    model = _model()
    _attach_mixed(model, cubic=False)
    pruner = n2prune.Pruner(model)
    assert quiet_counts(pruner.cells.values(), 8) is None  # increment still 0
    pruner.on_step_end(8)
    assert int(pruner.cells["0"].increment) == 8 and int(pruner.cells["0"].position) == 8


@pytest.mark.parametrize("batch", [3, 8])
def test_quiet_steps_count_and_change_no_mask(batch):
    model = _model()
    n2prune.attach(model, prune_mode="Gradual", prune_filler="IterNonStruct", threshold=0.8,
                   start=0.2, gamma=0.2, stepsize=2 * batch)
    pruner = n2prune.Pruner(model)
    fired, changed = [], []
    for _ in range(8):
        fired.append(pruner.on_step_end(batch))
        changed.append(pruner.masks_changed)
    assert fired == [False, True] * 4  # a step every second batch; the last at the target
    assert changed == [False, True, False, True, False, True, False, False]
    for cell in pruner.cells.values():
        assert int(cell.position) == 8 * batch and int(cell.counter) == 0
        assert float(cell.current_threshold) == pytest.approx(0.8)
