"""PackedWeight: a pruned weight stored in the smallest exact form, whatever runs it.

Storage is separate from compute: a layer whose sparse kernel does not pay is computed dense
(:class:`~n2prune.sparse.layers.PackedLayer`) but still saved small. ``STORAGES`` holds the
forms, each an object with ``nbytes(tensor)`` (its size, known before packing), ``pack(tensor)``
(the buffers) and ``unpack(buffers, shape)`` (the tensor back, exactly, after checking that the
buffers fit together: a damaged file gives an error, not a wrong weight). Bytes per weight at
sparsity s with float32 values: a bitmask is 1/8 + 4(1-s) (0.525 at 90 %, 13 % of dense); CSR
with int16 column indices 6(1-s) plus 4 per row (0.6 at 90 %, 0.3 at 95 %).

>>> import torch
>>> weight = torch.randn(64, 64) * (torch.rand(64, 64) < 0.1)
>>> packed = PackedWeight(weight)
>>> packed.form, torch.equal(packed.dense(), weight), packed.nbytes < 0.2 * weight.nbytes
('bitmask', True, True)
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Protocol, Tuple

import torch
from torch import nn

from n2prune.registry import Registry
from n2prune.sparse.matrix import index_dtype, quiet


class Storage(Protocol):
    """What a member of ``STORAGES`` does (a class of static methods)."""

    @staticmethod
    def nbytes(tensor: torch.Tensor) -> int: ...
    @staticmethod
    def pack(tensor: torch.Tensor) -> Dict[str, torch.Tensor]: ...
    @staticmethod
    def unpack(buffers: Dict[str, torch.Tensor], shape: Tuple[int, ...]) -> torch.Tensor: ...


#: Exact compact forms of a tensor, by name; ``PackedWeight`` keeps the smallest.
STORAGES: "Registry[Storage]" = Registry("sparse storage")

_BITS = 1 << torch.arange(8, dtype=torch.int32)


def _damaged(form: str, what: str) -> ValueError:
    return ValueError(f"PackedWeight ({form}): {what}; the stored buffers are damaged or come "
                      f"from another weight")


def _matrix_shape(shape: Tuple[int, ...]) -> Tuple[int, int]:
    rows = shape[0] if len(shape) > 0 else 1
    return rows, math.prod(shape) // max(rows, 1)


@STORAGES.register("bitmask")
class Bitmask:
    """One bit per weight (packed eight to a uint8, the first weight in the lowest bit) and
    the non-zero values in order."""

    @staticmethod
    def nbytes(tensor: torch.Tensor) -> int:
        return -(-tensor.numel() // 8) + int(tensor.count_nonzero()) * tensor.element_size()

    @staticmethod
    def pack(tensor: torch.Tensor) -> Dict[str, torch.Tensor]:
        flat = tensor.detach().reshape(-1)
        nonzero = flat != 0
        bits = torch.zeros(-(-flat.numel() // 8) * 8, dtype=torch.int32, device=flat.device)
        bits[:flat.numel()] = nonzero.to(torch.int32)
        mask = (bits.view(-1, 8) * _BITS.to(flat.device)).sum(1).to(torch.uint8)
        return {"mask": mask, "values": flat[nonzero].clone()}

    @staticmethod
    def unpack(buffers: Dict[str, torch.Tensor], shape: Tuple[int, ...]) -> torch.Tensor:
        mask, values = buffers["mask"], buffers["values"]
        count = math.prod(shape)
        if mask.dtype != torch.uint8 or mask.numel() != -(-count // 8):
            raise _damaged("bitmask", f"mask has {mask.numel()} {mask.dtype} bytes, a "
                                      f"{list(shape)} weight needs {-(-count // 8)} uint8")
        bits = mask.to(torch.int32)[:, None] & _BITS.to(mask.device)
        nonzero = (bits != 0).reshape(-1)[:count]
        if int(nonzero.sum()) != values.numel():
            raise _damaged("bitmask", f"mask marks {int(nonzero.sum())} non-zero weights, "
                                      f"values holds {values.numel()}")
        flat = values.new_zeros(count)
        flat[nonzero] = values
        return flat.reshape(shape)


@STORAGES.register("CSR")
class CompressedRows:
    """The weight as an ``[out, rest]`` CSR matrix: int32 row pointers, int16 column indices
    (int32 past 32767 columns), the non-zero values."""

    @staticmethod
    def nbytes(tensor: torch.Tensor) -> int:
        rows, cols = _matrix_shape(tuple(tensor.shape))
        index = torch.empty(0, dtype=index_dtype(cols)).element_size()
        return 4 * (rows + 1) + int(tensor.count_nonzero()) * (index + tensor.element_size())

    @staticmethod
    def pack(tensor: torch.Tensor) -> Dict[str, torch.Tensor]:
        rows, cols = _matrix_shape(tuple(tensor.shape))
        with quiet():
            matrix = tensor.detach().reshape(rows, cols).to_sparse_csr()
        return {"crow_indices": matrix.crow_indices().to(torch.int32),
                "col_indices": matrix.col_indices().to(index_dtype(cols)),
                "values": matrix.values().clone()}

    @staticmethod
    def unpack(buffers: Dict[str, torch.Tensor], shape: Tuple[int, ...]) -> torch.Tensor:
        crow = buffers["crow_indices"].to(torch.int32)
        col = buffers["col_indices"].to(torch.int32)
        try:
            with quiet():
                matrix = torch.sparse_csr_tensor(crow, col, buffers["values"],
                                                 _matrix_shape(shape), check_invariants=True)
        except RuntimeError as error:
            raise _damaged("CSR", str(error).splitlines()[0]) from None
        return matrix.to_dense().reshape(shape)


def smallest_form(tensor: torch.Tensor) -> Tuple[Optional[str], int]:
    """The ``STORAGES`` form that holds ``tensor`` in the fewest bytes, and that size; (None,
    dense bytes) when none beats the dense tensor."""
    best, size = None, tensor.numel() * tensor.element_size()
    for name in STORAGES:
        nbytes = STORAGES.get(name).nbytes(tensor)
        if nbytes < size:
            best, size = name, nbytes
    return best, size


class PackedWeight(nn.Module):
    """A tensor held in a ``STORAGES`` form (the smallest when ``form`` is None); its buffers
    are what ``state_dict`` and ``torch.save`` keep. ``dense()`` unpacks it, exactly."""

    def __init__(self, tensor: torch.Tensor, form: Optional[str] = None):
        super().__init__()
        if form is None:
            form = smallest_form(tensor)[0] or "bitmask"
        self.form, self.shape = form, tuple(tensor.shape)
        for name, buffer in STORAGES.get(form).pack(tensor).items():
            self.register_buffer(name, buffer)

    @property
    def format(self) -> str:
        """The storage form's name (``"bitmask"``, ``"CSR"``)."""
        return self.form

    @property
    def nbytes(self) -> int:
        """Bytes of the stored buffers."""
        return sum(buffer.numel() * buffer.element_size() for buffer in self._buffers.values())

    def dense(self) -> torch.Tensor:
        """The tensor, unpacked (checked against the stored shape first)."""
        return STORAGES.get(self.form).unpack(dict(self._buffers), self.shape)

    def extra_repr(self) -> str:
        dense = math.prod(self.shape) * self._buffers["values"].element_size()
        return (f"{list(self.shape)}, form={self.form}, "
                f"stored={100 * self.nbytes / max(dense, 1):.1f}% of dense")
