"""Mask fillers: pure functions that decide which weights a PruneCell zeroes (spec §4.5).

Each filler takes the weight tensor, the current mask and the target fraction of zeros, and
returns the new mask (same shape, 0 = pruned, 1 = kept; IterNonStruct returns uint8 to avoid
a conversion pass, the others the mask's dtype). They are registered in ``MASK_FILLERS``
under their N2D2 spelling (``QWeight.PruningFiller=``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from n2prune.registry import Registry

MaskFiller = Callable[..., torch.Tensor]
MASK_FILLERS: Registry = Registry("pruning filler")


def zeros_target(target: float, size: int) -> int:
    """N2D2's number of zeros for a fraction: ceil(float32(t) * float32(N)), float32 product."""
    return int(math.ceil(float(np.float32(target) * np.float32(size))))


@MASK_FILLERS.register("None")
def fill_none(weights: torch.Tensor, mask: torch.Tensor, target: float, **_) -> torch.Tensor:
    """Keep every weight: the mask stays all ones, whatever the target."""
    return torch.ones_like(mask)


@MASK_FILLERS.register("Random")
def fill_random(weights: torch.Tensor, mask: torch.Tensor, target: float, *,
                generator: Optional[torch.Generator] = None, **_) -> torch.Tensor:
    """Add zeros at random until ceil(float32(t)·float32(N)) weights are pruned.

    Cumulative, as in N2D2: existing zeros are kept and never revived. The new zeros are drawn
    uniformly among the kept weights (N2D2's forward-scan draw, §4.5, is biased towards the
    weight after a run of zeros; use ``fill_random_n2d2`` to reproduce its exact stream).
    """
    if not 0.0 <= target <= 1.0 or math.isnan(target):
        raise ValueError(f"Random filler: target fraction must be in [0, 1], got {target}")
    flat = mask.reshape(-1)
    kept = torch.nonzero(flat != 0).reshape(-1)
    add = zeros_target(target, flat.numel()) - (flat.numel() - kept.numel())
    out = flat.clone()
    if add > 0:
        pick = torch.randperm(kept.numel(), generator=generator)[:add]
        out[kept[pick]] = 0
    return out.reshape(mask.shape)


def fill_random_n2d2(mask: np.ndarray, target: float, rng: np.random.RandomState) -> np.ndarray:
    """N2D2's exact Random filler on a flat 0/1 array, drawing from an MT19937 ``rng`` (§4.8).

    ``numpy.random.RandomState(seed)`` produces N2D2's ``Random::mtSeed(seed)`` stream, so the
    masks equal N2D2's bit for bit. Slow (a Python loop per zero); meant for checks.
    """
    out = np.array(mask, copy=True).reshape(-1)
    size = out.size
    add = max(0, zeros_target(target, size) - int((out == 0).sum()))
    for _ in range(add):
        while True:
            draw = int(rng.randint(0, 2**32, dtype=np.uint64))
            i = int(draw / 4294967296.0 * (size + 1.0))
            while i != size and out[i] == 0:
                i += 1
            if i != size:
                out[i] = 0
                break
    return out.reshape(np.shape(mask))


@MASK_FILLERS.register("IterNonStruct")
def fill_iter_nonstruct(weights: torch.Tensor, mask: torch.Tensor, target: float, *,
                        delta: float = 0.001, **_) -> torch.Tensor:
    """The mask N2D2's IterNonStruct loop gives, in O(N) whatever δ is.

    N2D2 raises a cutoff δ·it (float32) one multiple of δ at a time until the fraction of
    weights with |w| <= cutoff reaches ``target``, then prunes those weights (ties included).
    That cutoff is the smallest multiple of δ at or above the k-th smallest |w|, where k is the
    smallest count whose float32 fraction reaches the target. For large tensors a sample
    guesses ``it`` and two or three counting passes confirm it exactly; otherwise (small
    tensors, a very fine δ grid) one partition selects the k-th |w| and the multiple is
    solved for directly. The mask is recomputed from scratch.
    """
    array = weights.detach().to("cpu", torch.float32).contiguous().numpy().reshape(-1)
    work = np.abs(array)
    keep = _keep_by_counting(work, target, delta)
    if keep is None:
        cutoff = _cutoff(work, target, delta)  # reorders ``work``: |w| is written again below
        keep = np.abs(array, out=work) > cutoff  # numpy: no thread start-up cost
    # 0/1 bytes, no copy: the PruneCell converts them while copying into its mask buffer
    return torch.from_numpy(keep.view(np.uint8)).reshape(mask.shape)


_COUNTING_MIN_SIZE = 1 << 16  # below this one partition is as cheap as a few counting passes
_SAMPLE = 16384
_PROBES = 6


