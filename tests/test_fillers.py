"""Mask fillers: N2D2's §4.9 vectors, and the fast IterNonStruct against the literal loop."""

import numpy as np
import pytest
import torch

from n2prune.prune.fillers import (MASK_FILLERS, fill_iter_nonstruct, fill_iter_nonstruct_loop,
                             fill_none, fill_random, fill_random_n2d2, zeros_target)


def bits(mask) -> str:
    return "".join(str(int(v)) for v in np.asarray(mask).reshape(-1))


ITER_VECTORS = [
    ([0.5, -0.0004, 0.0011, -0.002, 0.0025, 0, 0.9, -0.3, 0.0015, 0.0009], 0.3, 0.001,
     "1011101110"),
    ([0.5, -0.0004, 0.0011, 0, 0.9], 0.0, 0.001, "11101"),
    ([0.5, -0.04, 0.25, 0, 0.9], 1.0, 0.1, "00000"),
    ([0.001, 0.002, 0.003, 0.004], 0.5, 0.001, "0011"),
]


@pytest.mark.parametrize("weights,target,delta,expected", ITER_VECTORS)
def test_iter_nonstruct_matches_n2d2_vectors(weights, target, delta, expected):
    w = torch.tensor(weights)
    assert bits(fill_iter_nonstruct(w, torch.ones_like(w), target, delta=delta)) == expected
    assert bits(fill_iter_nonstruct_loop(weights, target, delta)) == expected


RANDOM_VECTORS = [
    (10, 0.3, 1, [], "0111011011"),
    (10, 0.3, 1, [0, 1, 2, 3], "0000111111"),
    (10, 0.0, 1, [], "1111111111"),
    (10, 1.0, 1, [], "0000000000"),
    (25, 0.2, 7, [], "1011101101101111111101111"),
    (10, 0.25, 1, [], "0111011011"),
    (10, 0.25, 1, [9], "1111011010"),
]


@pytest.mark.parametrize("size,target,seed,zeros,expected", RANDOM_VECTORS)
def test_random_n2d2_stream_matches_n2d2_vectors(size, target, seed, zeros, expected):
    mask = np.ones(size, np.uint8)
    mask[zeros] = 0
    out = fill_random_n2d2(mask, target, np.random.RandomState(seed))
    assert bits(out) == expected


def test_random_n2d2_stream_seed_42():
    out = fill_random_n2d2(np.ones(100, np.uint8), 0.07, np.random.RandomState(42))
    assert list(np.flatnonzero(out == 0)) == [18, 37, 60, 73, 78, 80, 96]


def test_zeros_target_uses_float32_product():
    assert zeros_target(0.3, 10) == 3  # double arithmetic would give 4
    cur = np.float32(np.float32(np.float32(0.1) + np.float32(0.05)) + np.float32(0.05))
    assert zeros_target(float(cur), 25) == 5  # double would give 6


