"""Compaction of arbitrary torch models (plain, or with PruneCells from ``n2prune.attach``):
the groups come from a ``torch.fx`` trace (:mod:`.trace`), the rest as for INI networks
(:mod:`.shrink`): removed channels' constant contributions go into the next layer's bias when
uniform, else into a constant map a forward hook adds to its output (exact, ONNX included).

>>> small = compact_module(model, torch.zeros(1, 3, 32, 32))     # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Dict, Set

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.compact.trace import TracedGraph, trace_channel_graph


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight a forward pass uses: × the attached PruneCell's mask, if any."""
    quantizer = getattr(layer, "quantizer", None)
    weight = layer.weight.detach()
    if quantizer is not None and getattr(quantizer, "mask", torch.ones(0)).shape == weight.shape:
        return weight * quantizer.mask
    return weight


def _removed_roots(graph: TracedGraph) -> Set[int]:
    removed: Set[int] = set()
    zero: Dict[str, torch.Tensor] = {}
    for group in graph.groups():
        if group.fixed or not group.producers:
            continue
        for name, _ in group.producers:
            if name not in zero:
                weight = effective_weight(graph.model.get_submodule(name))
                zero[name] = weight.reshape(weight.shape[0], -1).eq(0).all(1)
        if all(bool(zero[name][channel]) for name, channel in group.producers):
            removed.add(graph.find(graph.atoms[group.producers[0][0]][group.producers[0][1]]))
    for name, atoms in graph.atoms.items():   # every layer keeps a channel
        roots = [graph.find(a) for a in atoms]
        if roots and all(r in removed for r in roots):
            removed.discard(roots[0])
    return removed


def compact_module(model: nn.Module, example: torch.Tensor, strict: bool = True,
                   atol: float = 1e-6) -> nn.Module:
    """A smaller copy of ``model`` computing what it computes (eval mode) on inputs shaped
    like ``example``; ``small.compaction`` says what was removed."""
    graph = trace_channel_graph(model, example, strict=strict)
    removed = _removed_roots(graph)
    keep = {name: torch.tensor([i for i, a in enumerate(atoms) if graph.find(a) not in removed],
                               dtype=torch.long) for name, atoms in graph.atoms.items()}
    keep_in = {name: torch.tensor([i for i, a in enumerate(graph.inputs[name])
                                   if graph.find(a) not in removed], dtype=torch.long)
               for name in graph.layer_nodes}
    shifts = _contributions(graph, removed, keep, example)
    small = copy.deepcopy(model)
    with torch.no_grad():
        for name in graph.layer_nodes:
            layer = small.get_submodule(name)
            _shrink_layer(layer, keep[name], keep_in[name])
        folds = {name: _fold(small.get_submodule(name), value, atol)
                 for name, value in shifts.items()}
    small.compaction = {"removed_groups": len(removed), "kept": keep, "folds": folds}
    return small


@torch.no_grad()
def _contributions(graph: TracedGraph, removed: Set[int], keep, example):
    wanted = {}
    for name in graph.layer_nodes:
        layer = graph.model.get_submodule(name)
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and keep[name].numel():
            gone = torch.tensor([graph.find(a) in removed for a in graph.inputs[name]])
            if bool(gone.any()):
                wanted[name] = gone
    captured = {}
    hooks = [graph.model.get_submodule(name).register_forward_pre_hook(
        lambda module, args, name=name: captured.__setitem__(name, args[0].detach()))
        for name in wanted]
    was_training = graph.model.training
    try:
        graph.model.eval()
        graph.model(torch.zeros_like(example[:1]))
    finally:
        graph.model.train(was_training)
        for hook in hooks:
            hook.remove()
    result = {}
    for name, gone in wanted.items():
        layer, x = graph.model.get_submodule(name), captured[name]
        weight = effective_weight(layer)
        if isinstance(layer, nn.Linear):
            y = F.linear(x * gone.to(x.dtype), weight)[0]
        else:
            y = layer._conv_forward(x * gone[None, :, None, None].to(x.dtype), weight, None)[0]
        result[name] = y[keep[name]]
    return result


def _param(old, new):
    return None if old is None else nn.Parameter(new.clone(), requires_grad=old.requires_grad)


def _shrink_layer(layer: nn.Module, keep_out: torch.Tensor, keep_in: torch.Tensor) -> None:
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        layer.weight = _param(layer.weight, layer.weight[keep_out])
        layer.bias = _param(layer.bias, layer.bias[keep_out])
        layer.running_mean = layer.running_mean[keep_out].clone()
        layer.running_var = layer.running_var[keep_out].clone()
        layer.num_features = int(keep_out.numel())
        return
    if isinstance(layer, nn.Conv2d) and layer.groups > 1:
        per_in = layer.in_channels // layer.groups
        if per_in == 1:
            new_groups, columns = int(keep_in.numel()), None
        else:
            new_groups, columns = layer.groups, keep_in[keep_in < per_in]
        layer.groups = new_groups
    else:
        columns = keep_in

    def index(t):
        t = t[keep_out]
        return t if columns is None else t[:, columns]
    layer.weight = _param(layer.weight, index(layer.weight.detach()))
    if layer.bias is not None:
        layer.bias = _param(layer.bias, layer.bias.detach()[keep_out])
    quantizer = getattr(layer, "quantizer", None)
    if quantizer is not None and getattr(quantizer, "mask", torch.ones(0)).numel():
        quantizer.mask = index(quantizer.mask).clone()
    if isinstance(layer, nn.Linear):
        layer.in_features, layer.out_features = int(keep_in.numel()), int(keep_out.numel())
    else:
        layer.in_channels, layer.out_channels = int(keep_in.numel()), int(keep_out.numel())


def _add_shift(module: nn.Module, args, output):
    return output + module.compaction_shift


def _fold(layer: nn.Module, value: torch.Tensor, atol: float) -> str:
    scale = max(float(value.abs().max()), 1.0)
    if float(value.abs().max()) <= atol * scale:
        return "none"
    mean = value.reshape(value.shape[0], -1).mean(1)
    spread = (value - mean.reshape(-1, *([1] * (value.dim() - 1)))).abs().max()
    if float(spread) <= atol * scale:
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(mean))
        layer.bias.add_(mean)
        return "bias"
    layer.register_buffer("compaction_shift", value.clone())
    layer.register_forward_hook(_add_shift)
    return "shift"