def _keep_by_counting(absw: np.ndarray, target: float, delta: float) -> Optional[np.ndarray]:
    """The kept-weights mask found by counting |w| <= δ·it for a few guessed ``it``.

    A strided sample estimates where the cutoff lies and how many weights each multiple of
    δ holds; each probe is one compare pass. The answer is exact by construction: ``it`` is
    accepted only when count(|w| <= δ·(it-1)) < k <= count(|w| <= δ·it). None when the
    tensor is small, the grid too fine to pin in a few probes, or anything is unusual: the
    caller then selects the k-th |w| with a partition.
    """
    size = absw.size
    t32, n32 = np.float32(target), np.float32(size)
    if size < _COUNTING_MIN_SIZE or math.isnan(target) or not np.float32(0) / n32 < t32 \
            or not np.float32(delta) > 0:
        return None
    need = _smallest_reaching_count(t32, n32, size)
    top = absw.max()
    if need is None or not np.isfinite(top):
        return None  # the partition path raises the right error
    d32 = np.float32(delta)
    step = size // _SAMPLE
    sample = absw[::step].copy()
    pos = min(sample.size - 1, max(0, int(need / size * sample.size) - 1))
    low, high = max(0, pos - 32), min(sample.size - 1, pos + 32)
    sample.partition([low, pos, high])
    spread = float(sample[high]) - float(sample[low])
    per_bucket = (high - low) * step * float(d32) / spread if spread > 0 else float(size)
    it = max(1, int(math.ceil(float(sample[pos]) / float(d32))))
    if it > 1 << 24 or per_bucket < 64:
        return None  # float32 multiples uneven up there, or a grid finer than a sample sees
    keep = np.empty(size, dtype=bool)
    counts: dict = {}
    last = [0]

    def count_at_most(k: int) -> int:
        if k not in counts:
            np.greater(absw, np.float32(d32 * np.float32(k)), out=keep)
            counts[k], last[0] = size - int(np.count_nonzero(keep)), k
        return counts[k]

    for _ in range(_PROBES):
        if it > 1 and count_at_most(it - 1) >= need:
            it = max(1, it - 1 - int((counts[it - 1] - need) / per_bucket))
        elif count_at_most(it) < need:
            it = it + 1 + int((need - counts[it]) / per_bucket)
        else:
            if last[0] != it:
                np.greater(absw, np.float32(d32 * np.float32(it)), out=keep)
            return keep
    return None


def _non_finite_error() -> ValueError:
    return ValueError("IterNonStruct filler: the weights contain NaN or Inf; N2D2's loop "
                      "would never end (check the learning rate and the weight files)")


def iter_nonstruct_cutoff(absw: np.ndarray, target: float, delta: float) -> np.float32:
    """The float32 cutoff δ·it at which N2D2's loop stops, for |w| = ``absw`` (0 when t <= 0).

    Raises ValueError for NaN/Inf weights, an unreachable target or a δ that cannot reach it
    (the cases where N2D2 hangs).
    """
    return _cutoff(absw.reshape(-1).copy(), target, delta)


def _cutoff(work: np.ndarray, target: float, delta: float) -> np.float32:
    """:func:`iter_nonstruct_cutoff` on a flat |w| buffer it may reorder."""
    size = work.size
    t32, n32 = np.float32(target), np.float32(size)
    if math.isnan(target):
        raise ValueError("IterNonStruct filler: the target fraction is NaN")
    if size == 0 or not np.float32(0) / n32 < t32:
        if size and not np.isfinite(work.max()):
            raise _non_finite_error()
        return np.float32(0.0)  # the loop does not run: it = 0, cutoff = 0
    need = _smallest_reaching_count(t32, n32, size)
    if need is None:
        raise ValueError(f"IterNonStruct filler: target fraction {target} cannot be reached "
                         f"with {size} weights (it must be at most 1)")
    work.partition(need - 1)
    # partition sorts NaN last, so every non-finite value sits at or after position need-1
    if not np.isfinite(work[need - 1:].max()):
        raise _non_finite_error()
    return _smallest_multiple_at_least(np.float32(work[need - 1]), delta, target)


def _smallest_reaching_count(t32: np.float32, n32: np.float32, size: int) -> Optional[int]:
    """Smallest k with float32(k)/float32(N) >= float32(t), or None when no k <= N does."""
    guess = min(size, max(1, int(math.ceil(float(t32) * size))))
    reaches = lambda k: np.float32(k) / n32 >= t32  # noqa: E731 (float32 division, as N2D2)
    while guess > 1 and reaches(guess - 1):
        guess -= 1
    while guess <= size and not reaches(guess):
        guess += 1
    return guess if guess <= size else None


def _smallest_multiple_at_least(value: np.float32, delta: float, target: float) -> np.float32:
    """float32(δ)·float32(it) for the smallest it >= 1 whose product reaches ``value``."""
    d32 = np.float32(delta)
    cut = lambda it: np.float32(d32 * np.float32(it))  # noqa: E731
    if value <= 0:
        return cut(1)
    if not d32 > 0:
        raise ValueError(f"IterNonStruct filler: delta={delta} never reaches the cutoff "
                         f"{float(value):g} needed for target {target} (delta must be > 0)")
    lo = 1
    hi = max(1, int(math.ceil(float(value) / float(d32))))
    while not cut(hi) >= value:  # float32 rounding: walk up (geometrically) to a bound
        lo, hi = hi, hi + max(1, hi // 1_000_000)
    while lo < hi:  # the cutoff is monotone in it: bisect for the first it that reaches
        mid = (lo + hi) // 2
        if cut(mid) >= value:
            hi = mid
        else:
            lo = mid + 1
    return cut(hi)


def fill_iter_nonstruct_loop(weights, target: float, delta: float) -> np.ndarray:
    """A literal port of N2D2's IterNonStruct loop (§4.9b), for tests and benchmarks."""
    absw = np.abs(np.asarray(weights, np.float32)).reshape(-1)
    size, it, zeros = absw.size, 0, 0
    d32 = np.float32(delta)
    while np.float32(zeros) / np.float32(size) < np.float32(target):
        it += 1
        zeros = int((absw <= d32 * np.float32(it)).sum())
    return np.where(absw <= d32 * np.float32(it), 0, 1).astype(np.float32)
