"""Invariants of every registered criterion (a new one is tested here for free) beyond the
Static ones of test_criteria.py: Gradual pruning in a user loop reaches the target exactly in
Layer and Global scope, ConvTranspose layers, combinations bound the target from both sides,
and a loop split and resumed from ``Pruner.state_dict()`` ends exactly like the whole loop."""


import pytest
import torch
import torch.nn.functional as F
from torch import nn

import n2prune
from n2prune.prune import CRITERIA
from n2prune.prune.fillers import zeros_target

TARGET = 0.75
# criteria that rank scores along schedules (not the one-shot ones that rewrite the weights:
# SparseGPT is Static, Layer scope, Linear/Conv2d only, and tested in test_sparsegpt*.py)
RANKING = [n for n in CRITERIA.names() if CRITERIA.get(n).reconstruct is None]
DATA_DRIVEN = [n for n in RANKING if CRITERIA.get(n).needs]


def _pattern(name: str) -> str:
    return "Channel" if CRITERIA.get(name).level == "channel" else "Unstructured"


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 8),
                         nn.ReLU(), nn.Linear(8, 3))


def _data(count: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 2, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen))
            for _ in range(count)]


def _steps(model, pruner, optimizer, data, first: int = 0) -> None:
    for step, (x, y) in enumerate(data, start=first):
        pruner.on_step_begin(step)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        pruner.on_before_optimizer_step()
        optimizer.step()
        pruner.on_step_end(len(x))