def test_random_filler_is_cumulative_and_reproducible():
    mask = torch.ones(1000)
    gen = torch.Generator().manual_seed(3)
    first = fill_random(None, mask, 0.3, generator=gen)
    assert int((first == 0).sum()) == 300
    second = fill_random(None, first, 0.5, generator=gen)
    assert int((second == 0).sum()) == 500
    assert torch.all(second[first == 0] == 0)  # never revives a weight
    again = fill_random(None, mask, 0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert torch.equal(fill_random(None, second, 0.2, generator=gen), second)


def test_random_filler_rejects_targets_n2d2_would_hang_on():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fill_random(None, torch.ones(4), 1.5)


def test_none_filler_keeps_everything():
    assert torch.equal(fill_none(torch.zeros(5), torch.zeros(5), 0.9), torch.ones(5))


def test_registry_holds_n2d2_spellings():
    for name, filler in (("None", fill_none), ("Random", fill_random),
                         ("IterNonStruct", fill_iter_nonstruct)):
        assert MASK_FILLERS.get(name) is filler  # plug-ins may add more
    with pytest.raises(ValueError, match="did you mean 'IterNonStruct'"):
        MASK_FILLERS.get("IterNonStrut")


def _tensors():
    rng = np.random.RandomState(0)
    yield "normal", rng.normal(0, 0.05, 2000)
    yield "uniform", rng.uniform(-1, 1, 1500)
    yield "ties", np.round(rng.normal(0, 0.05, 2000), 3)
    yield "coarse-ties", np.round(rng.normal(0, 0.02, 1000), 2)
    yield "zeros", np.where(rng.rand(1000) < 0.3, 0.0, rng.normal(0, 0.1, 1000))
    yield "multiples", rng.randint(-20, 21, 800) * 0.001
    yield "tiny", rng.normal(0, 1e-5, 500)
    yield "single", np.array([0.25])


@pytest.mark.parametrize("name,weights", list(_tensors()))
@pytest.mark.parametrize("target", [0.0, 0.05, 0.3, 0.5, 0.77, 0.9, 0.999, 1.0])
@pytest.mark.parametrize("delta", [0.001, 0.0037, 0.01])
def test_fast_iter_nonstruct_equals_the_loop(name, weights, target, delta):
    w32 = np.asarray(weights, np.float32)
    expected = fill_iter_nonstruct_loop(w32, target, delta)
    got = fill_iter_nonstruct(torch.from_numpy(w32), torch.ones(w32.size), target, delta=delta)
    assert np.array_equal(got.numpy(), expected), (name, target, delta)


def test_iter_nonstruct_with_a_delta_finer_than_the_weights_prunes_the_k_smallest():
    # The loop would take ~1e10 passes; the answer is known: with distinct |w| spaced far
    # more than delta apart, the cutoff lands on the 500th smallest |w|, so exactly those go.
    w = (torch.randperm(1000, generator=torch.Generator().manual_seed(0)).float() + 1) * 1e-4
    w[::2] *= -1
    mask = fill_iter_nonstruct(w, torch.ones(1000), 0.5, delta=1e-12)
    assert torch.equal(mask.bool(), w.abs() > w.abs().kthvalue(500).values)


def test_iter_nonstruct_keeps_the_weight_shape():
    w = torch.randn(4, 3, 2, 2)
    assert fill_iter_nonstruct(w, torch.ones_like(w), 0.5).shape == w.shape


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_iter_nonstruct_refuses_non_finite_weights(bad):
    w = torch.tensor([0.1, bad, 0.3])
    with pytest.raises(ValueError, match="NaN or Inf"):
        fill_iter_nonstruct(w, torch.ones(3), 0.5)


def test_iter_nonstruct_unreachable_target_is_an_error():
    with pytest.raises(ValueError, match="cannot be reached"):
        fill_iter_nonstruct(torch.ones(4), torch.ones(4), 1.5)


def test_iter_nonstruct_zero_delta_only_reaches_exact_zeros():
    w = torch.tensor([0.0, 0.0, 0.5, 0.7])
    assert bits(fill_iter_nonstruct(w, torch.ones(4), 0.5, delta=0.0)) == "0011"
    with pytest.raises(ValueError, match="delta"):
        fill_iter_nonstruct(w, torch.ones(4), 0.75, delta=0.0)


def _large_tensors():
    rng = np.random.RandomState(1)
    n = 70_000  # above the size where counting passes replace the partition
    yield "normal", rng.normal(0, 0.05, n)
    yield "ties", np.round(rng.normal(0, 0.05, n), 3)
    yield "zeros", np.where(rng.rand(n) < 0.5, 0.0, rng.normal(0, 0.1, n))
    yield "uniform", rng.uniform(-1, 1, n)
    yield "bimodal", np.concatenate([rng.normal(0, 0.001, n // 2), rng.normal(1, 0.01, n // 2)])


@pytest.mark.parametrize("name,weights", list(_large_tensors()))
@pytest.mark.parametrize("target", [0.01, 0.3, 0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("delta", [0.001, 0.0042])
def test_counting_path_on_large_tensors_equals_the_loop(name, weights, target, delta):
    from n2prune.prune.fillers import _keep_by_counting
    w32 = np.asarray(weights, np.float32)
    expected = fill_iter_nonstruct_loop(w32, target, delta)
    keep = _keep_by_counting(np.abs(w32), target, delta)
    if keep is not None:  # when it answers, it is exact
        assert np.array_equal(keep.astype(np.float32), expected), (name, target, delta)
    got = fill_iter_nonstruct(torch.from_numpy(w32), torch.ones(w32.size), target, delta=delta)
    assert np.array_equal(got.numpy(), expected), (name, target, delta)


def test_counting_path_answers_for_typical_weights():
    from n2prune.prune.fillers import _keep_by_counting
    w = np.abs(np.random.RandomState(2).normal(0, 0.05, 1 << 17).astype(np.float32))
    assert _keep_by_counting(w, 0.9, 0.001) is not None
    assert _keep_by_counting(w, 0.9, 1e-9) is None  # too fine a grid: the partition decides
