"""Calibration statistics for data-driven criteria: running values, bounded memory.

Pure update functions mutate a layer's statistics dict (the PruneCell's buffers) from one
batch of gradients, inputs or outputs; nothing keeps a batch. Every statistic has a fixed
size (the weight's, a channel count, or channels × bins), so memory does not grow with the
number of calibration batches. ``StatisticsCollector`` registers the forward hooks and is
driven by the Pruner (gradients before the optimiser step).

Statistics (names the criteria's ``needs`` use):

===================  ==========================================  ========================
name                 value                                        shape
===================  ==========================================  ========================
grad                 mean ∂L/∂w over calibration batches          weight
momentum_score       s <- m·s + |w·g| at every training step      weight
input_sq_mean        E[x_j²] over samples (and positions)         in features / channels
input_mean           E[x] over samples                            input (one sample)
input_col_sq_mean    E[x_j²] over tokens of the columns a weight  in features /
                     row reads (conv: unfolded patches, zero      in channels × kernel
                     padding included; Linear: input_sq_mean)     positions
output_zero_frac     fraction of outputs <= 0 per channel         out channels
output_mean          E[y] over samples                            channels × positions
output_var           variance per channel (samples, positions)    out channels
output_hist          histogram of per-sample channel means        out channels × bins
===================  ==========================================  ========================

Helper entries are stored beside them: ``grad_count``, ``input_count``,
``input_col_count``, ``output_count``
(what the running means have seen), ``output_chan_mean`` (behind ``output_var``) and
``output_hist_range`` (each channel's fixed bin range).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, Optional, Set

import torch

from n2prune.ini.params import Key, Range
from n2prune.ini.values import read_uint

Stats = Dict[str, torch.Tensor]

GRADIENT_STATS = ("grad", "momentum_score")
INPUT_STATS = ("input_sq_mean", "input_mean", "input_col_sq_mean")
OUTPUT_STATS = ("output_zero_frac", "output_mean", "output_var", "output_hist")
KNOWN_STATS = GRADIENT_STATS + INPUT_STATS + OUTPUT_STATS
DEFAULT_BINS = 32
DEFAULT_BATCHES = 8

# Parameters every data-driven criterion declares in its table (QWeight.<ini>= / argument).
CALIBRATION_BATCHES = Key(
    "CalibrationBatches", "calibration_batches", read_uint, DEFAULT_BATCHES,
    "training batches gathered before each mask computation", Range(1, math.inf, integer=True))
ENTROPY_BINS = Key("EntropyBins", "entropy_bins", read_uint, DEFAULT_BINS,
                   "histogram bins of the Entropy criterion", Range(2, math.inf, integer=True))


def check_needs(needs: Iterable[str], what: str) -> Set[str]:
    """The set of statistics ``needs``; a ValueError naming an unknown one."""
    out = set(needs)
    for name in out:
        if name not in KNOWN_STATS:
            raise ValueError(f"{what}: unknown statistic {name!r} (known: "
                             f"{', '.join(KNOWN_STATS)})")
    return out


def _running(stats: Stats, name: str, batch_mean: torch.Tensor, old: float, new: float) -> None:
    """stats[name] <- the mean over old + new samples, given the mean of the new ones."""
    batch_mean = batch_mean.detach().to(torch.float32)
    current = stats.get(name)
    if current is None or current.shape != batch_mean.shape or old == 0:
        stats[name] = batch_mean.clone()
        return
    current.add_((batch_mean - current) * (new / (old + new)))


def _count(stats: Stats, name: str) -> float:
    value = stats.get(name)
    return float(value) if value is not None and value.numel() == 1 else 0.0


def _set_count(stats: Stats, name: str, value: float) -> None:
    current = stats.get(name)
    if current is not None and current.numel() == 1:
        current.fill_(value)
    else:
        stats[name] = torch.tensor(float(value), dtype=torch.float64)


# ----------------------------------------------------------------------------- gradients
def update_grad(stats: Stats, grad: torch.Tensor) -> None:
    """One calibration batch's gradient into the running mean ``grad``."""
    old = _count(stats, "grad_count")
    _running(stats, "grad", grad, old, 1.0)
    _set_count(stats, "grad_count", old + 1)


def update_momentum(stats: Stats, weight: torch.Tensor, grad: torch.Tensor,
                    momentum: float) -> None:
    """SnipMomentum's s <- momentum·s + |w·g| (every training step)."""
    score = (weight.detach() * grad.detach()).abs().to(torch.float32)
    current = stats.get("momentum_score")
    if current is None or current.shape != score.shape:
        stats["momentum_score"] = score
    else:
        current.mul_(momentum).add_(score)


