"""Compaction: a physically smaller network that computes what the masked one computes.

A group is *pruned* when every producer channel in it (a Conv or Fc output row) has an
all-zero effective weight (``PruneCell`` mask, connection map and weight together). Its
channels then carry values that do not depend on the input (biases, BatchNorm shifts passed
through activations), so removing them exactly needs their contribution to the kept channels
of the cells reading them: it is computed once, by a forward pass, and folded

* into the reader's bias when it is the same at every position (always for Fc, and for Conv
  away from zero padding),
* else, when the reader has no bias and no activation and a BatchNorm alone reads it, into
  that BatchNorm's running mean,
* else into a ``shift`` map added before the activation (the kind's ``shifted`` class,
  ``ShiftedConv``/``ShiftedFc``: exact in torch and ONNX, but not expressible in N2D2's INI;
  see ``compact.ini_writer``).

Each step asks the cell's :class:`~n2prune.cells.kinds.CellKind`: its ``shrinker``, its
``shifted`` class (which computes the contribution and holds the shift map), and the reader's
``absorb_input_offset`` (BatchNorm's running mean).

>>> small = compact(net)                                  # doctest: +SKIP
>>> torch.allclose(small(x), net(x), atol=1e-5)          # doctest: +SKIP
True
"""

from __future__ import annotations

import copy
from typing import Dict, Set

import torch
from torch import nn

from n2prune.cells.kinds import kind_of
from n2prune.cells.shrinkers import Plan
from n2prune.compact.groups import ChannelGraph, channel_graph
from n2prune.compact.widths import round_widths

# ----------------------------------------------------------------------------- detection
def zero_rows(cell: nn.Module) -> torch.Tensor:
    """Bool per output channel: its effective weight row is all zero."""
    weight = cell.effective_weight().detach()
    return weight.reshape(weight.shape[0], -1).eq(0).all(1)


def pruned_roots(net, graph: ChannelGraph) -> Set[int]:
    """Roots of the groups whose producers are all zero (and that may go)."""
    zero: Dict[str, torch.Tensor] = {}
    removed: Set[int] = set()
    for group in graph.groups():
        if group.fixed or not group.producers:
            continue
        for name, _ in group.producers:
            if name not in zero:
                zero[name] = zero_rows(net.cells[name])
        if all(bool(zero[name][channel]) for name, channel in group.producers):
            removed.add(graph.find(graph.atoms[group.members[0][0]][group.members[0][1]]))
    changed = True
    while changed:  # every cell keeps at least one channel
        changed = False
        for name, atoms in graph.atoms.items():
            roots = [graph.find(a) for a in atoms]
            if roots and all(r in removed for r in roots):
                removed.discard(roots[0])
                changed = True
    multiples = {name: int(getattr(getattr(cell, "quantizer", None), "round_to", 1) or 1)
                 for name, cell in net.cells.items()}
    if any(step > 1 for step in multiples.values()):  # QWeight.PruningRoundTo
        round_widths(graph, removed, multiples, [n for n in graph.atoms if n in multiples])
    return removed


def make_plan(net, graph: ChannelGraph, removed: Set[int]) -> Plan:
    plan = Plan(removed_groups=len(removed))
    for name, info in net.info.items():
        kept_out = [i for i, a in enumerate(graph.atoms[name]) if graph.find(a) not in removed]
        kept_in = [i for i, a in enumerate(graph.inputs[name]) if graph.find(a) not in removed]
        plan.keep_out[name] = torch.tensor(kept_out, dtype=torch.long)
        plan.keep_in[name] = torch.tensor(kept_in, dtype=torch.long)
        plan.kept_per_input[name] = [sum(graph.find(a) not in removed
                                         for a in graph.atoms[p]) for p in info.inputs]
        plan.input_hw[name] = [h * w for _, h, w in info.input_shapes]
        plan.channels_per_input[name] = [len(graph.atoms[p]) for p in info.inputs]
    return plan


