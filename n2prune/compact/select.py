"""Choosing groups of a recorded torch model to prune: per-group scores from any channel
criterion, the lowest groups per layer (attention heads, FFN neurons, conv channels), and
zeroing them as a channel mask would.

A group's *layer* is its first producer (the query projection for a head, the up projection
for an FFN neuron), so "2 heads and 25 % of the FFN neurons of every block" is two calls.

>>> graph = trace_channel_graph(model, example)                            # doctest: +SKIP
>>> scores = group_scores(graph, activation_scores(model, [example]))       # doctest: +SKIP
>>> zero_groups(model, lowest_per_layer(graph, scores, count=2, layers="query"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Union

import torch
from torch import nn

from n2prune.compact.baking import used_weight
from n2prune.compact.groups import ChannelGroup
from n2prune.compact.trace import TracedGraph
from n2prune.examples import run

ChannelScores = Union[Dict[str, torch.Tensor], Callable[[str, nn.Module], torch.Tensor]]


def weight_norms(name: str, layer: nn.Module) -> torch.Tensor:
    """L1 norm of each output row of a layer's (masked) weight."""
    weight = used_weight(layer)
    return weight.reshape(weight.shape[0], -1).abs().sum(1)


@torch.no_grad()
def activation_scores(model: nn.Module, examples: Iterable,
                      layers: Optional[List[str]] = None) -> Dict[str, torch.Tensor]:
    """Data-driven channel scores: mean |output| of each output channel of every Linear /
    Conv (or of ``layers``) over ``examples`` (each a tensor, tuple or keyword dict)."""
    wanted = {name: m for name, m in model.named_modules()
              if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and
              (layers is None or name in layers)}
    sums: Dict[str, torch.Tensor] = {}

    def hook(name, dim):
        def record(module, args, output):
            moved = output.detach().abs().movedim(dim, -1)
            total = moved.reshape(-1, moved.shape[-1]).mean(0)
            sums[name] = sums.get(name, 0) + total
        return record
    handles = [m.register_forward_hook(hook(n, -1 if isinstance(m, nn.Linear) else 1))
               for n, m in wanted.items()]
    was_training, count = model.training, 0
    try:
        model.eval()
        for example in examples:
            run(model, example)
            count += 1
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if not count:
        raise ValueError("activation_scores: examples is empty")
    return {name: total / count for name, total in sums.items()}


def group_scores(graph: TracedGraph, channel_scores: Optional[ChannelScores] = None,
                 reduce: str = "sum") -> Dict[int, float]:
    """One score per removable group (larger = keep): its producers' channel scores
    (a dict ``{layer: per-channel tensor}`` or a function ``(name, layer) -> tensor``;
    default :func:`weight_norms`) summed, or ``reduce="max"``/``"mean"``."""
    if reduce not in ("sum", "max", "mean"):
        raise ValueError(f"reduce must be 'sum', 'max' or 'mean', got {reduce!r}")
    if channel_scores is None:
        channel_scores = weight_norms
    cache: Dict[str, torch.Tensor] = {}
    result: Dict[int, float] = {}
    for group in graph.groups():
        if group.fixed or not group.producers:
            continue
        values = []
        for name, channel in group.producers:
            if name not in cache:
                cache[name] = (channel_scores[name] if isinstance(channel_scores, dict) else
                               channel_scores(name, graph.layer_nodes[name])).detach().float()
            values.append(cache[name].reshape(-1)[channel])
        stacked = torch.stack(values)
        result[group.index] = float(getattr(stacked, reduce)())
    return result


def lowest_per_layer(graph: TracedGraph, scores: Dict[int, float],
                     fraction: Optional[float] = None, count: Optional[int] = None,
                     layers: str = "") -> List[ChannelGroup]:
    """The ``count`` (or ``fraction``, rounded down) lowest-scoring groups of each layer
    whose name contains ``layers`` (a group's layer: its first producer)."""
    if (fraction is None) == (count is None):
        raise ValueError("lowest_per_layer: give exactly one of fraction and count")
    if fraction is not None and not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    by_layer: Dict[str, List[ChannelGroup]] = {}
    for group in graph.groups():
        if group.index in scores and layers in group.producers[0][0]:
            by_layer.setdefault(group.producers[0][0], []).append(group)
    chosen: List[ChannelGroup] = []
    for groups in by_layer.values():
        take = count if count is not None else int(len(groups) * fraction)
        if take >= len(groups):
            raise ValueError(f"lowest_per_layer: {groups[0].producers[0][0]} has "
                             f"{len(groups)} groups; removing {take} would empty it")
        chosen += sorted(groups, key=lambda g: (scores[g.index], g.index))[:take]
    return chosen


@torch.no_grad()
def zero_groups(model: nn.Module, groups: Iterable[ChannelGroup]) -> None:
    """Prune ``groups`` as a channel mask would: zero their producers' rows (the attached
    PruneCell's mask rows, else the weight rows)."""
    for group in groups:
        if group.fixed:
            raise ValueError(f"group {group.index} ({group.members[0][0]} channel "
                             f"{group.members[0][1]}, ...) is fixed and cannot be pruned")
        for name, channel in group.producers:
            layer = model.get_submodule(name)
            mask = getattr(getattr(layer, "quantizer", None), "mask", None)
            if isinstance(mask, torch.Tensor) and mask.shape == layer.weight.shape:
                mask[channel] = 0
            else:
                layer.weight[channel] = 0
