"""Sparse inference on CPU: pruned layers held in CSR / BSR form where that runs faster.

``sparsify(model, example)`` times, per layer and on the layer's real input, the dense layer
against every sparse form the ``FORMATS`` propose and keeps the fastest (dense where none
wins), returning a printable :class:`SparsifyReport`; a pruned layer computed dense is still
stored small (``PackedLayer``: its weight as a bitmask and the non-zero values, or CSR, from
``STORAGES``, whichever is smallest); ``densify(model)`` undoes it (ONNX export
needs the dense form). ``SPARSE_LAYERS`` holds the stand-ins (Linear, Conv2d, n2prune's Fc and
Conv); ``write_sparse`` saves an INI network's sparse form with a latency report.
"""

from n2prune.sparse.layers import (ONNX_MESSAGE, SPARSE_LAYERS, PackedLayer, SparseConv,
                                   SparseConv2d, SparseFc, SparseLayer, SparseLinear,
                                   stand_in_for)
from n2prune.sparse.storage import STORAGES, PackedWeight, smallest_form
from n2prune.sparse.matrix import FORMATS, SparseWeight
from n2prune.sparse.ini import SAFE_GLOBALS, compare_latency, saved_bytes, write_sparse
from n2prune.sparse.convert import (LayerChoice, SparsifyReport, densify, relative_difference,
                                     sparsify)

__all__ = ["FORMATS", "LayerChoice", "ONNX_MESSAGE", "PackedLayer", "PackedWeight",
           "SAFE_GLOBALS", "SPARSE_LAYERS", "STORAGES", "smallest_form",
           "SparseConv", "SparseConv2d", "SparseFc", "SparseLayer", "SparseLinear",
           "SparseWeight", "SparsifyReport", "compare_latency", "densify",
           "relative_difference", "saved_bytes", "sparsify", "stand_in_for", "write_sparse"]
