"""Compaction of arbitrary torch models (plain, or with PruneCells from ``n2prune.attach``):
the groups come from a recorded forward pass (:mod:`.trace`); a group goes when all its
producer rows are zero. Removed channels' constant contributions go into the next layer's
bias when uniform, else into a constant map a forward hook adds to its output (exact, ONNX
included). Attention modules get their head count updated (``HEAD_ATTRIBUTES``).

>>> small = compact_module(model, torch.zeros(1, 3, 32, 32))     # doctest: +SKIP
"""

from __future__ import annotations

import copy
import warnings
from typing import Dict, List, Set

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_leaves

from n2prune.compact.baking import used_weight
from n2prune.compact.hf import is_hf_model, record_pruned_heads
from n2prune.compact.trace import TracedGraph, trace_channel_graph
from n2prune.examples import run
from n2prune.compact.widths import round_widths

# attributes holding a head count, and those holding count × head size
HEAD_ATTRIBUTES = ("num_heads", "num_attention_heads", "n_heads", "n_head", "heads",
                   "num_key_value_heads", "num_kv_heads")
WIDTH_ATTRIBUTES = ("all_head_size", "inner_dim", "head_width")


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight a forward pass uses: × the attached PruneCell's mask, if any."""
    return used_weight(layer)


def zero_producers(graph: TracedGraph) -> Dict[str, torch.Tensor]:
    """Per producing layer, a bool per output channel: its effective weight row is zero."""
    zero: Dict[str, torch.Tensor] = {}
    for name, layer in graph.layer_nodes.items():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            weight = effective_weight(layer)
            zero[name] = weight.reshape(weight.shape[0], -1).eq(0).all(1)
    return zero


def removed_roots(graph: TracedGraph, round_to: int = 1) -> Set[int]:
    """Roots of the groups whose producers are all zero; every layer keeps a channel, and
    with ``round_to=N`` a multiple of N where its width allows (zero groups kept back)."""
    if not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be a positive integer, got {round_to!r}")
    zero = zero_producers(graph)
    removed: Set[int] = set()
    for group in graph.groups():
        if group.fixed or not group.producers:
            continue
        if all(bool(zero[name][channel]) for name, channel in group.producers):
            removed.add(graph.find(graph.atoms[group.producers[0][0]][group.producers[0][1]]))
    for name, atoms in graph.atoms.items():
        roots = [graph.find(a) for a in atoms]
        if roots and all(r in removed for r in roots):
            removed.discard(roots[0])
    if round_to > 1:
        round_widths(graph, removed, round_to)
    return removed


def compact_module(model: nn.Module, example, strict: bool = True, atol: float = 1e-6,
                   round_to: int = 1, check: bool = True) -> nn.Module:
    """A smaller copy of ``model`` computing what it computes (eval mode) on inputs like
    ``example`` (a tensor, a tuple of arguments or a dict of keyword arguments);
    ``small.compaction`` says what was removed and which layers were left alone and why.
    ``check`` runs both on ``example`` and raises if they differ."""
    graph = trace_channel_graph(model, example, strict=strict)
    removed = removed_roots(graph, round_to)
    keep = {name: _kept(graph, atoms, removed) for name, atoms in graph.atoms.items()}
    keep_in = {name: _kept(graph, graph.inputs[name], removed) for name in graph.layer_nodes}
    shifts = _contributions(graph, removed, keep, example)
    small = copy.deepcopy(model)
    with torch.no_grad():
        for name in graph.layer_nodes:
            _shrink_layer(small.get_submodule(name), keep[name], keep_in[name])
        folds = {name: _fold(small.get_submodule(name), value, graph.layer_dims[name], atol)
                 for name, value in shifts.items()}
    heads = _update_heads(small, graph, removed)
    if heads and is_hf_model(small):
        record_pruned_heads(small, heads)
    left_alone = _left_alone(graph)
    small.compaction = {"removed_groups": len(removed), "kept": keep, "folds": folds,
                        "heads": heads, "left_alone": left_alone}
    if left_alone:
        warnings.warn("compact: channels kept where no rule could decide: " + "; ".join(
            f"{b['op']} ({b['where']}): {b['why']}; layers left alone: "
            f"{', '.join(b['layers']) or 'none'}" for b in left_alone), stacklevel=3)
    if check:
        _check(model, small, example)
    return small


def _kept(graph, atoms, removed) -> torch.Tensor:
    return torch.tensor([i for i, a in enumerate(atoms) if graph.find(a) not in removed],
                        dtype=torch.long)


