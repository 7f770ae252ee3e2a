"""Channel groups of any torch model (attached with ``n2prune.attach`` or plain), recorded
from one real forward pass: the same atoms and union-find as the INI graph (:mod:`.groups`).

Why a recorded pass and not ``torch.fx``: symbolic tracing fails on most models people prune
(Hugging Face transformers assign into proxies, branch on arguments and on tensor values),
``torch.export`` fails on data-dependent branches and needs every op to support fake tensors,
and the autograd graph of a pass (Torch-Pruning's way) loses the arguments of views and
permutes and misses what runs without gradients. A ``TorchDispatchMode`` sees every ATen op
the pass really runs, with its real arguments and shapes, whatever the input structure (a
tensor, a tuple, keyword arguments) and whichever branch the code takes; module hooks see
the layers. So the graph is exact for the inputs of ``example`` (a model that branches on
its input shapes must be traced on the shapes it will run on).

Layers with a rule in ``LAYER_RULES`` (Linear on any ``[..., C]`` input, Conv, BatchNorm,
LayerNorm, Embedding) are seen as a whole; between them every ATen op goes through
``flow.OP_RULES``. An op no rule knows raises a ValueError naming it and the line of the
model's code that ran it (``strict=False`` keeps the channels around it instead and lists it
in ``graph.blocked``).
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from n2prune.compact.flow import OP_RULES, Flow
from n2prune.cells.channels import conv_atoms
from n2prune.compact.groups import ChannelGraph
from n2prune.registry import Registry
from n2prune.examples import run

# layer class name -> rule(graph, name, layer, x, x_flow, output) -> output flow
LAYER_RULES: Registry = Registry("layer channel rule")
_TORCH_DIR = os.path.dirname(torch.__file__)
_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Blocked:
    """An operation that kept channels: what, why, where in the model's code, which atoms."""

    op: str
    why: str
    where: str
    atoms: List[int]


@dataclass
class HeadSplit:
    """A view splitting channels into ``count`` heads of ``size``, inside ``module``."""

    module: str
    count: int
    size: int
    heads: List[int]


class TracedGraph(ChannelGraph):
    """A ChannelGraph of a recorded model: ``layer_nodes`` the layers seen (qualified name ->
    module), ``heads`` the head splits, ``blocked`` what kept channels without a rule."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.layer_nodes: Dict[str, nn.Module] = {}
        self.layer_dims: Dict[str, int] = {}
        self.heads: List[HeadSplit] = []
        self.blocked: List[Blocked] = []


class Recorder(TorchDispatchMode):
    """Follows channels through every ATen op of a forward pass (see module docstring)."""

    def __init__(self, graph: TracedGraph, strict: bool):
        super().__init__()
        self.graph, self.strict = graph, strict
        self.flows: Dict[int, Optional[Flow]] = {}
        self.alive: List[torch.Tensor] = []   # keeps ids unique while recording
        self.stack: List[str] = []
        self.in_layer = 0
        self.name = ""
        self.calls: Dict[str, int] = {}

    # -- helpers for the rules --------------------------------------------------------
    def flow(self, tensor) -> Optional[Flow]:
        return self.flows.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None

    def tie(self, a: List[int], b: List[int]) -> None:
        for x, y in zip(a, b):
            self.graph.union(x, y)

    def fix(self, atoms: List[int], why: str = "") -> None:
        self.graph.fix(atoms)

    def fixed_atoms(self, count: int, name: str) -> List[int]:
        atoms = self.graph.new(name, count)
        self.graph.fix(atoms)
        return atoms

    def split_heads(self, count: int, size: int, heads: List[int]) -> None:
        module = self.stack[-1] if self.stack else ""
        self.graph.heads.append(HeadSplit(module, count, size, heads))

    def undecided(self, why: str, tensors) -> None:
        where = _code_location()
        module = self.stack[-1] if self.stack else ""
        kind = type(self.graph.model.get_submodule(module)).__name__
        what = f"aten.{self.name} in {module} ({kind})" if module else \
            f"aten.{self.name} in {kind}"
        atoms = [a for t in tensors for a in (self.flow(t).ids if self.flow(t) else [])]
        if self.strict:
            raise ValueError(f"channel groups: cannot decide how channels flow through {what} "
                             f"({where}): {why}; pass strict=False to keep the channels "
                             f"around it")
        self.graph.fix(atoms)
        self.graph.blocked.append(Blocked(what, why, where, atoms))
        return None

    # -- the pass ---------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.in_layer:
            return out
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if any(self.flow(t) is not None for t in inputs):
            self.name = func.overloadpacket.__name__
            if self.name in OP_RULES:
                flows = OP_RULES.get(self.name)(self, args, kwargs, out)
            else:
                flows = self.undecided("no channel rule for it", inputs)
            self._store(out, flows)
        return out

    def _store(self, out, flows) -> None:
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        flows = list(flows) if isinstance(flows, (tuple, list)) else [flows] * len(outs)
        for tensor, flow in zip(outs, flows):
            if isinstance(tensor, torch.Tensor):
                self.alive.append(tensor)
                self.flows[id(tensor)] = flow

    def pre_hook(self, name: str, module: nn.Module):
        def hook(mod, args, kwargs):
            self.stack.append(name)
            if self._is_layer(module):
                self.in_layer += 1
        return hook

    def post_hook(self, name: str, module: nn.Module):
        def hook(mod, args, kwargs, output):
            self.stack.pop()
            if not self._is_layer(module):
                return None
            self.in_layer -= 1
            if self.in_layer:
                return None
            x = args[0] if args else next(iter(kwargs.values()), None)
            self.alive.append(x)
            self.calls[name] = self.calls.get(name, 0) + 1
            rule = LAYER_RULES.get(type(module).__name__)
            self._store(output, rule(self.graph, name, module, x, self.flow(x), output))
            return None
        return hook

    @staticmethod
    def _is_layer(module: nn.Module) -> bool:
        return type(module).__name__ in LAYER_RULES


def _code_location() -> str:
    """The innermost line of the model's own code on the stack."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if not path.startswith(_TORCH_DIR) and not path.startswith(_HERE):
            return f"{frame.filename}:{frame.lineno} in {frame.name}: {frame.line}"
    return "unknown location"


