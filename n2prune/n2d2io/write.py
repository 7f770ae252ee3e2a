"""N2D2's weight files (spec §6 "Weight file format", §4.7): their layout, and writing them.

Conv and Deconv write ``OCHW`` (one line per output: each *connected* input channel's kernel, x
fastest, then y) or, when ``cell.export_options`` asks for it, ``HWCO``; Fc writes ``OC`` (one
line per output, all inputs' columns in order). Values are C++ ``<<`` style (``%g``) with 6
significant digits, 10 for a cell with a PruneCell, each followed by a space. Biases, and
BatchNorm's ``_scales``/``_biases``/``_means``/``_variances``, are one value per line.

>>> write_weights(net, "weights")                   # doctest: +SKIP

``n2prune.n2d2io.read.read_weights`` reads them back (N2D2's ``-w DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from n2prune.atomic import atomic_write_text
from n2prune.cells.kinds import CellKind, kind_of_module
from n2prune.cells.layouts import BATCHNORM_COLUMNS, ColumnFile, WeightLayout

PathLike = Union[str, Path]
_FORBIDDEN = frozenset('<>:"|?*')
BN_FILES = tuple((column.suffix, column.attribute) for column in BATCHNORM_COLUMNS)


def cell_file_stem(name: str) -> str:
    """N2D2's file name for a cell: ``<>:"|?*`` and control characters become ``_``."""
    if not isinstance(name, str):
        raise TypeError(f"cell name must be a string, got {name!r} ({type(name).__name__})")
    return "".join("_" if c in _FORBIDDEN or ord(c) < 32 or ord(c) == 127 else c
                   for c in name)


# ----------------------------------------------------------------------------- kernel layout
@dataclass
class Kernels:
    """A weighted cell's weight as N2D2 stores it: its kind's
    :class:`~n2prune.cells.layouts.WeightLayout` (one (kh, kw) kernel per (output, channel),
    ``connected`` (O, C) telling which exist), exported as OC, OCHW or HWCO lines."""

    cell: nn.Module
    layout: WeightLayout
    connected: torch.Tensor
    kh: int
    kw: int
    fmt: str
    flip: bool

    @classmethod
    def of(cls, cell: nn.Module, layout: WeightLayout) -> "Kernels":
        if not layout.kernels:
            return cls(cell, layout, layout.connected(cell), 1, 1, "OC", False)
        options = getattr(cell, "export_options", None) or {}
        fmt = options.get("weights_export_format", "OCHW")
        if fmt not in ("OCHW", "HWCO"):
            raise ValueError(f"{type(cell).__name__}: WeightsExportFormat={fmt!r} is not "
                             f"supported; allowed: OCHW, HWCO")
        if options.get("outputs_remap"):
            raise ValueError(f"{type(cell).__name__}: OutputsRemap is not supported in "
                             f"weight files")
        return cls(cell, layout, layout.connected(cell), *layout.kernel_size(cell), fmt,
                   bool(options.get("weights_export_flip", False)))

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.connected.shape)

    def dense(self, weight: torch.Tensor) -> torch.Tensor:
        """The cell's weight as an (O, C, kh, kw) tensor, zero where unconnected."""
        return self.layout.dense(self.cell, weight)

    def keep_unconnected(self, dense: torch.Tensor) -> torch.Tensor:
        """``dense`` with the cell's current values where no kernel is connected (what a
        file, which holds connected kernels only, leaves untouched)."""
        if bool(self.connected.all()):
            return dense
        return torch.where(self.connected[:, :, None, None], dense,
                           self.dense(self.cell.weight).to(dense))

    def store(self, dense: torch.Tensor) -> None:
        """Copy an (O, C, kh, kw) tensor into the cell's weight (its own layout)."""
        new = self.layout.from_dense(self.cell, dense)
        with torch.no_grad():
            self.cell.weight.copy_(new.to(self.cell.weight))

    # -- lines ------------------------------------------------------------------------------
    def counts(self) -> List[int]:
        """Values expected on each weights-file line."""
        if self.fmt == "HWCO":
            return [int(self.connected.sum())] * (self.kh * self.kw)
        return [int(n) * self.kh * self.kw for n in self.connected.sum(1)]

    def describe(self, line: int) -> str:
        """What line ``line`` (0-based) holds, for error messages."""
        if self.fmt == "OC":
            return "one weight per input"
        if self.fmt == "HWCO":
            return f"one per connected channel and output at kernel position {line}"
        n = int(self.connected[line].sum())
        return f"{n} connected channel{'s' if n != 1 else ''} x {self.kw}x{self.kh} kernel"

    def rows(self, dense: torch.Tensor) -> List[torch.Tensor]:
        """The values of each line, in file order."""
        dense = dense.flip(-2, -1) if self.flip else dense
        if self.fmt == "HWCO":
            picked = dense.transpose(0, 1)[self.connected.t()]
            return list(picked.reshape(picked.shape[0], -1).t())
        if bool(self.connected.all()):
            return list(dense.reshape(dense.shape[0], -1))
        return [dense[o][self.connected[o]].reshape(-1) for o in range(self.shape[0])]

    def from_rows(self, rows: Sequence[np.ndarray]) -> torch.Tensor:
        """The (O, C, kh, kw) tensor that :meth:`rows` lines came from (float32)."""
        nb_out, nb_in = self.shape
        dense = torch.zeros(nb_out, nb_in, self.kh, self.kw)
        if self.fmt == "HWCO":
            table = torch.from_numpy(np.stack(rows).T.astype(np.float32))
            dense.transpose(0, 1)[self.connected.t()] = table.reshape(-1, self.kh, self.kw)
        else:
            for o, row in enumerate(rows):
                kernels = torch.from_numpy(np.asarray(row, dtype=np.float32))
                dense[o][self.connected[o]] = kernels.reshape(-1, self.kh, self.kw)
        return dense.flip(-2, -1) if self.flip else dense