def _left_alone(graph: TracedGraph) -> List[dict]:
    result = []
    for blocked in graph.blocked:
        roots = {graph.find(a) for a in blocked.atoms}
        layers = [name for name, atoms in graph.atoms.items()
                  if any(graph.find(a) in roots for a in atoms)]
        result.append({"op": blocked.op, "why": blocked.why, "where": blocked.where,
                       "layers": layers})
    return result


def _update_heads(small: nn.Module, graph: TracedGraph, removed: Set[int]) -> Dict[str, dict]:
    """Head counts of attention modules whose heads were removed: the attributes in
    ``HEAD_ATTRIBUTES`` equal to the old count (``WIDTH_ATTRIBUTES``: count × size)."""
    result: Dict[str, dict] = {}
    for split in graph.heads:
        gone = [h for h, atom in enumerate(split.heads) if graph.find(atom) in removed]
        if not gone:
            continue
        module, before = small.get_submodule(split.module), \
            graph.model.get_submodule(split.module)   # compared before: GQA has two counts
        kept = split.count - len(gone)
        for attr in HEAD_ATTRIBUTES:
            if getattr(before, attr, None) == split.count:
                setattr(module, attr, kept)
        for attr in WIDTH_ATTRIBUTES:
            if getattr(before, attr, None) == split.count * split.size:
                setattr(module, attr, kept * split.size)
        result.setdefault(split.module, {"heads": split.count, "removed": gone,
                                         "head_size": split.size})
    return result


def _check(model, small, example) -> None:
    was = (model.training, small.training)
    model.eval(), small.eval()
    try:
        with torch.no_grad():
            want, got = run(model, example), run(small, example)
    finally:
        model.train(was[0]), small.train(was[1])
    flat = [(a, b) for a, b in zip(_leaves(want), _leaves(got))
            if isinstance(a, torch.Tensor) and a.is_floating_point()]
    for a, b in flat:
        if a.shape != b.shape or not torch.allclose(a, b, atol=1e-4, rtol=1e-4):
            diff = "shape " + str(tuple(b.shape)) if a.shape != b.shape else \
                f"max difference {float((a - b).abs().max()):.3g}"
            raise ValueError(f"compact: the compacted {type(model).__name__} differs from the "
                             f"original on the example ({diff}): its code has a width the "
                             f"trace cannot update (a hard-coded split size or head count)")


def _leaves(output):
    return tree_leaves(output.to_tuple() if hasattr(output, "to_tuple") else output)


@torch.no_grad()
def _contributions(graph: TracedGraph, removed: Set[int], keep, example):
    """What the removed input channels of each kept layer add to its output (they are
    constants), from one pass on ``example``."""
    wanted = {}
    for name, layer in graph.layer_nodes.items():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)) and keep[name].numel():
            gone = torch.tensor([graph.find(a) in removed for a in graph.inputs[name]])
            if bool(gone.any()):
                wanted[name] = gone
    if not wanted:
        return {}
    captured = {}
    hooks = [graph.model.get_submodule(name).register_forward_pre_hook(
        lambda module, args, name=name: captured.__setitem__(name, args[0].detach()))
        for name in wanted]
    was_training = graph.model.training
    try:
        graph.model.eval()
        run(graph.model, example)
    finally:
        graph.model.train(was_training)
        for hook in hooks:
            hook.remove()
    result = {}
    for name, gone in wanted.items():
        layer, x = graph.model.get_submodule(name), captured[name]
        weight = effective_weight(layer)
        if isinstance(layer, nn.Linear):
            y = F.linear(x * gone.to(x.dtype), weight)[..., keep[name]]
        else:
            shape = [1, -1] + [1] * (x.dim() - 2)
            y = layer._conv_forward(x * gone.reshape(shape).to(x.dtype), weight, None)
            y = y[:, keep[name]]
        result[name] = y
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
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)) and layer.groups > 1:
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


def _fold(layer: nn.Module, value: torch.Tensor, dim: int, atol: float) -> str:
    """Fold a removed-channel contribution (the whole batch, channels on ``dim``) into the
    bias when it is the same everywhere, else into a per-sample map added after the layer."""
    channels = value.movedim(dim, -1).reshape(-1, value.shape[dim])
    scale = max(float(value.abs().max()), 1.0)
    if float(value.abs().max()) <= atol * scale:
        return "none"
    mean = channels.mean(0)
    if float((channels - mean).abs().max()) <= atol * scale:
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(mean))
        layer.bias.add_(mean)
        return "bias"
    sample = value[:1]
    if float((value - sample).abs().max()) > atol * scale:
        raise ValueError(f"compact: removed channels feeding {type(layer).__name__} are not "
                         f"constant over the batch (their producers' rows are zero but "
                         f"something else feeds them)")
    layer.register_buffer("compaction_shift", sample[0].clone())
    layer.register_forward_hook(_add_shift)
    return "shift"
