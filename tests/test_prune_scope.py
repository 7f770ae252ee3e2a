"""Global scope: one threshold across cells, per-layer sparsities that differ, floors."""

import pytest
import torch

from n2prune import PruneCell
from n2prune.cells import Fc
from n2prune.prune.ranking import prune_global
from n2prune.prune.scope import global_keep, select_lowest


def test_select_lowest_is_exact_and_breaks_ties_by_index():
    scores = torch.tensor([3.0, 1.0, 2.0, 1.0, 1.0, 5.0])
    assert select_lowest(scores, 2).tolist() == [True, False, True, False, True, True]
    assert select_lowest(scores, 0).all() and not select_lowest(scores, 6).any()


def test_select_lowest_on_a_large_tensor_matches_a_stable_sort():
    scores = torch.randint(0, 50, (100_003,)).float()
    keep = select_lowest(scores, 40_000)
    order = torch.sort(scores, stable=True).indices
    expected = torch.ones_like(keep)
    expected[order[:40_000]] = False
    assert torch.equal(keep, expected)


def test_select_lowest_refuses_nan():
    with pytest.raises(ValueError, match="NaN"):
        select_lowest(torch.tensor([1.0, float("nan"), 0.5]), 2)


def test_global_keep_uses_one_threshold_across_tensors():
    a = torch.tensor([0.1, 0.2, 0.3, 0.4])
    b = torch.tensor([1.0, 2.0, 0.15, 3.0])
    keep_a, keep_b = global_keep([a, b], 0.5)  # 4 pruned: 0.1, 0.15, 0.2, 0.3
    assert keep_a.tolist() == [False, False, False, True]
    assert keep_b.tolist() == [True, True, False, True]
    cut = max(torch.cat([a[~keep_a], b[~keep_b]]))
    assert cut <= min(torch.cat([a[keep_a], b[keep_b]]))


def test_global_keep_floor_keeps_a_share_of_every_tensor():
    a = torch.tensor([0.1, 0.2, 0.3, 0.4])
    b = torch.tensor([1.0, 2.0, 3.0, 4.0])
    keep_a, keep_b = global_keep([a, b], 0.5, min_keep=0.5)
    assert keep_a.tolist() == [False, False, True, True]  # floor: 2 of 4 kept
    assert keep_b.tolist() == [False, False, True, True]  # the rest of the 4 comes from b
    empty_a, _ = global_keep([a, b], 0.5)
    assert not empty_a.any()  # without a floor, a is emptied


def test_global_keep_floor_can_make_the_target_unreachable():
    keeps = global_keep([torch.arange(4.0), torch.arange(4.0)], 1.0, min_keep=[0.25, 0.5])
    assert [int(k.sum()) for k in keeps] == [1, 2]


def _fc(weight, **kwargs):
    fc = Fc(weight.shape[1], weight.shape[0], no_bias=True)
    with torch.no_grad():
        fc.weight.copy_(weight)
    fc.quantizer = PruneCell(prune_filler="Magnitude", scope="Global", **kwargs)
    return fc


def test_prune_global_sets_masks_with_per_layer_sparsities_that_differ():
    small = _fc(torch.full((2, 4), 0.01) + torch.arange(8.0).reshape(2, 4) * 1e-3,
                prune_mode="Static", threshold=0.5)
    large = _fc(torch.ones(2, 4) + torch.arange(8.0).reshape(2, 4),
                prune_mode="Static", threshold=0.5)
    prune_global([small.quantizer, large.quantizer])
    assert small.quantizer.sparsity() == 1.0 and large.quantizer.sparsity() == 0.0
    small.quantizer.min_keep = 0.25
    prune_global([small.quantizer, large.quantizer])
    assert int(small.quantizer.mask.sum()) == 2 and int((large.quantizer.mask == 0).sum()) == 2


def test_prune_global_with_channels_and_differing_thresholds():
    a = _fc(torch.tensor([[1.0, 1.0], [0.1, 0.1]]), prune_mode="Static", threshold=0.5,
            pattern="Channel")
    b = _fc(torch.tensor([[0.5, 0.5], [2.0, 2.0]]), prune_mode="Static", threshold=0.25,
            pattern="Channel")
    with pytest.raises(ValueError, match="differ"):
        prune_global([a.quantizer, b.quantizer])
    prune_global([a.quantizer, b.quantizer], target=0.5)  # L1: 2, 0.2 | 1, 4 -> prune 0.2, 1
    assert a.quantizer.mask.tolist() == [[1, 1], [0, 0]]
    assert b.quantizer.mask.tolist() == [[0, 0], [1, 1]]


def test_global_scope_refuses_fillers_without_scores():
    with pytest.raises(ValueError, match="ranks scores"):
        PruneCell(prune_filler="IterNonStruct", scope="Global")
    with pytest.raises(ValueError, match="min_keep=2"):
        PruneCell(prune_filler="Magnitude", scope="Global", min_keep=2)