# ----------------------------------------------------------------------------- writing
def write_weights(net, directory: PathLike) -> List[Path]:
    """Write the parameters of every cell whose kind has a weight ``layout`` (Conv, Deconv,
    Fc) or ``columns`` (BatchNorm) in N2D2's text format.

    ``net`` is a Network or a mapping of cell names to cells. Weights files hold the
    full-precision, unmasked weights; a cell with a PruneCell also gets
    ``<cell>_quant_weights.syntxt`` (masked) and ``<cell>_masks.syntxt``. Each file is
    written atomically; ``directory`` is created if needed. Returns the files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    with torch.no_grad():
        for name, cell, kind in kinded_cells(net):
            if kind.layout is not None:
                written += _write_weighted(cell, kind.layout, cell_path(directory, name))
            else:
                written += _write_columns(cell, kind.columns, cell_path(directory, name))
    return written


def _write_weighted(cell: nn.Module, layout: WeightLayout, base: Path) -> List[Path]:
    kernels = Kernels.of(cell, layout)
    quantizer = getattr(cell, "quantizer", None)
    digits = 6 if quantizer is None else 10
    files = [_write(base, "_weights", _lines(kernels.rows(kernels.dense(cell.weight)), digits))]
    if cell.bias is not None:
        files.append(_write(base, "_biases", _column(cell.bias, digits)))
    if quantizer is not None:
        masked = kernels.dense(cell.effective_weight())
        files.append(_write(base, "_quant_weights", _lines(kernels.rows(masked), 10)))
        files.append(suffixed(base, "_masks"))
        quantizer.export_masks(files[-1])
    return files


def _write_columns(cell: nn.Module, columns: Sequence[ColumnFile], base: Path) -> List[Path]:
    return [_write(base, "_" + column.suffix, _column(getattr(cell, column.attribute), 6))
            for column in columns]


def _lines(rows: Iterable[torch.Tensor], digits: int) -> str:
    """Rows of values as C++ ``stream << setprecision(digits) << value << " "`` prints them."""
    fmt = f"%.{digits}g "
    return "".join("".join(fmt % value for value in row.tolist()) + "\n" for row in rows)


def _column(values: torch.Tensor, digits: int) -> str:
    fmt = f"%.{digits}g\n"
    return "".join(fmt % value for value in values.detach().cpu().reshape(-1).tolist())


def _write(base: Path, suffix: str, text: str) -> Path:
    path = suffixed(base, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)  # a "/" in a cell name: N2D2 does the same
    atomic_write_text(path, text)
    return path


# ----------------------------------------------------------------------------- reading
def named_cells(net) -> Iterable[Tuple[str, nn.Module]]:
    cells = getattr(net, "cells", net)
    if not isinstance(cells, Mapping):
        raise TypeError(f"net must be a Network or a mapping of cell names to cells, got "
                        f"{type(net).__name__}")
    return list(cells.items())


def kinded_cells(net) -> List[Tuple[str, nn.Module, CellKind]]:
    """``(name, cell, kind)`` of each cell of ``net`` that has N2D2 weight files (its kind
    has a weight ``layout`` or ``columns``), in order."""
    found = [(name, cell, kind_of_module(cell)) for name, cell in named_cells(net)]
    return [(name, cell, kind) for name, cell, kind in found
            if kind is not None and (kind.layout is not None or kind.columns)]


def cell_path(directory: Path, name: str) -> Path:
    """``directory/<stem>`` (no suffix yet); a name may not lead outside ``directory``.
    Leading slashes are dropped, as N2D2's ``dir + "/" + name`` does (ONNX-imported cells
    are named like ``/conv1/Conv_output_0``)."""
    stem = cell_file_stem(name).lstrip("/")
    parts = Path(stem).parts
    if not stem or Path(stem).is_absolute() or ".." in parts:
        raise ValueError(f"cell name {name!r} cannot be a file name inside {directory}")
    return directory / stem


def suffixed(base: Path, suffix: str) -> Path:
    return base.parent / f"{base.name}{suffix}.syntxt"
