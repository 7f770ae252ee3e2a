"""Channel groups of an arbitrary torch model (attached with ``n2prune.attach`` or plain), from
a ``torch.fx`` trace; the same atoms and union-find as the INI graph (:mod:`.groups`).

Every traced tensor with a channel dimension (dim 1: NCHW maps and (N, features) vectors)
gets one atom per channel. ``nn.Conv2d``/``nn.Linear`` make new atoms (depthwise and grouped
convs as in the INI rules), element-wise operations between two tensors tie their channels,
``torch.cat(dim=1)`` concatenates, a flatten turns each channel into a block of features, and
shape-keeping layers and functions (BatchNorm, activations, pooling, dropout...) pass them
through. An operation the tracer cannot place raises a ValueError naming the node and its
target (``strict=False`` fixes its channels instead, which is always safe).
"""

from __future__ import annotations

import operator
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import fx, nn

from n2prune.compact.groups import ChannelGraph, conv_atoms

PASS_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid,
                nn.Tanh, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.ELU, nn.Dropout,
                nn.Dropout2d, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool2d, nn.ZeroPad2d, nn.Upsample)
PASS_FUNCTIONS = {F.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.hardswish, F.sigmoid,
                  F.dropout, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
                  F.adaptive_max_pool2d, F.interpolate, F.pad, torch.relu, torch.sigmoid,
                  torch.tanh, F.batch_norm}
PASS_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "detach", "float",
                "to"}
ELEMENTWISE = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd,
               operator.imul, torch.add, torch.sub, torch.mul, torch.div, torch.maximum,
               torch.minimum}
ELEMENTWISE_METHODS = {"add", "add_", "sub", "mul", "mul_", "div"}


class TracedGraph(ChannelGraph):
    """A ChannelGraph of a traced model: ``node_atoms`` per fx node, ``modules`` the conv,
    linear and BatchNorm layers by qualified name with their input and output nodes."""

    def __init__(self, model: nn.Module, graph_module: fx.GraphModule):
        super().__init__()
        self.model, self.graph_module = model, graph_module
        self.node_atoms: Dict[str, Optional[List[int]]] = {}
        self.layer_nodes: Dict[str, fx.Node] = {}


def trace_channel_graph(model: nn.Module, example: torch.Tensor,
                        strict: bool = True) -> TracedGraph:
    """Trace ``model`` with ``torch.fx`` and build its channel atoms and groups."""
    try:
        traced = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, ... naming the operation
        raise ValueError(f"{type(model).__name__}: torch.fx cannot trace it, so channel "
                         f"groups cannot be decided: {str(exc).splitlines()[0]}") from None
    from torch.fx.passes.shape_prop import ShapeProp
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(traced).propagate(example)
    finally:
        model.train(was_training)
    graph = TracedGraph(model, traced)
    calls: Dict[str, int] = {}
    for node in traced.graph.nodes:
        graph.node_atoms[node.name] = _atoms_of(graph, node, strict, calls)
    for name, count in calls.items():
        if count > 1:   # a layer used twice: its channels are not one place in the graph
            graph.fix(graph.atoms.get(name, []))
    return graph


def _shape(node: fx.Node):
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _tensor_args(graph: TracedGraph, node: fx.Node) -> List[fx.Node]:
    return [a for a in node.all_input_nodes if graph.node_atoms.get(a.name) is not None]


def _atoms_of(graph: TracedGraph, node: fx.Node, strict: bool, calls: Dict[str, int]):
    shape = _shape(node)
    inputs = _tensor_args(graph, node)
    if node.op == "placeholder":
        atoms = graph.new(node.name, shape[1]) if shape and len(shape) > 1 else None
        graph.fix(atoms or [])
        return atoms
    if node.op == "output":
        for parent in inputs:
            graph.fix(graph.node_atoms[parent.name])
        return None
    if shape is None or len(shape) < 2:
        if inputs and node.op != "get_attr":
            return _undecided(graph, node, inputs, strict, "its result has no channel dim")
        return None
    if node.op == "get_attr":
        return None
    first = graph.node_atoms[inputs[0].name] if inputs else None
    if node.op == "call_module":
        module = graph.model.get_submodule(node.target)
        calls[node.target] = calls.get(node.target, 0) + 1
        return _module_atoms(graph, node, module, first, inputs, strict)
    target = node.target
    if (node.op == "call_function" and target in PASS_FUNCTIONS) or \
            (node.op == "call_method" and target in PASS_METHODS):
        return _follow(graph, node, first, shape, inputs, strict)
    if (node.op == "call_function" and target in ELEMENTWISE) or \
            (node.op == "call_method" and target in ELEMENTWISE_METHODS):
        return _elementwise(graph, node, inputs, shape, strict)
    if node.op == "call_function" and target is torch.cat:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim in (1, 1 - len(shape)):
            return [a for part in node.args[0] for a in graph.node_atoms[part.name]]
        return _undecided(graph, node, inputs, strict, f"concatenation along dim {dim}")
    if _is_flatten(node, shape, inputs):
        return _flatten(graph, node, first, _shape(inputs[0]))
    if node.op == "call_method" and target == "mean" and 1 not in _dims(node) and first:
        return _follow(graph, node, first, shape, inputs, strict)
    return _undecided(graph, node, inputs, strict, "no channel rule for it")