def _gradual(name: str, scope: str, seed: int = 0):
    """A model, its cells and Pruner pruning with ``name`` from 0 to TARGET over 6 batches
    of 8 (a step every 3), statistics from windows of 2 batches (which end between steps)."""
    model = _model(seed)
    cells = n2prune.attach(model, prune_filler=name, pattern=_pattern(name), scope=scope,
                           threshold=TARGET, schedule="Cubic", start=0.0, end=6 * 8,
                           frequency=3 * 8, seed=seed,
                           **({"calibration_batches": 2} if CRITERIA.get(name).needs else {}))
    pruner = n2prune.Pruner(cells, epoch_size=8 * 8, epochs=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, cells, pruner, optimizer


def _groups(mask: torch.Tensor, pattern: str) -> torch.Tensor:
    """One row per group: output channels for Channel, single weights otherwise."""
    return mask.reshape(mask.shape[0], -1) if pattern == "Channel" else mask.reshape(-1, 1)


def _layer_target(cell, size: int) -> int:
    """Groups a cell prunes in Layer scope: ceil(t·groups), or per output row for group Row
    (Wanda's default)."""
    if cell.group == "Row":
        rows = cell.mask.shape[0]
        return rows * zeros_target(TARGET, size // rows)
    return zeros_target(TARGET, size)


def _pruned_groups(cell, pattern: str) -> int:
    return int((_groups(cell.mask, pattern).sum(dim=1) == 0).sum())


@pytest.mark.parametrize("scope", ["Layer", "Global"])
@pytest.mark.parametrize("name", RANKING)
def test_gradual_pruning_in_a_user_loop_reaches_the_target_exactly(name, scope):
    model, cells, pruner, optimizer = _gradual(name, scope)
    _steps(model, pruner, optimizer, _data(8))
    pattern = _pattern(name)
    sizes = [_groups(cell.mask, pattern).shape[0] for cell in cells.values()]
    pruned = [_pruned_groups(cell, pattern) for cell in cells.values()]
    for cell in cells.values():
        assert cell.get_current_threshold() == pytest.approx(TARGET)
        groups = _groups(cell.mask, pattern)
        assert bool(((groups == 0) | (groups == 1)).all())
        assert bool((groups.amin(dim=1) == groups.amax(dim=1)).all())  # whole groups
    if scope == "Layer":
        assert pruned == [_layer_target(cell, size) for cell, size in zip(cells.values(), sizes)]
    else:
        assert sum(pruned) == zeros_target(TARGET, sum(sizes))


@pytest.mark.parametrize("name", RANKING)
def test_every_criterion_prunes_a_transposed_convolution(name):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(3, 4, 2)  # weight [3 in, 4 out, 2, 2]
    model = nn.Sequential(layer, nn.ReLU())
    n2prune.attach(model, prune_mode="Static", prune_filler=name, pattern=_pattern(name),
                   threshold=0.5, seed=0)
    pruner = n2prune.Pruner(model, calibration_batches=2)
    x = torch.randn(2, 6, 3, 3, 3)
    pruner.calibrate(model, [(batch, None) for batch in x], lambda out, _: out.square().mean())
    mask = layer.quantizer.mask
    assert mask.shape == layer.weight.shape
    if _pattern(name) == "Channel":  # output channels are the weight's dim 1
        per_output = mask.transpose(0, 1).reshape(4, -1)
        assert bool((per_output.amin(dim=1) == per_output.amax(dim=1)).all())
        assert int((per_output.sum(dim=1) == 0).sum()) == 2
    else:
        assert int((mask == 0).sum()) == mask.numel() // 2


def _partner(name: str) -> str:
    """A second criterion to combine ``name`` with (another one; Channel-compatible)."""
    return "L2Norm" if name == "Magnitude" else "Magnitude"


def _static(filler, scope: str, pattern: str, combine: str = "Any"):
    model = _model(2)
    names = [filler] if isinstance(filler, str) else filler
    extra = {"calibration_batches": 2} if any(CRITERIA.get(n).needs for n in names) else {}
    cells = n2prune.attach(model, prune_mode="Static", prune_filler=filler, combine=combine,
                           pattern=pattern, scope=scope, threshold=0.5, seed=0, group="Layer",
                           **extra)  # Layer: Wanda alone ranks per row by default
    pruner = n2prune.Pruner(cells)
    pruner.calibrate(model, _data(2), F.cross_entropy)
    return model, [_groups(cell.mask, pattern).amax(dim=1) == 0 for cell in cells.values()]


@pytest.mark.parametrize("scope", ["Layer", "Global"])
@pytest.mark.parametrize("name", RANKING)
def test_combinations_prune_the_union_or_the_intersection(name, scope):
    pattern, partner = _pattern(name), _partner(name)
    alone = [_static(n, scope, pattern) for n in (name, partner)]  # models kept alive
    _, any_ = _static([name, partner], scope, pattern, "Any")
    _, all_ = _static([name, partner], scope, pattern, "All")
    for index, (a, b) in enumerate(zip(alone[0][1], alone[1][1])):
        assert torch.equal(any_[index], a | b) and torch.equal(all_[index], a & b)
    sizes = [p.numel() for p in any_]
    counts = [(int(u.sum()), int(i.sum())) for u, i in zip(any_, all_)]
    if scope == "Layer":
        for (union, both), size in zip(counts, sizes):
            assert both <= zeros_target(0.5, size) <= union
    else:
        total = zeros_target(0.5, sum(sizes))
        assert sum(c[1] for c in counts) <= total <= sum(c[0] for c in counts)


@pytest.mark.parametrize("scope", ["Layer", "Global"])
@pytest.mark.parametrize("name", DATA_DRIVEN)
def test_a_loop_resumed_from_the_pruner_state_ends_like_the_whole_loop(name, scope):
    data = _data(8)
    model, _, pruner, optimizer = _gradual(name, scope)
    _steps(model, pruner, optimizer, data)
    # the same loop cut after 4 batches: inside the window opened by the step at batch 3
    first, _, first_pruner, first_optimizer = _gradual(name, scope)
    _steps(first, first_pruner, first_optimizer, data[:4])
    saved = (first.state_dict(), first_pruner.state_dict(), first_optimizer.state_dict())
    assert saved[1]["collector"]["seen"] == 1
    second, _, second_pruner, second_optimizer = _gradual(name, scope, seed=5)
    second.load_state_dict(saved[0])
    second_pruner.load_state_dict(saved[1])
    second_optimizer.load_state_dict(saved[2])
    _steps(second, second_pruner, second_optimizer, data[4:], first=4)
    whole, resumed = model.state_dict(), second.state_dict()
    assert whole.keys() == resumed.keys()
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key
