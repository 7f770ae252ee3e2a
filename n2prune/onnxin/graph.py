"""An ONNX file read into plain Python: nodes with decoded attributes, initializers as
tensors, the graph's data inputs and outputs.

Only this module touches the ``onnx`` package (the ``.[onnx]`` extra); everything after it
works on :class:`Graph`. ``Constant`` nodes become initializers here, so an operator that
needs a constant operand (a Reshape's shape, a Pad's pads) finds it in ``Graph.constants``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from n2prune.onnxin.folding import FOLDS

try:  # the optional extra; a located error names it when a file needs it
    import onnx
    from onnx import numpy_helper
except ImportError:  # pragma: no cover - exercised only without the extra
    onnx = None
    numpy_helper = None

MAX_ONNX_BYTES = 2 ** 31  # protobuf's own limit for one message


class OnnxReadError(ValueError):
    """An ONNX file that cannot be read; the caller locates it at its ``File=`` key."""


@dataclass
class Node:
    """One ONNX node: ``name`` is its first output (N2D2 names imported cells so)."""

    op_type: str
    inputs: List[str]
    outputs: List[str]
    attrs: Dict[str, Any]
    label: str  # the node's own name, or its op type and index when it has none

    @property
    def name(self) -> str:
        return self.outputs[0]

    def describe(self) -> str:
        return f"node {self.label!r} ({self.op_type}, output {self.name!r})"


@dataclass
class Graph:
    """The parts of an ONNX graph the importer reads."""

    path: str
    nodes: List[Node]
    constants: Dict[str, torch.Tensor]
    # data inputs (initializers excluded): name -> dims after the batch (None when unknown)
    inputs: List[Tuple[str, Optional[Tuple[Optional[int], ...]]]]
    outputs: List[str]
    opset: int = 0
    producers: Dict[str, Node] = field(default_factory=dict)


def available() -> bool:
    """Whether the ``onnx`` package is installed."""
    return onnx is not None


def read_graph(path: str) -> Graph:
    """Read the ONNX file ``path`` (an :class:`OnnxReadError` saying why when it cannot)."""
    if onnx is None:
        raise OnnxReadError("reading ONNX files needs the onnx package: pip install "
                            "'n2prune[onnx]'")
    file = Path(path)
    if not file.is_file():
        raise OnnxReadError(f"ONNX file {path!r} not found")
    if file.stat().st_size > MAX_ONNX_BYTES:
        raise OnnxReadError(f"ONNX file {path!r} is over {MAX_ONNX_BYTES} bytes")
    try:
        model = onnx.load(str(file))
    except Exception as error:  # protobuf raises its own DecodeError and others
        raise OnnxReadError(f"ONNX file {path!r} cannot be parsed: {error}") from None
    return _graph(path, model)


def _graph(path: str, model: Any) -> Graph:
    graph = model.graph
    constants = {init.name: _tensor(init) for init in graph.initializer}
    nodes: List[Node] = []
    for index, proto in enumerate(graph.node):
        attrs = {attr.name: _attribute(attr) for attr in proto.attribute}
        if proto.op_type == "Constant" and proto.output:
            constants[proto.output[0]] = _constant(attrs, proto)
            continue
        operands = [name for name in proto.input if name]
        if proto.op_type in FOLDS and len(proto.output) == 1 and \
                all(name in constants for name in operands):
            constants[proto.output[0]] = _fold(proto, attrs, [constants[n] for n in operands])
            continue
        nodes.append(Node(proto.op_type, list(proto.input), list(proto.output), attrs,
                          proto.name or f"{proto.op_type}_{index}"))
    inputs = [(value.name, _dims(value)) for value in graph.input
              if value.name not in constants]
    opset = max((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")),
                default=0)
    result = Graph(path, nodes, constants, inputs, [value.name for value in graph.output],
                   opset)
    result.producers = {output: node for node in nodes for output in node.outputs}
    return result


def _fold(proto: Any, attrs: Dict[str, Any], inputs: List[torch.Tensor]) -> torch.Tensor:
    try:
        return FOLDS[proto.op_type](inputs, attrs)
    except (RuntimeError, ValueError, IndexError) as error:
        raise OnnxReadError(f"node {proto.name or proto.output[0]!r} ({proto.op_type}) on "
                            f"constants cannot be computed: {error}") from None


def _tensor(proto: Any) -> torch.Tensor:
    array = numpy_helper.to_array(proto)
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    elif array.dtype.kind in "iub":
        array = array.astype(np.int64)
    else:
        raise OnnxReadError(f"tensor {proto.name!r} has data type {array.dtype}, which the "
                            f"importer does not read (floats and integers only)")
    return torch.from_numpy(np.ascontiguousarray(array))


def _attribute(attr: Any) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if attr.type == onnx.AttributeProto.TENSOR:
        return _tensor(value)
    if isinstance(value, (list, tuple)):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def _constant(attrs: Dict[str, Any], proto: Any) -> torch.Tensor:
    for key, dtype in (("value", None), ("value_float", torch.float32),
                       ("value_floats", torch.float32), ("value_int", torch.int64),
                       ("value_ints", torch.int64)):
        if key in attrs:
            value = attrs[key]
            return value if dtype is None else torch.tensor(value, dtype=dtype)
    raise OnnxReadError(f"Constant node {proto.name or proto.output[0]!r}: only value, "
                        f"value_float(s) and value_int(s) constants are read")


def _dims(value: Any) -> Optional[Tuple[Optional[int], ...]]:
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = [dim.dim_value if dim.HasField("dim_value") else None
            for dim in tensor_type.shape.dim]
    return tuple(dims[1:])
