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
* else into a ``shift`` map added before the activation (``ShiftedConv``/``ShiftedFc``:
  exact in torch and ONNX, but not expressible in N2D2's INI; see ``compact.ini_writer``).

>>> small = compact(net)                                  # doctest: +SKIP
>>> torch.allclose(small(x), net(x), atol=1e-5)          # doctest: +SKIP
True
"""

from __future__ import annotations

import copy
from typing import Dict, Set

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.conv import Conv
from n2prune.cells.fc import Fc
from n2prune.compact.groups import ChannelGraph, channel_graph
from n2prune.cells.kinds import kind_of
from n2prune.cells.shrinkers import Plan
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


# ----------------------------------------------------------------------------- linear parts
def conv_linear(cell: Conv, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """What ``Conv.forward`` computes before bias and activation."""
    crop, stride, padding, dilation = cell._geometry
    if crop is not None:
        x = F.pad(x, crop)
    return F.conv2d(x, weight, None, stride, padding, dilation, cell.groups)


class ShiftedConv(Conv):
    """A Conv whose removed input channels left a position-dependent constant ``shift``."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        y = conv_linear(self, x, self.effective_weight()) + self.shift
        if self.bias is not None:
            y = y + self.bias[:, None, None]
        return self.activate(y, owned=True)


class ShiftedFc(Fc):
    """An Fc whose removed input channels left a constant ``shift`` and which has no bias."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        flat = [x.reshape(x.shape[0], -1) for x in inputs]
        x = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
        y = F.linear(x, self.effective_weight(), self.bias) + self.shift
        return self.activate(y, owned=True)


@torch.no_grad()
def removed_contributions(net, graph: ChannelGraph, removed: Set[int],
                          plan: Plan) -> Dict[str, torch.Tensor]:
    """For each Conv/Fc reading removed channels: their contribution to its kept outputs
    (``[O', H, W]`` for Conv, ``[O']`` for Fc), from one forward pass on a zero input."""
    wanted = {}
    for name, cell in net.cells.items():
        if isinstance(cell, (Conv, Fc)):
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
        keep = plan.keep_out[name]
        if isinstance(cell, Fc):
            x = torch.cat([t.reshape(1, -1) for t in inputs], dim=1)
            sizes = [t[0].numel() // t.shape[1] for t in inputs]
            column_gone = torch.cat([g.repeat_interleave(s) for g, s in
                                     zip(gone.split([t.shape[1] for t in inputs]), sizes)])
            y = F.linear(x * column_gone, cell.effective_weight())[0]
        else:
            x = torch.cat(inputs, dim=1) if len(inputs) > 1 else inputs[0]
            y = conv_linear(cell, x * gone[None, :, None, None], cell.effective_weight())[0]
        result[name] = y[keep]
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
        bn = net.cells[readers[0]]
        if isinstance(bn, BatchNorm) and net.info[readers[0]].inputs == [name]:
            bn.running_mean.sub_(mean)
            return "batchnorm"
    cell.__class__ = ShiftedConv if isinstance(cell, Conv) else ShiftedFc
    cell.register_buffer("shift", value.clone() if isinstance(cell, Conv) else value[None])
    return "shift"