# ----------------------------------------------------------------------------- layer rules
def _reading(graph, name, x, flow, dim, width) -> List[int]:
    """The atoms a layer reads along ``dim``; channels elsewhere are fixed."""
    if flow is not None and flow.dim == dim and len(flow.ids) == width:
        return flow.ids
    if flow is not None:
        graph.fix(flow.ids)
    atoms = graph.new(f"{name}.input", width)
    graph.fix(atoms)
    return atoms


def _register_layer(graph, name, layer, in_atoms, out_atoms, dim) -> None:
    graph.layer_nodes[name] = layer
    graph.inputs[name] = in_atoms
    graph.atoms[name] = out_atoms
    graph.layer_dims[name] = dim


@LAYER_RULES.register("Linear")
def _linear(graph, name, layer, x, flow, output):
    in_atoms = _reading(graph, name, x, flow, x.dim() - 1, layer.in_features)
    out = graph.new(name, layer.out_features, produced=True)
    _register_layer(graph, name, layer, in_atoms, out, output.dim() - 1)
    return Flow(output.dim() - 1, out)


@LAYER_RULES.register("Conv2d")
@LAYER_RULES.register("Conv1d")
def _conv(graph, name, layer, x, flow, output):
    if layer.padding_mode != "zeros" or x.dim() != layer.weight.dim():
        return _fixed_layer(graph, name, layer, x, flow, output)
    in_atoms = _reading(graph, name, x, flow, 1, layer.in_channels)
    out = conv_atoms(graph, name, in_atoms, layer.in_channels, layer.out_channels,
                     layer.groups)
    _register_layer(graph, name, layer, in_atoms, out, 1)
    return Flow(1, out)


@LAYER_RULES.register("BatchNorm1d")
@LAYER_RULES.register("BatchNorm2d")
def _batchnorm(graph, name, layer, x, flow, output):
    in_atoms = _reading(graph, name, x, flow, 1, layer.num_features)
    out = graph.follow(name, in_atoms)
    _register_layer(graph, name, layer, in_atoms, out, 1)
    return Flow(1, out)


@LAYER_RULES.register("LayerNorm")
@LAYER_RULES.register("GroupNorm")
@LAYER_RULES.register("Embedding")
@LAYER_RULES.register("MultiheadAttention")
@LAYER_RULES.register("RMSNorm")
def _fixed_layer(graph, name, layer, x, flow, output):
    """Layers whose channels mix (normalisations) or that n2prune does not shrink."""
    if flow is not None:
        graph.fix(flow.ids)
    first = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(first, torch.Tensor) or first.dim() < 2:
        return None
    dim = first.dim() - 1 if not isinstance(layer, nn.GroupNorm) else 1
    atoms = graph.new(name, first.shape[dim])
    graph.fix(atoms)
    return [Flow(dim, atoms)] + [None] * (len(output) - 1) \
        if isinstance(output, (tuple, list)) else Flow(dim, atoms)


# ----------------------------------------------------------------------------- public
def trace_channel_graph(model: nn.Module, example, strict: bool = True) -> TracedGraph:
    """Record one forward pass of ``model`` (eval mode, no gradients) on ``example`` (a
    tensor, a tuple of arguments or a dict of keyword arguments) and build its channel
    atoms and groups."""
    graph = TracedGraph(model)
    recorder = Recorder(graph, strict)
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(recorder.pre_hook(name, module),
                                                        with_kwargs=True))
        handles.append(module.register_forward_hook(recorder.post_hook(name, module),
                                                    with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), recorder:
            output = run(model, example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    leaves = tree_leaves(output) if not hasattr(output, "to_tuple") else \
        tree_leaves(output.to_tuple())
    for leaf in leaves:
        flow = recorder.flow(leaf)
        if flow is not None:
            graph.fix(flow.ids)
    for name, count in recorder.calls.items():
        if count > 1 and name in graph.atoms:   # a layer used twice is two places at once
            graph.fix(graph.atoms[name])
            graph.fix(graph.inputs[name])
    return graph
