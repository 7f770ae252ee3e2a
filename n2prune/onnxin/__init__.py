"""ONNX graphs as n2prune cells (N2D2's ``Type=ONNX`` import).

Read order: ``graph`` (the file, through the ``onnx`` package: nodes, constants, inputs),
``ops`` (``OPS``, the registry of operator builders keyed by ONNX op type, and the context
they read), ``geometry`` (Conv and pooling windows), ``ops_weighted`` (Conv, Gemm, MatMul,
BatchNormalization), ``ops_layers`` (pooling, activations, Softmax, Dropout), ``ops_shape``
(arithmetic, Concat, Flatten/Reshape, Pad, Resize), ``modules`` (the few operations N2D2 has
no cell for), ``wrap`` (an ONNX file given where an INI file is expected).

The INI section itself (``File``, ``ONNX_init``, ``[<onnx>:Conv_def]``...) is built by
:mod:`n2prune.network.onnx_section`, which routes solvers and ``QWeight=Prune`` as for any
cell.
"""

from n2prune.onnxin.graph import Graph, Node, OnnxReadError, available, read_graph
from n2prune.onnxin.ops import (OPS, Built, NodeContext, OnnxOpError, Value, build_node,
                                supported_ops)
from n2prune.onnxin import ops_layers, ops_shape, ops_weighted  # noqa: F401  (registrations)
from n2prune.onnxin.wrap import is_onnx_path, load_description, onnx_ini, refuse_training

__all__ = ["Graph", "Node", "OnnxReadError", "available", "read_graph", "OPS", "Built",
           "NodeContext", "OnnxOpError", "Value", "build_node", "supported_ops",
           "is_onnx_path", "load_description", "onnx_ini", "refuse_training"]
