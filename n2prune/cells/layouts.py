"""How a cell's parameters read as N2D2 stores them: the layouts a
:class:`~n2prune.cells.kinds.CellKind` carries, used by ``n2prune.n2d2io`` (weight files) and
``n2prune.network.fuse`` (BatchNorm folding).

A weighted cell's weight is a :class:`WeightLayout`: N2D2's view of it is one ``(kh, kw)``
kernel per (output, input channel) pair, a dense ``(O, C, kh, kw)`` tensor, with a bool
``(O, C)`` table of the pairs that exist (a ``Mapping`` or groups leave some out). Per-channel
parameters without kernels (BatchNorm's) are :class:`ColumnFile` s, one value per line.

>>> from n2prune.cells.fc import Fc
>>> FC_LAYOUT.dense(Fc(3, 2), Fc(3, 2).weight).shape
torch.Size([2, 3, 1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import nn


class WeightLayout:
    """A weight read as N2D2 kernels. ``kernels``: the cell has spatial kernels, so
    ``WeightsExportFormat`` (OCHW or HWCO lines) applies (False: one ``OC`` line per output);
    ``outputs_first``: the weight's first dimension is the outputs (a BatchNorm after the cell
    folds into its rows)."""

    kernels = False
    outputs_first = True

    def connected(self, cell: nn.Module) -> torch.Tensor:
        """Bool ``(O, C)``: which (output, input channel) kernels exist."""
        raise NotImplementedError

    def kernel_size(self, cell: nn.Module) -> Tuple[int, int]:
        """``(kh, kw)`` of one kernel."""
        raise NotImplementedError

    def dense(self, cell: nn.Module, weight: torch.Tensor) -> torch.Tensor:
        """``weight`` (the cell's layout) as an ``(O, C, kh, kw)`` tensor, zero where
        unconnected."""
        raise NotImplementedError

    def from_dense(self, cell: nn.Module, dense: torch.Tensor) -> torch.Tensor:
        """The cell's weight (its own layout) that an ``(O, C, kh, kw)`` tensor holds."""
        raise NotImplementedError


class MatrixLayout(WeightLayout):
    """An ``(O, C)`` weight, every output reading every input (Fc)."""

    def connected(self, cell: nn.Module) -> torch.Tensor:
        return torch.ones(cell.nb_outputs, cell.nb_inputs, dtype=torch.bool)

    def kernel_size(self, cell: nn.Module) -> Tuple[int, int]:
        return 1, 1

    def dense(self, cell: nn.Module, weight: torch.Tensor) -> torch.Tensor:
        return weight.detach().cpu()[:, :, None, None]

    def from_dense(self, cell: nn.Module, dense: torch.Tensor) -> torch.Tensor:
        return dense[:, :, 0, 0]


@dataclass(frozen=True)
class KernelLayout(WeightLayout):
    """A grouped convolution's weight with an optional ``connection`` map: ``(O, C/G, kh,
    kw)`` (Conv), or ``(C, O/G, kh, kw)`` when ``transposed`` (Deconv, whose ``connection``
    is stored input-major)."""

    transposed: bool = False
    kernels = True

    @property
    def outputs_first(self) -> bool:
        return not self.transposed

    def connected(self, cell: nn.Module) -> torch.Tensor:
        if cell.connection is not None:
            connected = cell.connection[:, :, 0, 0].detach().cpu().ne(0)
            connected = connected.t() if self.transposed else connected
        else:
            og, cg = cell.nb_outputs // cell.groups, cell.nb_inputs // cell.groups
            connected = torch.block_diag(*[torch.ones(og, cg)] * cell.groups).bool()
        return connected.contiguous()

    def kernel_size(self, cell: nn.Module) -> Tuple[int, int]:
        return cell.weight.shape[2], cell.weight.shape[3]

    def _blocks(self, cell: nn.Module) -> List[Tuple[slice, slice]]:
        og, cg = cell.nb_outputs // cell.groups, cell.nb_inputs // cell.groups
        return [(slice(g * og, (g + 1) * og), slice(g * cg, (g + 1) * cg))
                for g in range(cell.groups)]

    def dense(self, cell: nn.Module, weight: torch.Tensor) -> torch.Tensor:
        weight = weight.detach().cpu()
        if cell.groups == 1:
            return weight.transpose(0, 1) if self.transposed else weight
        out = weight.new_zeros(cell.nb_outputs, cell.nb_inputs, *self.kernel_size(cell))
        for rows, cols in self._blocks(cell):
            out[rows, cols] = weight[cols].transpose(0, 1) if self.transposed else weight[rows]
        return out

    def from_dense(self, cell: nn.Module, dense: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return torch.cat([dense[r, c].transpose(0, 1) for r, c in self._blocks(cell)])
        return torch.cat([dense[r, c] for r, c in self._blocks(cell)])


FC_LAYOUT = MatrixLayout()
CONV_LAYOUT = KernelLayout()
DECONV_LAYOUT = KernelLayout(transposed=True)


@dataclass(frozen=True)
class ColumnFile:
    """One per-channel parameter in its own N2D2 file, ``<cell>_<suffix>.syntxt``, one value
    per line (in a combined ``<cell>.syntxt``: the columns side by side, in kind order).
    ``default``: the value of every channel when the file is absent and missing files are
    allowed (None: the file is required); ``minimum``: smaller values are refused."""

    suffix: str
    attribute: str
    default: Optional[float] = None
    minimum: Optional[float] = None

    @property
    def what(self) -> str:
        """One value's name, e.g. ``variance`` for ``variances``."""
        return self.suffix[:-1]


BATCHNORM_COLUMNS: Tuple[ColumnFile, ...] = (
    ColumnFile("scales", "weight", default=1.0),   # N2D2: scales default to 1
    ColumnFile("biases", "bias"), ColumnFile("means", "running_mean"),
    ColumnFile("variances", "running_var", minimum=0.0))
