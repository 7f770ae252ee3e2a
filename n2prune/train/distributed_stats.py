"""Merging the statistics of data-driven criteria across ranks (the names of
:mod:`n2prune.prune.statistics`), so every rank scores with those of the whole global batch.

Each rank's :class:`~n2prune.prune.calibration.StatisticsCollector` gathers running values
from its own share of the batches. When a window completes, before the masks are recomputed,
the collector calls its ``reduce`` hook on every cell's statistics; a distributed Trainer sets
it to :func:`reduce_statistics` (``Ranks.start``), and a hand-written DDP loop can do the same:
``StatisticsCollector.reduce = staticmethod(reduce_statistics)``.

- running means (``grad``, ``input_sq_mean``, ``input_mean``, ``input_col_sq_mean``,
  ``output_zero_frac``, ``output_mean``) are averaged weighted by their counts, and the counts summed;
- ``output_var`` (population, with ``output_chan_mean``) is combined exactly from each rank's
  mean and variance;
- ``output_hist``: each rank's histogram is re-binned into the union of the ranks' ranges
  (bin centres; exact when the ranges are equal), then summed;
- anything else (``momentum_score``, computed from the identical global gradients) is averaged;
  names in ``summed`` are added instead.
"""

from __future__ import annotations

import hashlib
from typing import Dict, Iterable

import torch
import torch.distributed as dist

COUNTED = {"grad": "grad_count", "input_sq_mean": "input_count", "input_mean": "input_count",
           "input_col_sq_mean": "input_col_count", "output_zero_frac": "output_count",
           "output_mean": "output_count"}
COUNTS = ("grad_count", "input_count", "input_col_count", "output_count")
SPECIAL = ("output_var", "output_chan_mean", "output_hist", "output_hist_range")


def reduce_statistics(stats: Dict[str, torch.Tensor],
                      summed: Iterable[str] = ()) -> Dict[str, torch.Tensor]:
    """Merge one cell's statistics over the ranks, in place (see the module docstring).

    A no-op without an initialised process group of several ranks. Every rank must call it
    with the same names and shapes (a mismatch is a RuntimeError on every rank)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return stats
    _check_same_layout(stats)
    counts = {name: stats[name].clone() for name in COUNTS if name in stats}
    summed = set(summed)
    for name in sorted(stats):
        if name in COUNTS or name in SPECIAL:
            continue
        tensor = stats[name]
        if name in summed:
            dist.all_reduce(tensor)
        elif COUNTED.get(name) in counts:
            _weighted_mean(tensor, counts[COUNTED[name]])
        else:
            dist.all_reduce(tensor)
            tensor.div_(dist.get_world_size())
    if "output_var" in stats and "output_chan_mean" in stats and "output_count" in counts:
        _merge_variance(stats, counts["output_count"])
    if "output_hist" in stats and "output_hist_range" in stats:
        _merge_histogram(stats)
    for name in counts:
        dist.all_reduce(stats[name])
    return stats


def _check_same_layout(stats: Dict[str, torch.Tensor]) -> None:
    layout = ";".join(f"{name}:{tuple(stats[name].shape)}" for name in sorted(stats))
    code = int.from_bytes(hashlib.blake2b(layout.encode(), digest_size=7).digest(), "little")
    both = torch.tensor([code, -code], dtype=torch.int64)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    if int(both[0]) != code or int(both[1]) != -code:
        raise RuntimeError(f"reduce_statistics: the ranks hold different statistics (this "
                           f"rank: {layout})")


def _weighted_mean(tensor: torch.Tensor, count: torch.Tensor) -> None:
    """tensor <- sum(count_r * tensor_r) / sum(count_r) (unchanged where no rank counted)."""
    weight = float(count)
    total = count.to(torch.float64).clone()
    dist.all_reduce(total)
    tensor.mul_(weight)
    dist.all_reduce(tensor)
    if float(total) > 0:
        tensor.div_(float(total))


def _merge_variance(stats: Dict[str, torch.Tensor], count: torch.Tensor) -> None:
    """Population variance of the union from each rank's (count, mean, variance)."""
    mean, var = stats["output_chan_mean"], stats["output_var"]
    n = float(count)
    total = count.to(torch.float64).clone()
    dist.all_reduce(total)
    if float(total) == 0:
        return
    moments = torch.stack([mean.to(torch.float64) * n,
                           (var.to(torch.float64) + mean.to(torch.float64) ** 2) * n])
    dist.all_reduce(moments)
    moments /= float(total)
    mean.copy_(moments[0])
    var.copy_((moments[1] - moments[0] ** 2).clamp(min=0))


def _merge_histogram(stats: Dict[str, torch.Tensor]) -> None:
    hist, ranges = stats["output_hist"], stats["output_hist_range"]
    bins = hist.shape[1]
    low, high = ranges[:, 0].clone(), ranges[:, 1].clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    width = (ranges[:, 1] - ranges[:, 0]) / bins
    centres = ranges[:, :1] + width[:, None] * (torch.arange(bins, dtype=ranges.dtype) + 0.5)
    index = ((centres - low[:, None]) / (high - low)[:, None] * bins).floor()
    rebinned = torch.zeros_like(hist)
    rebinned.scatter_add_(1, index.clamp(0, bins - 1).long(), hist)
    dist.all_reduce(rebinned)
    hist.copy_(rebinned)
    ranges[:, 0], ranges[:, 1] = low, high