def _module_atoms(graph, node, module, first, inputs, strict):
    name = node.target
    if isinstance(module, nn.Conv2d) and first is not None:
        graph.layer_nodes[name] = node
        graph.inputs[name] = first
        out = _conv_rule(graph, name, module, first)
        graph.atoms[name] = out
        return out
    if isinstance(module, nn.Linear) and first is not None and len(_shape(node)) == 2:
        graph.layer_nodes[name] = node
        graph.inputs[name] = first
        out = graph.new(name, module.out_features, produced=True)
        graph.atoms[name] = out
        return out
    if isinstance(module, PASS_MODULES):
        out = _follow(graph, node, first, _shape(node), inputs, strict, name)
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and out is not None:
            graph.layer_nodes[name] = node
            graph.atoms[name] = out
            graph.inputs[name] = first
        return out
    if isinstance(module, nn.Flatten) and module.start_dim == 1:
        return _flatten(graph, node, first, _shape(inputs[0]))
    return _undecided(graph, node, inputs, strict, f"no channel rule for "
                                                   f"{type(module).__name__}")


def _conv_rule(graph, name, conv: nn.Conv2d, in_atoms):
    return conv_atoms(graph, name, in_atoms, conv.in_channels, conv.out_channels, conv.groups)


def _follow(graph, node, first, shape, inputs, strict, name=None):
    if first is None or shape[1] != len(first):
        return _undecided(graph, node, inputs, strict, "it changes the channel count")
    return graph.follow(name or node.name, first)


def _elementwise(graph, node, inputs, shape, strict):
    channels = shape[1]
    wide = [graph.node_atoms[a.name] for a in inputs if len(graph.node_atoms[a.name]) == channels]
    if not wide:
        return _undecided(graph, node, inputs, strict, "no operand has its channels")
    out = graph.follow(node.name, wide[0])
    for atoms in wide[1:]:
        for a, b in zip(out, atoms):
            graph.union(a, b)
    for other in inputs:   # a broadcast operand (one channel) stays as it is
        if len(graph.node_atoms[other.name]) != channels:
            graph.fix(graph.node_atoms[other.name])
    return out


def _is_flatten(node, shape, inputs) -> bool:
    if not inputs or len(shape) != 2:
        return False
    source = _shape(inputs[0])
    if source is None or len(source) < 2:
        return False
    if node.op == "call_function" and node.target is torch.flatten:
        start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
        return start == 1
    if node.op == "call_method" and node.target in ("flatten", "view", "reshape"):
        return shape[0] == source[0]
    return False


def _flatten(graph, node, first, source):
    block = 1
    for size in source[2:]:
        block *= size
    return [a for a in first for _ in range(block)]


def _dims(node) -> List[int]:
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if dims is None:
        return [1]
    return list(dims) if isinstance(dims, (list, tuple)) else [dims]


def _undecided(graph, node, inputs, strict, why: str):
    where = f"{node.op} {getattr(node.target, '__name__', node.target)!s} (fx node " \
            f"{node.name!r})"
    if strict:
        raise ValueError(f"channel groups: cannot decide how channels flow through {where}: "
                         f"{why}; pass strict=False to keep the channels around it")
    for parent in inputs:
        graph.fix(graph.node_atoms[parent.name])
    shape = _shape(node)
    if shape is not None and len(shape) > 1:
        atoms = graph.new(node.name, shape[1])
        graph.fix(atoms)
        return atoms
    return None
