"""SparseWeight: a 2-D weight held in CSR or BSR form, and the ``FORMATS`` that propose them.

The weight is stored compactly as three buffers (so ``state_dict`` and ``torch.save`` keep it
small): ``crow_indices`` (int32), ``col_indices`` (int16 when the column count allows, else
int32) and ``values`` in the weight's dtype (``[nnz]`` for CSR, ``[blocks, b, b]`` for BSR).
The torch sparse tensor the kernels use is built from them on first use, with its invariants
checked (a damaged or hostile file cannot send MKL out of bounds), and rebuilt whenever the
buffers are replaced (``load_state_dict``, ``.to()``).

Formulation, measured on this project's machine at one thread (torch 2.13, MKL): ``W·xᵀ`` with
W sparse on the left (``torch.addmm(b, W, x.t())``) beat ``F.linear`` with a sparse weight, and
``x @ Wᵀ`` with ``Wᵀ`` sparse, by 3-10×; int32 indices beat int64; a single row goes through
``torch.mv`` (twice as fast as ``addmm`` there). MKL's BSR takes square blocks only.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

import torch
from torch import nn

from n2prune.registry import Registry

#: Proposers of sparse forms for a 2-D weight, by name: ``fn(weight) -> [SparseWeight, ...]``
#: (none when the form cannot hold that weight well). ``sparsify`` times every proposal.
FORMATS: "Registry[Callable[[torch.Tensor], List[SparseWeight]]]" = Registry("sparse format")

#: BSR block sides tried (MKL's BSR kernels need square blocks).
BSR_BLOCKS = (4, 8, 16, 32)
#: A BSR form is proposed only when at least this share of its stored values is non-zero.
BSR_MIN_FILL = 0.5
_INT16_MAX = 32767


@contextmanager
def quiet() -> Iterator[None]:
    """torch warns that its sparse CSR/BSR support is beta whenever one is built: once is
    enough for us (the kernels used here are tested)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse (CSR|BSR) tensor support is in beta")
        yield


def index_dtype(count: int) -> torch.dtype:
    return torch.int16 if count <= _INT16_MAX else torch.int32


class SparseWeight(nn.Module):
    """A ``[out, in]`` weight in CSR (``block=1``) or square-block BSR (``block=b``) form.

    ``linear(x, bias)`` is ``F.linear(x, W, bias)`` for a 2-D ``x``; ``matmul(cols, bias,
    out)`` is ``W @ cols (+ bias[:, None])`` (convolutions, no transposes). ``dense()`` gives
    the weight back.
    """

    def __init__(self, weight: torch.Tensor, block: int = 1):
        super().__init__()
        if weight.dim() != 2:
            raise ValueError(f"SparseWeight: weight must be 2-D [out, in], got shape "
                             f"{tuple(weight.shape)}")
        rows, cols = weight.shape
        if block < 1 or rows % block or cols % block:
            raise ValueError(f"SparseWeight: block={block} must divide the weight's shape "
                             f"{tuple(weight.shape)}")
        weight = weight.detach()
        with quiet():
            matrix = (weight.to_sparse_csr() if block == 1
                      else weight.to_sparse_bsr((block, block)))
        self.block, self.shape = block, (rows, cols)
        self.register_buffer("crow_indices", matrix.crow_indices().to(torch.int32))
        self.register_buffer("col_indices",
                             matrix.col_indices().to(index_dtype(cols // block)))
        self.register_buffer("values", matrix.values().contiguous())

    @property
    def format(self) -> str:
        """``"CSR"`` or ``"BSR 8x8"``."""
        return "CSR" if self.block == 1 else f"BSR {self.block}x{self.block}"

    @property
    def nnz(self) -> int:
        """Stored values (zeros inside stored blocks included)."""
        return self._buffers["values"].numel()

    @property
    def nbytes(self) -> int:
        """Bytes of the stored buffers (what ``state_dict`` holds)."""
        return sum(buffer.numel() * buffer.element_size() for buffer in self._buffers.values())

    def matrix(self) -> torch.Tensor:
        """The torch sparse tensor (built once per set of buffers: again after ``.to()`` or
        ``load_state_dict``)."""
        values = self._buffers["values"]
        cached = self.__dict__.get("_matrix")
        if cached is not None and cached[0] is values:
            return cached[1]
        crow = self._buffers["crow_indices"].to(torch.int32)
        col = self._buffers["col_indices"].to(torch.int32)
        build = torch.sparse_csr_tensor if self.block == 1 else torch.sparse_bsr_tensor
        with quiet():
            matrix = build(crow, col, values, self.shape, check_invariants=True)
        self.__dict__["_matrix"] = (values, matrix)
        return matrix

    def linear(self, x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        """``x @ Wᵀ + bias`` for ``x`` of shape ``[rows, in]``; contiguous ``[rows, out]``."""
        matrix = self.matrix()
        if x.shape[0] == 0:
            return x.new_zeros(0, self.shape[0])
        if x.shape[0] == 1:
            y = torch.mv(matrix, x[0])
            return (y if bias is None else y.add_(bias)).unsqueeze(0)
        xt = x.t()
        y = torch.mm(matrix, xt) if bias is None else torch.addmm(bias.unsqueeze(1), matrix, xt)
        return y.t().contiguous()

    def matmul(self, cols: torch.Tensor, bias: Optional[torch.Tensor],
               out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``W @ cols (+ bias[:, None])`` for ``cols`` of shape ``[in, L]``, into ``out``."""
        matrix = self.matrix()
        if bias is None:
            return torch.mm(matrix, cols, out=out)
        return torch.addmm(bias.unsqueeze(1), matrix, cols, out=out)

    def dense(self) -> torch.Tensor:
        """The weight as a dense ``[out, in]`` tensor."""
        return self.matrix().to_dense()

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.__dict__.pop("_matrix", None)   # the buffers are overwritten in place
        super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_matrix", None)   # rebuilt from the buffers (and checked) after loading
        return state

    def extra_repr(self) -> str:
        rows, cols = self.shape
        density = self.nnz / (rows * cols)
        return f"{rows}, {cols}, format={self.format}, stored={100 * density:.1f}%"


@FORMATS.register("CSR")
def csr_forms(weight: torch.Tensor) -> List[SparseWeight]:
    """One CSR form: any zero pattern."""
    return [SparseWeight(weight)]


@FORMATS.register("BSR")
def bsr_forms(weight: torch.Tensor) -> List[SparseWeight]:
    """A BSR form per block side of ``BSR_BLOCKS`` that divides the shape and whose stored
    blocks are at least ``BSR_MIN_FILL`` non-zero (block-pruned weights: ``pattern="16x16"``)."""
    nonzero = weight != 0
    total = int(nonzero.sum())
    rows, cols = weight.shape
    forms = []
    for side in BSR_BLOCKS:
        if rows % side or cols % side or total == 0:
            continue
        blocks = nonzero.reshape(rows // side, side, cols // side, side).any(3).any(1)
        if total >= BSR_MIN_FILL * int(blocks.sum()) * side * side:
            forms.append(SparseWeight(weight, block=side))
    return forms
