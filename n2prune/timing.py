"""Latency of forward passes measured the way a noisy shared machine allows: rounds that run
every network once, in balanced orders (each first, and right after each other, equally
often), each timing enough calls to last ``min_seconds``; ratios are taken within a round.
Used by compaction's cost report (:mod:`n2prune.compact.costs`), the sensitivity budget's
latency model and the sparse kernels' choice per layer (:mod:`n2prune.sparse.timing`).

>>> balanced_orders(3)
[[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 2, 1], [1, 0, 2]]
"""

from __future__ import annotations

import statistics
import time
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from n2prune.examples import run

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@torch.no_grad()
def compare_latency(nets: Mapping[str, nn.Module], input_shape: Optional[Sequence[int]] = None,
                    batch: int = 1, repeats: int = 15, threads: Optional[int] = None,
                    warmup: int = 3, min_seconds: float = 0.02,
                    clock: str = "wall", example=None) -> Dict[str, float]:
    """Median seconds per forward pass of each network on a ``(batch, *input_shape)`` input
    (or on ``example``: a tensor, a tuple of arguments or a dict of keyword arguments),
    repeats alternating between the networks (:func:`latency_samples`). ``threads`` sets
    torch's intra-op threads for the measurement (restored after). Each repeat runs enough
    passes to last ``min_seconds``. ``clock="cpu"`` counts this process's CPU time instead of
    wall time: with one thread, the latency a process would see alone on its core, much less
    disturbed by other processes (with more threads it adds theirs up)."""
    samples = latency_samples(nets, input_shape, batch, repeats, threads, warmup, min_seconds,
                              clock, example)
    return {name: statistics.median(values) for name, values in samples.items()}


@torch.no_grad()
def latency_samples(nets: Mapping[str, nn.Module], input_shape: Optional[Sequence[int]] = None,
                    batch: int = 1, repeats: int = 15, threads: Optional[int] = None,
                    warmup: int = 3, min_seconds: float = 0.02,
                    clock: str = "wall", example=None) -> Dict[str, List[float]]:
    """Seconds per forward pass of each network in each of ``repeats`` rounds (arguments as
    :func:`compare_latency`). Each round runs every network once, in the orders of
    :func:`balanced_orders`: what ran just before slows a network down (MiniLM compacted ran
    about 2 % slower right after the dense model than after a model of its own size), so each
    network runs first and right after each other one equally often (exactly so when
    ``repeats`` is a multiple of the number of orders). Ratios of two networks' values in the
    same round cancel the machine's slow drifts."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    now = CLOCKS[clock]
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0)) \
        if example is None else example
    modes = [(module, module.training) for net in nets.values() for module in net.modules()]
    orders = balanced_orders(len(nets))
    names = list(nets)
    try:
        for net in nets.values():
            net.eval()
            for _ in range(warmup):
                run(net, x)
        loops = {name: _loops(net, x, min_seconds) for name, net in nets.items()}
        times: Dict[str, List[float]] = {name: [] for name in nets}
        for round_ in range(repeats):
            for name in (names[i] for i in orders[round_ % len(orders)]):
                start = now()
                for _ in range(loops[name]):
                    run(nets[name], x)
                times[name].append((now() - start) / loops[name])
    finally:
        torch.set_num_threads(previous)
        for module, training in modes:   # every submodule's own mode, as found
            module.training = training
    return times


def balanced_orders(count: int) -> List[List[int]]:
    """Orders of ``count`` items in which each item comes first, and right after each other
    item, equally often (a Williams Latin square: ``count`` orders, twice that for an odd
    ``count``)."""
    first = [0] + [(i + 1) // 2 if i % 2 else count - i // 2 for i in range(1, count)]
    orders = [[(item + shift) % count for item in first] for shift in range(count)]
    return orders + [order[::-1] for order in orders] if count % 2 and count > 1 else orders


def _loops(net: nn.Module, x: torch.Tensor, min_seconds: float) -> int:
    start = time.perf_counter()
    run(net, x)
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, int(min_seconds / once))
