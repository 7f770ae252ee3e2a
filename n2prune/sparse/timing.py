"""Per-layer timing on real inputs: capture each layer's input in one forward pass of the
example, then time the dense layer against sparse candidates on it, alternating.

Timings on a shared machine are noisy, so each round runs every candidate once (in balanced
orders, :mod:`n2prune.timing`) and the speed-up of a candidate is the median over rounds of dense
time / candidate time measured in the same round, never a ratio of two separate medians.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn

from n2prune.examples import run
from n2prune.timing import latency_samples

#: A round times each candidate over at least this many seconds (repeating small layers).
MIN_SECONDS = 2e-4


def capture_inputs(model: nn.Module, layers: Dict[str, nn.Module],
                   example: Any) -> Tuple[Dict[str, Tuple[Any, ...]], Any]:
    """Each named layer's positional inputs (cloned) during one ``model(example)`` pass, and
    the model's output."""
    seen: Dict[str, Tuple[torch.Tensor, ...]] = {}
    handles = []

    def recorder(name: str) -> Callable:
        def hook(module: nn.Module, args: Tuple) -> None:
            if name not in seen:   # a layer called twice is timed on its first input
                seen[name] = tuple(a.detach().clone() if torch.is_tensor(a) else a
                                   for a in args)
        return hook

    for name, layer in layers.items():
        handles.append(layer.register_forward_pre_hook(recorder(name)))
    try:
        with torch.no_grad():
            output = run(model, example)
    finally:
        for handle in handles:
            handle.remove()
    return seen, output


def time_candidates(candidates: Sequence[nn.Module], inputs: Tuple[Any, ...],
                    rounds: int) -> Tuple[List[float], List[float]]:
    """Median seconds per call of each candidate, and the median speed-up of each over the
    first (the dense layer), from ``rounds`` rounds on ``inputs`` in balanced orders
    (:func:`n2prune.timing.latency_samples`)."""
    samples = latency_samples({str(i): module for i, module in enumerate(candidates)},
                              example=tuple(inputs), repeats=rounds, warmup=1,
                              min_seconds=MIN_SECONDS)
    times = list(samples.values())
    medians = [statistics.median(row) for row in times]
    speedups = [statistics.median(d / t for d, t in zip(times[0], row)) for row in times]
    return medians, speedups