# ----------------------------------------------------------------------------- inputs
def update_inputs(stats: Stats, x: torch.Tensor, weight: torch.Tensor, needs: Set[str],
                  unfold: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
    """One batch of a layer's input ``x`` into the input statistics in ``needs``.

    A Linear layer counts rows of ``weight.shape[1]`` features (an n2prune Fc flattens its
    input; a sequence counts each position); a convolution counts samples, its positions
    averaged within each. ``input_col_sq_mean`` of a convolution needs ``unfold`` (the layer's
    im2col: [N, C, H, W] -> [N, C·kh·kw, positions])."""
    x = x.detach().to(torch.float32)
    if "input_col_sq_mean" in needs:
        _update_columns(stats, x, weight, unfold)
    linear = weight.dim() <= 2
    if linear:
        x = x.reshape(-1, weight.shape[1])
    count = float(x.shape[0])
    old = _count(stats, "input_count")
    if "input_sq_mean" in needs:
        rows = x if linear else x.movedim(1, -1).reshape(-1, x.shape[1])
        _running(stats, "input_sq_mean", rows.square().mean(dim=0), old, count)
    if "input_mean" in needs:
        _running(stats, "input_mean", x.mean(dim=0), old, count)
    _set_count(stats, "input_count", old + count)


def _update_columns(stats: Stats, x: torch.Tensor, weight: torch.Tensor,
                    unfold: Optional[Callable[[torch.Tensor], torch.Tensor]]) -> None:
    if weight.dim() <= 2:
        rows = x.reshape(-1, weight.shape[1])
    elif unfold is None:
        raise ValueError(f"statistic 'input_col_sq_mean': a {weight.dim()}-d weight needs "
                         f"the layer's unfolding (2-d convolutions only)")
    else:
        cols = unfold(x)
        rows = cols.movedim(1, -1).reshape(-1, cols.shape[1])
    old = _count(stats, "input_col_count")
    _running(stats, "input_col_sq_mean", rows.square().mean(dim=0), old, float(rows.shape[0]))
    _set_count(stats, "input_col_count", old + float(rows.shape[0]))


# ----------------------------------------------------------------------------- outputs
def _channels_last(y: torch.Tensor, weight_dim: int) -> torch.Tensor:
    """[samples, positions, channels] view of a layer's output."""
    if weight_dim <= 2:
        return y.reshape(y.shape[0], -1, y.shape[-1])
    return y.movedim(1, -1).reshape(y.shape[0], -1, y.shape[1])


def update_outputs(stats: Stats, y: torch.Tensor, weight: torch.Tensor, needs: Set[str],
                   bins: int = DEFAULT_BINS) -> None:
    """One batch of a layer's output ``y`` into the output statistics in ``needs``."""
    y = y.detach().to(torch.float32)
    cube = _channels_last(y, weight.dim())
    samples = float(cube.shape[0])
    old = _count(stats, "output_count")
    if "output_zero_frac" in needs:
        _running(stats, "output_zero_frac", (cube <= 0).float().mean(dim=(0, 1)), old, samples)
    if "output_mean" in needs:
        _running(stats, "output_mean", cube.mean(dim=0).t(), old, samples)
    if "output_var" in needs:
        _update_variance(stats, cube, old, samples)
    if "output_hist" in needs:
        _update_histogram(stats, cube.mean(dim=1), bins, fresh=old == 0)
    _set_count(stats, "output_count", old + samples)


def _update_variance(stats: Stats, cube: torch.Tensor, old: float, samples: float) -> None:
    """Chan et al.'s parallel update of a per-channel mean and variance (population)."""
    flat = cube.reshape(-1, cube.shape[-1])
    mean_b = flat.mean(dim=0)
    var_b = flat.var(dim=0, unbiased=False)
    if old == 0 or "output_var" not in stats or "output_chan_mean" not in stats:
        stats["output_chan_mean"], stats["output_var"] = mean_b.clone(), var_b.clone()
        return
    n_a, n_b = old, samples  # positions per sample are fixed for a layer: they cancel
    mean_a, var_a = stats["output_chan_mean"], stats["output_var"]
    delta = mean_b - mean_a
    total = n_a + n_b
    var_a.copy_((var_a * n_a + var_b * n_b) / total + delta.square() * (n_a * n_b / total ** 2))
    mean_a.add_(delta * (n_b / total))


def _update_histogram(stats: Stats, pooled: torch.Tensor, bins: int, fresh: bool) -> None:
    """Count per-sample channel means [samples, channels] into fixed bins; the first batch
    sets each channel's range (widened by 10 %), later values outside it count in the edge
    bins."""
    channels = pooled.shape[1]
    hist = stats.get("output_hist")
    if fresh or hist is None or hist.shape != (channels, bins):
        low, high = pooled.min(dim=0).values, pooled.max(dim=0).values
        pad = (high - low) * 0.05 + 1e-6
        stats["output_hist_range"] = torch.stack([low - pad, high + pad], dim=1)
        hist = stats["output_hist"] = torch.zeros(channels, bins, dtype=torch.float32)
    low, high = stats["output_hist_range"][:, 0], stats["output_hist_range"][:, 1]
    index = ((pooled - low) / (high - low) * bins).floor().clamp(0, bins - 1).long()
    hist.scatter_add_(1, index.t(), torch.ones_like(index.t(), dtype=torch.float32))


def reset(stats: Stats) -> None:
    """Start a new window: the next batch replaces every running value (the counts go to
    0; SnipMomentum's score is kept). Nothing is deleted, so buffers keep their slots."""
    for name in ("grad_count", "input_count", "input_col_count", "output_count"):
        if name in stats:
            stats[name].fill_(0)


def gathered(stats, name: str, criterion: str) -> torch.Tensor:
    """The statistic ``name`` a criterion needs, or a clear error when none was gathered."""
    value = stats.get(name)
    if value is None or value.numel() == 0:
        raise ValueError(f"{criterion} criterion: statistic {name!r} has not been gathered; "
                         f"run calibration batches first (Pruner(..., calibration_batches=N) "
                         f"or QWeight.CalibrationBatches=N)")
    return value
