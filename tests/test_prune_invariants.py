"""Invariants of every registered filler, criterion and pattern (a new member is tested here
for free): mask shape and 0/1 values, the exact number of pruned groups, Static idempotence,
and the state_dict round trip."""

import copy

import pytest
import torch

from n2prune.cells import Conv, Fc, Sequence
from n2prune.prune import CRITERIA, MASK_FILLERS, PATTERNS, PruneCell
from n2prune.prune.calibration import StatisticsCollector
from n2prune.prune.fillers import zeros_target

TARGET = 0.5


def _combinations():
    for name in MASK_FILLERS.names():
        yield name, "Unstructured"
    for name in CRITERIA.names():
        if CRITERIA.get(name).level == "channel":
            yield name, "Channel"
            continue
        for pattern in PATTERNS.names():
            supported = CRITERIA.get(name).patterns  # None: every pattern
            if supported is None or pattern in supported:
                yield name, {"N:M": "2:4", "KxL": "2x2"}.get(pattern, pattern)


def _model():
    torch.manual_seed(0)
    return Sequence([Conv(4, 6, kernel_dims=[3, 3], activation=torch.nn.ReLU()),
                     Fc(6 * 4 * 4, 8)])


def _pruned(filler, pattern, target=TARGET):
    model = _model()
    cells = []
    for layer in model:
        layer.quantizer = PruneCell(prune_mode="Static", threshold=target, prune_filler=filler,
                                    pattern=pattern, seed=1)
        cells.append(layer.quantizer)
    if filler in CRITERIA and CRITERIA.get(filler).needs:
        collector = StatisticsCollector(dict(enumerate(cells)), batches=2)
        gen = torch.Generator().manual_seed(2)
        batches = [(torch.randn(4, 4, 6, 6, generator=gen), torch.randint(0, 8, (4,),
                                                                          generator=gen))
                   for _ in range(3)]
        collector.calibrate(model, batches, torch.nn.functional.cross_entropy)
        collector.unbind()
    return model, cells


def _groups(mask, pattern):
    """Rows of the mask, one per group of the pattern (for the count and uniformity checks)."""
    flat = mask.reshape(mask.shape[0], -1)
    if pattern == "Channel":
        return flat
    if pattern == "2x2":
        rows, cols = flat.shape
        return flat.reshape(rows // 2, 2, cols // 2, 2).permute(0, 2, 1, 3).reshape(-1, 4)
    if pattern == "2:4":
        return mask.movedim(1, -1).reshape(-1, 4) if mask.dim() > 2 else flat.reshape(-1, 4)
    return flat.reshape(-1, 1)


@pytest.mark.parametrize("filler,pattern", list(_combinations()))
def test_mask_shape_values_and_exact_count(filler, pattern):
    model, cells = _pruned(filler, pattern)
    for layer, cell in zip(model, cells):
        mask = cell.get_pruned_masks()
        assert mask.shape == layer.weight.shape
        assert torch.all((mask == 0) | (mask == 1))
        groups = _groups(mask, pattern)
        pruned = int((groups == 0).sum())
        if filler == "None":
            assert pruned == 0
        elif filler == "IterNonStruct":  # the δ grid prunes ties at the cutoff too
            assert pruned >= zeros_target(TARGET, mask.numel())
        elif pattern == "2:4":
            assert torch.all(groups.sum(1) == 2)
        else:
            assert torch.all((groups.sum(1) == 0) | (groups.sum(1) == groups.shape[1]))
            assert int((groups.sum(1) == 0).sum()) == zeros_target(TARGET, groups.shape[0])


@pytest.mark.parametrize("filler,pattern", list(_combinations()))
def test_static_recompute_is_idempotent(filler, pattern):
    model, cells = _pruned(filler, pattern)
    before = [cell.mask.clone() for cell in cells]
    for cell in cells:
        cell.recompute()
    assert all(torch.equal(a, cell.mask) for a, cell in zip(before, cells))


@pytest.mark.parametrize("filler,pattern", list(_combinations()))
def test_state_dict_round_trip(filler, pattern):
    model, cells = _pruned(filler, pattern)
    fresh = _model()
    for layer in fresh:
        layer.quantizer = PruneCell(prune_mode="Static", threshold=0.1, prune_filler=filler,
                                    pattern=pattern, seed=5)
    fresh.load_state_dict(copy.deepcopy(model.state_dict()))
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(fresh(x), model(x))
    for old, new in zip(model, fresh):
        assert torch.equal(old.quantizer.mask, new.quantizer.mask)
        assert old.quantizer.get_current_threshold() == new.quantizer.get_current_threshold()
