"""The operator registry: ``OPS`` maps an ONNX op type to a builder ``build(ctx) -> result``.

A builder reads its node through :class:`NodeContext` (operands, constants, attributes) and
returns either :class:`Built` cells (the last one is the node's output) or a :class:`Value`
(the output is an existing tensor under another name: Identity, Flatten of a 1x1 map).
Adding an operator is one registered function:

>>> @OPS.register("MyIdentity")                                   # doctest: +SKIP
... def my_identity(ctx):
...     return ctx.value(0)

Tensors are held as N2D2 maps: an ONNX ``(N, C, H, W)`` tensor is itself, an ``(N, C)``
tensor is ``(N, C, 1, 1)`` with ``rank=2`` remembered (what Flatten, Gemm and Softmax check).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from n2prune.cells.base import BuildContext
from n2prune.cells.conv import fill_weights
from n2prune.onnxin.folding import FOLDS
from n2prune.onnxin.graph import Graph, Node
from n2prune.registry import Registry

Shape = Tuple[int, int, int]

# ONNX op type -> builder(ctx: NodeContext) -> Built | [Built, ...] | Value | constant tensor
OPS: Registry = Registry("ONNX operator")


class OnnxOpError(ValueError):
    """A node the importer cannot build; the section builder adds the file and line."""


@dataclass(frozen=True)
class Value:
    """Where an ONNX tensor is in the network: the cell that makes it (or the network
    input's name), its (C, H, W) and its ONNX rank (2 or 4)."""

    cell: str
    shape: Shape
    rank: int = 4


@dataclass
class Built:
    """One cell a node becomes: its N2D2 type (``CellInfo.type``: solvers, quantizer, costs
    follow it), module, output shape, input cells and ONNX rank of its output."""

    cell_type: str
    module: nn.Module
    shape: Shape
    inputs: List[str]
    rank: int = 4
    name: str = ""   # default: the node's name (its first output)


# (section holding the cell's parameters or None, its ConfigSection view or None)
Settings = Tuple[Any, Any]


@dataclass
class NodeContext:
    """What a builder reads: the node, the values made so far, the graph's constants, the
    weight source (``init_from_onnx``: initializers, else the fillers of the parameter
    section) and ``settings(cell_type)``: the section and ConfigSection view that configure
    an imported cell of that N2D2 type (``[<output>]`` or ``[<onnx>:<Type>_def]``)."""

    node: Node
    graph: Graph
    values: Dict[str, Value]
    init_from_onnx: bool = True
    generator: Optional[torch.Generator] = None
    settings: Callable[[str], Settings] = lambda cell_type: (None, None)
    notes: List[str] = field(default_factory=list)

    # ------------------------------------------------------------------ operands
    def has_input(self, index: int) -> bool:
        return index < len(self.node.inputs) and self.node.inputs[index] != ""

    def value(self, index: int) -> Value:
        """The tensor operand ``index`` (an error when it is a constant or missing)."""
        name = self._input_name(index)
        if name in self.values:
            return self.values[name]
        if name in self.graph.constants:
            raise OnnxOpError(f"input {index} ({name!r}) is a constant where a tensor computed "
                              f"by the network is expected")
        raise OnnxOpError(f"input {index} ({name!r}) is produced by no imported node")

    def constant(self, index: int, what: str) -> torch.Tensor:
        """The constant operand ``index`` (an initializer or a Constant node)."""
        name = self._input_name(index)
        if name not in self.graph.constants:
            raise OnnxOpError(f"{what} (input {index}, {name!r}) must be a constant "
                              f"(an initializer) for the importer")
        return self.graph.constants[name]

    def is_constant(self, index: int) -> bool:
        return self.has_input(index) and self.node.inputs[index] in self.graph.constants

    def _input_name(self, index: int) -> str:
        if not self.has_input(index):
            raise OnnxOpError(f"input {index} is missing")
        return self.node.inputs[index]

    def attr(self, name: str, default: Any = None) -> Any:
        return self.node.attrs.get(name, default)

    def error(self, message: str) -> OnnxOpError:
        return OnnxOpError(message)

    # ------------------------------------------------------------------ weights
    def fill(self, cell: nn.Module, cell_type: str,
             tensors: Sequence[Tuple[str, Optional[torch.Tensor]]]) -> None:
        """Give ``cell`` its parameters: ``tensors`` (``(parameter name, value)``) from the
        ONNX file, or with ``ONNX_init=0`` the fillers of the cell's parameter section."""
        if not self.init_from_onnx:
            section, _ = self.settings(cell_type)
            fill_weights(BuildContext(self.node.name, section, None, [], [],
                                      extras={"generator": self.generator}), cell)
            return
        with torch.no_grad():
            for name, tensor in tensors:
                parameter = getattr(cell, name)
                if parameter is None or tensor is None:
                    continue
                if tuple(parameter.shape) != tuple(tensor.shape):
                    raise OnnxOpError(f"{name} has shape {tuple(tensor.shape)}, the cell "
                                      f"expects {tuple(parameter.shape)}")
                parameter.copy_(tensor)


def build_node(ctx: NodeContext) -> Union[List[Built], Value, torch.Tensor]:
    """Run the registered builder of ``ctx.node`` (a KeyError when none is registered): the
    cells it makes, the existing tensor its output is, or the constant it computes (Shape,
    and a folded operator whose operands have all become constants)."""
    operands = [name for name in ctx.node.inputs if name]
    if ctx.node.op_type in FOLDS and operands and \
            all(name in ctx.graph.constants for name in operands):
        inputs = [ctx.graph.constants[name] for name in operands]
        try:
            return FOLDS[ctx.node.op_type](inputs, ctx.node.attrs)
        except (RuntimeError, ValueError, IndexError) as error:
            raise OnnxOpError(f"on constants, cannot be computed: {error}") from None
    if ctx.node.op_type not in OPS:
        on_constants = " (only on constants)" if ctx.node.op_type in FOLDS else ""
        raise OnnxOpError(f"operator {ctx.node.op_type} is not supported{on_constants} "
                          f"(supported: {supported_ops(8)}; see docs/n2d2.md)")
    result = OPS.get(ctx.node.op_type)(ctx)
    if isinstance(result, (Value, torch.Tensor)):
        return result
    built = [result] if isinstance(result, Built) else list(result)
    for item in built:
        item.name = item.name or ctx.node.name
    return built


def supported_ops(limit: int = 0) -> str:
    """The registered op types, sorted; cut to ``limit`` names (0: all) with the count."""
    names = sorted(OPS.names())
    if limit and len(names) > limit:
        return f"{', '.join(names[:limit])}, ... ({len(names)} in all)"
    return ", ".join(names)


def same_maps(ctx: NodeContext, values: Sequence[Value], what: str) -> Shape:
    """The common shape of ``values`` (an error naming the shapes otherwise)."""
    shapes = {v.shape for v in values}
    if len(shapes) != 1:
        described = ", ".join(f"{v.cell} {v.shape}" for v in values)
        raise ctx.error(f"{what} needs operands of one shape (no broadcasting between "
                        f"computed tensors), got {described}")
    return values[0].shape