@torch.no_grad()
def removed_contributions(net, graph: ChannelGraph, removed: Set[int],
                          plan: Plan) -> Dict[str, torch.Tensor]:
    """For each cell with a ``shifted`` kind reading removed channels: their contribution to
    its kept outputs (``[O', H, W]`` for Conv, ``[O']`` for Fc), from one forward pass on a
    zero input."""
    wanted = {}
    for name in net.cells:
        if kind_of(net.info[name].type).shifted is not None:
            gone = [graph.find(a) in removed for a in graph.inputs[name]]
            if any(gone) and plan.keep_out[name].numel():
                wanted[name] = torch.tensor(gone)
    if not wanted:
        return {}
    captured: Dict[str, torch.Tensor] = {}
    hooks = [net.cells[name].register_forward_pre_hook(
        lambda module, inputs, name=name: captured.__setitem__(name, [x.detach() for x in inputs]))
        for name in wanted]
    was_training = net.training
    try:
        net.eval()
        net(torch.zeros(1, *net.input_shape))
    finally:
        net.train(was_training)
        for hook in hooks:
            hook.remove()
    result = {}
    for name, gone in wanted.items():
        cell, inputs = net.cells[name], captured[name]
        y = kind_of(net.info[name].type).shifted.contribution(cell, inputs, gone)
        result[name] = y[plan.keep_out[name]]
    return result


# ----------------------------------------------------------------------------- public
def compact(net, atol: float = 1e-6):
    """A physically smaller copy of ``net``: the channel groups whose producers are all zero
    are removed, with the weights that only fed them; outputs equal ``net``'s (eval mode).
    ``net.compaction`` on the copy says what was removed."""
    graph = channel_graph(net)
    removed = pruned_roots(net, graph)
    plan = make_plan(net, graph, removed)
    contributions = removed_contributions(net, graph, removed, plan)
    small = copy.deepcopy(net)
    for name, cell in small.cells.items():
        shrinker = kind_of(small.info[name].type).shrinker
        if shrinker is not None:
            shrinker(cell, plan, name)
        _update_info(small, name, plan)
        if _is_identity(getattr(cell, "activation", None)):
            cell.activation = None   # Linear without clipping: one module call less per cell
    folds = {name: _fold(small, graph, name, value, atol)
             for name, value in contributions.items()}
    small.compaction = {
        "removed_groups": len(removed), "folds": folds, "kept": dict(plan.keep_out),
        "channels_before": {n: net.info[n].output_shape[0] for n in net.cells},
        "inputs_before": {n: [c for c, _, _ in net.info[n].input_shapes] for n in net.cells}}
    return small


def _update_info(net, name: str, plan: Plan) -> None:
    info = net.info[name]
    info.input_shapes = [(kept, h, w) for kept, (_, h, w)
                         in zip(plan.kept_per_input[name], info.input_shapes)]
    _, h, w = info.output_shape
    info.output_shape = (int(plan.keep_out[name].numel()), h, w)


def _is_identity(activation) -> bool:
    return activation is None or (type(activation).__name__ == "Linear"
                                  and not getattr(activation, "clipping", 0))


@torch.no_grad()
def _fold(net, graph: ChannelGraph, name: str, value: torch.Tensor, atol: float) -> str:
    """Add a removed-channel contribution to ``name``; returns how ("none", "bias",
    "batchnorm", "shift")."""
    cell = net.cells[name]
    scale = max(float(value.abs().max()), 1.0) if value.numel() else 1.0
    if value.numel() == 0 or float(value.abs().max()) <= atol * scale:
        return "none"
    mean = value.reshape(value.shape[0], -1).mean(1)
    uniform = bool((value - mean.reshape(-1, *([1] * (value.dim() - 1)))).abs().max()
                   <= atol * scale)
    if uniform and cell.bias is not None:
        cell.bias.add_(mean)
        return "bias"
    readers = graph.readers.get(name, [])
    if uniform and _is_identity(cell.activation) and len(readers) == 1:
        absorb = kind_of(net.info[readers[0]].type).absorb_input_offset
        if absorb is not None and net.info[readers[0]].inputs == [name]:
            absorb(net.cells[readers[0]], mean)
            return "batchnorm"
    kind_of(net.info[name].type).shifted.attach_shift(cell, value)
    return "shift"
