"""N2D2's weight files (spec §6 "Weight file format", §4.7): write and read them.

Conv and Deconv write ``OCHW`` (one line per output: each *connected* input channel's kernel, x
fastest, then y) or, when ``cell.export_options`` asks for it, ``HWCO``; Fc writes ``OC`` (one
line per output, all inputs' columns in order). Values are C++ ``<<`` style (``%g``) with 6
significant digits, 10 for a cell with a PruneCell, each followed by a space. Biases, and
BatchNorm's ``_scales``/``_biases``/``_means``/``_variances``, are one value per line.

>>> write_weights(net, "weights")                   # doctest: +SKIP
>>> read_weights(fresh_net, "weights")              # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.conv import Conv
from n2prune.cells.deconv import Deconv
from n2prune.cells.fc import Fc
from n2prune.atomic import atomic_write_text

PathLike = Union[str, Path]
_FORBIDDEN = frozenset('<>:"|?*')
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:nan|inf|infinity))")
BN_FILES = (("scales", "weight"), ("biases", "bias"), ("means", "running_mean"),
            ("variances", "running_var"))   # N2D2's BatchNorm file suffixes, in combined order


def cell_file_stem(name: str) -> str:
    """N2D2's file name for a cell: ``<>:"|?*`` and control characters become ``_``."""
    if not isinstance(name, str):
        raise TypeError(f"cell name must be a string, got {name!r} ({type(name).__name__})")
    return "".join("_" if c in _FORBIDDEN or ord(c) < 32 or ord(c) == 127 else c
                   for c in name)


def format_value(value: float, digits: int = 6) -> str:
    """One value as C++ ``stream << setprecision(digits) << value`` prints it: ``%g``."""
    return "%.*g" % (digits, value)


# ----------------------------------------------------------------------------- kernel layout
@dataclass
class _Kernels:
    """A Conv, Deconv or Fc weight as N2D2 stores it: one (kh, kw) kernel per (output,
    channel), ``connected`` (O, C) telling which exist, exported as OCHW or HWCO lines."""

    cell: nn.Module
    connected: torch.Tensor
    kh: int
    kw: int
    fmt: str
    flip: bool

    @classmethod
    def of(cls, cell: nn.Module) -> "_Kernels":
        if isinstance(cell, Fc):
            return cls(cell, torch.ones(cell.nb_outputs, cell.nb_inputs, dtype=torch.bool),
                       1, 1, "OC", False)
        options = getattr(cell, "export_options", None) or {}
        fmt = options.get("weights_export_format", "OCHW")
        if fmt not in ("OCHW", "HWCO"):
            raise ValueError(f"{type(cell).__name__}: WeightsExportFormat={fmt!r} is not "
                             f"supported; allowed: OCHW, HWCO")
        if options.get("outputs_remap"):
            raise ValueError(f"{type(cell).__name__}: OutputsRemap is not supported in "
                             f"weight files")
        nb_out, nb_in, groups = cell.nb_outputs, cell.nb_inputs, cell.groups
        if cell.connection is not None:
            connected = cell.connection[:, :, 0, 0].detach().cpu().ne(0)
            connected = connected.t() if isinstance(cell, Deconv) else connected
        else:
            og, cg = nb_out // groups, nb_in // groups
            connected = torch.block_diag(*[torch.ones(og, cg)] * groups).bool()
        return cls(cell, connected.contiguous(), cell.weight.shape[2], cell.weight.shape[3],
                   fmt, bool(options.get("weights_export_flip", False)))

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.connected.shape)

    def _blocks(self) -> List[Tuple[slice, slice]]:
        nb_out, nb_in = self.shape
        groups = getattr(self.cell, "groups", 1)
        og, cg = nb_out // groups, nb_in // groups
        return [(slice(g * og, (g + 1) * og), slice(g * cg, (g + 1) * cg))
                for g in range(groups)]

    def dense(self, weight: torch.Tensor) -> torch.Tensor:
        """The cell's weight as an (O, C, kh, kw) tensor, zero where unconnected."""
        weight = weight.detach().cpu()
        if isinstance(self.cell, Fc):
            return weight[:, :, None, None]
        transposed = isinstance(self.cell, Deconv)
        if getattr(self.cell, "groups", 1) == 1:
            return weight.transpose(0, 1) if transposed else weight
        out = weight.new_zeros(*self.shape, self.kh, self.kw)
        for rows, cols in self._blocks():
            out[rows, cols] = weight[cols].transpose(0, 1) if transposed else weight[rows]
        return out

    def store(self, dense: torch.Tensor) -> None:
        """Copy an (O, C, kh, kw) tensor into the cell's weight (its own layout)."""
        if isinstance(self.cell, Fc):
            new = dense[:, :, 0, 0]
        elif isinstance(self.cell, Deconv):
            new = torch.cat([dense[r, c].transpose(0, 1) for r, c in self._blocks()])
        else:
            new = torch.cat([dense[r, c] for r, c in self._blocks()])
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
    """Write every Conv, Deconv, Fc and BatchNorm cell's parameters in N2D2's text format.

    ``net`` is a Network or a mapping of cell names to cells. Weights files hold the
    full-precision, unmasked weights; a cell with a PruneCell also gets
    ``<cell>_quant_weights.syntxt`` (masked) and ``<cell>_masks.syntxt``. Each file is
    written atomically; ``directory`` is created if needed. Returns the files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    with torch.no_grad():
        for name, cell in _named_cells(net):
            if isinstance(cell, (Conv, Deconv, Fc)):
                written += _write_weighted(cell, _cell_path(directory, name))
            elif isinstance(cell, BatchNorm):
                written += _write_batchnorm(cell, _cell_path(directory, name))
    return written


def _write_weighted(cell: nn.Module, base: Path) -> List[Path]:
    kernels = _Kernels.of(cell)
    quantizer = getattr(cell, "quantizer", None)
    digits = 6 if quantizer is None else 10
    files = [_write(base, "_weights", _lines(kernels.rows(kernels.dense(cell.weight)), digits))]
    if cell.bias is not None:
        files.append(_write(base, "_biases", _column(cell.bias, digits)))
    if quantizer is not None:
        masked = kernels.dense(cell.effective_weight())
        files.append(_write(base, "_quant_weights", _lines(kernels.rows(masked), 10)))
        files.append(_suffixed(base, "_masks"))
        quantizer.export_masks(files[-1])
    return files


def _write_batchnorm(cell: BatchNorm, base: Path) -> List[Path]:
    return [_write(base, "_" + suffix, _column(getattr(cell, attr), 6))
            for suffix, attr in BN_FILES]


def _lines(rows: Iterable[torch.Tensor], digits: int) -> str:
    fmt = f"%.{digits}g "
    return "".join("".join(fmt % value for value in row.tolist()) + "\n" for row in rows)


def _column(values: torch.Tensor, digits: int) -> str:
    fmt = f"%.{digits}g\n"
    return "".join(fmt % value for value in values.detach().cpu().reshape(-1).tolist())


def _write(base: Path, suffix: str, text: str) -> Path:
    path = _suffixed(base, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)  # a "/" in a cell name: N2D2 does the same
    atomic_write_text(path, text)
    return path


# ----------------------------------------------------------------------------- reading
def read_weights(net, directory: PathLike, ignore_missing: bool = True) -> List[Path]:
    """Import N2D2 weight files (the ``-w DIR`` option) into the cells; returns files read.

    Reads ``<cell>_weights.syntxt``/``_biases.syntxt`` (BatchNorm: ``_scales``, ``_biases``,
    ``_means``, ``_variances``) or the combined ``<cell>.syntxt`` (per output: its weights,
    then its bias), and ``<cell>_masks.syntxt`` for a cell with a PruneCell (masks are not
    recomputed otherwise, as in N2D2). Unconnected kernels stay 0. A cell whose weights file
    is missing is skipped when ``ignore_missing`` (N2D2's ``-w``), an error otherwise. Every
    file is parsed before any cell changes; on an error nothing is imported.
    """
    directory = Path(directory)
    imports: List[Tuple[nn.Module, Callable[[], None], List[Path]]] = []
    for name, cell in _named_cells(net):
        if isinstance(cell, (Conv, Deconv, Fc)):
            found = _plan_weighted(name, cell, _cell_path(directory, name), ignore_missing)
        elif isinstance(cell, BatchNorm):
            found = _plan_batchnorm(name, cell, _cell_path(directory, name), ignore_missing)
        else:
            continue
        if found is not None:
            imports.append((cell, *found))
    saved = [(t, t.detach().clone()) for cell, _, _ in imports
             for t in list(cell.parameters()) + list(cell.buffers())]
    try:
        for _, apply, _ in imports:
            apply()
    except BaseException:
        with torch.no_grad():
            for tensor, copy in saved:
                tensor.copy_(copy)
        raise
    return [path for _, _, files in imports for path in files]


def _plan_weighted(name: str, cell: nn.Module, base: Path, ignore_missing: bool):
    kernels = _Kernels.of(cell)
    has_bias = cell.bias is not None
    combined = _suffixed(base, "")
    if combined.is_file():
        dense, biases = _read_combined(combined, kernels, has_bias)
        files = [combined]
    else:
        weights_file = _suffixed(base, "_weights")
        if not weights_file.is_file():
            if ignore_missing:
                return None
            raise ValueError(f"{weights_file}: weights file not found for cell {name!r} "
                             f"(nor a combined {combined.name})")
        files = [weights_file]
        dense = kernels.from_rows(_read_rows(weights_file, kernels.counts(), kernels.describe,
                                             "one per kernel position" if kernels.fmt ==
                                             "HWCO" else "one per output"))
        biases = None
        if has_bias:
            files.append(_require(_suffixed(base, "_biases"), f"cell {name!r} has biases"))
            biases = _read_column(files[-1], cell.nb_outputs, "bias")
    masks = _masks_file(name, cell, base, ignore_missing)

    def apply() -> None:
        kernels.store(dense)
        if biases is not None:
            with torch.no_grad():
                cell.bias.copy_(torch.from_numpy(biases).to(cell.bias))
        if masks is not None:
            cell.effective_weight()  # re-links the PruneCell to its cell
            cell.quantizer.import_masks(masks)

    return apply, files + ([masks] if masks is not None else [])


def _masks_file(name: str, cell: nn.Module, base: Path, ignore_missing: bool) -> Optional[Path]:
    if getattr(cell, "quantizer", None) is None:
        return None
    path = _suffixed(base, "_masks")
    if path.is_file():
        return path
    if ignore_missing:
        return None
    raise ValueError(f"{path}: masks file not found for cell {name!r} (it has a PruneCell)")


def _plan_batchnorm(name: str, cell: BatchNorm, base: Path, ignore_missing: bool):
    count = cell.nb_outputs
    combined = _suffixed(base, "")
    if combined.is_file():
        stream = _Stream(combined, 4 * count, f"{count} channels x (scale, bias, mean, "
                                              f"variance)")
        table = stream.values.reshape(count, 4)
        columns, files = [table[:, i] for i in range(4)], [combined]
    else:
        biases = _suffixed(base, "_biases")
        if not biases.is_file():
            if ignore_missing:
                return None
            raise ValueError(f"{biases}: biases file not found for BatchNorm cell {name!r} "
                             f"(nor a combined {combined.name})")
        columns, files = [], []
        for suffix, _ in BN_FILES:
            path = _suffixed(base, "_" + suffix)
            if suffix == "scales" and ignore_missing and not path.is_file():
                columns.append(np.ones(count, dtype=np.float32))  # N2D2: scales default to 1
                continue
            files.append(_require(path, f"BatchNorm cell {name!r} needs it"))
            columns.append(_read_column(path, count, suffix[:-1]))
    negative = np.flatnonzero(columns[3] < 0)
    if negative.size:
        where = combined if combined.is_file() else _suffixed(base, "_variances")
        raise ValueError(f"{where}: negative variance {columns[3][negative[0]]:g} for channel "
                         f"{negative[0]}")

    def apply() -> None:
        with torch.no_grad():
            for (_, attr), column in zip(BN_FILES, columns):
                target = getattr(cell, attr)
                target.copy_(torch.from_numpy(np.asarray(column, np.float32)).to(target))

    return apply, files


def _read_combined(path: Path, kernels: _Kernels, has_bias: bool):
    """A combined ``<cell>.syntxt``: OCHW/OC per output weights then bias; HWCO all weights
    then all biases."""
    counts = kernels.counts()
    nb_out = kernels.shape[0]
    bias = 1 if has_bias else 0
    if kernels.fmt == "HWCO":
        what = f"{len(counts)} kernel positions x {counts[0]} connections, then {nb_out} biases"
        stream = _Stream(path, sum(counts) + bias * nb_out, what)
        weights = stream.values[:sum(counts)].reshape(len(counts), -1)
        biases = stream.values[sum(counts):] if has_bias else None
        return kernels.from_rows(list(weights)), biases
    what = f"{nb_out} outputs, each its weights then its bias" if has_bias else \
        f"{nb_out} outputs' weights"
    stream = _Stream(path, sum(counts) + bias * nb_out, what)
    ends = np.cumsum([count + bias for count in counts])
    starts = ends - np.asarray(counts) - bias
    rows = [stream.values[s:s + c] for s, c in zip(starts, counts)]
    biases = stream.values[ends - 1] if has_bias else None
    return kernels.from_rows(rows), biases


# ----------------------------------------------------------------------------- parsing
def _read_text(path: Path) -> List[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text weights file") from None


def _parse_line(text: str, path: Path, line: int) -> np.ndarray:
    words = text.split()
    for index, word in enumerate(words):
        if not _NUMBER.fullmatch(word):
            raise ValueError(f"{path}:{line}: value {index + 1} is {word!r}, not a number")
    return np.array([float(word) for word in words], dtype=np.float64)


def _read_rows(path: Path, counts: Sequence[int], describe: Callable[[int], str],
               unit: str) -> List[np.ndarray]:
    """One line per entry of ``counts``, each with exactly that many values."""
    lines = _read_text(path)
    while len(lines) > len(counts) and not lines[-1].strip():
        lines.pop()
    if len(lines) < len(counts):
        raise ValueError(f"{path}:{max(len(lines), 1)}: file ends after {len(lines)} lines, "
                         f"expected {len(counts)} ({unit})")
    if len(lines) > len(counts):
        raise ValueError(f"{path}:{len(counts) + 1}: more lines than the {len(counts)} "
                         f"expected ({unit})")
    rows = []
    for index, (text, count) in enumerate(zip(lines, counts)):
        values = _parse_line(text, path, index + 1)
        if values.size != count:
            raise ValueError(f"{path}:{index + 1}: {values.size} values, expected {count} "
                             f"({describe(index)})")
        rows.append(values)
    return rows


def _read_column(path: Path, count: int, what: str) -> np.ndarray:
    rows = _read_rows(path, [1] * count, lambda _: f"one {what} per line",
                      f"one {what} per line")
    return np.concatenate(rows).astype(np.float32)


class _Stream:
    """All values of a file, whatever its line breaks, checked to be exactly ``expected``."""

    def __init__(self, path: Path, expected: int, what: str):
        parsed = [_parse_line(text, path, index + 1)
                  for index, text in enumerate(_read_text(path))]
        sizes = np.cumsum([row.size for row in parsed]) if parsed else np.zeros(0, int)
        total = int(sizes[-1]) if sizes.size else 0
        if total < expected:
            last = max(len(parsed), 1)
            raise ValueError(f"{path}:{last}: file ends after {total} values, expected "
                             f"{expected} ({what})")
        if total > expected:
            line = int(np.searchsorted(sizes, expected, side="right")) + 1
            raise ValueError(f"{path}:{line}: more values than the {expected} expected "
                             f"({what})")
        self.values = (np.concatenate(parsed) if parsed else np.zeros(0)).astype(np.float32)


# ----------------------------------------------------------------------------- paths
def _named_cells(net) -> Iterable[Tuple[str, nn.Module]]:
    cells = getattr(net, "cells", net)
    if not isinstance(cells, Mapping):
        raise TypeError(f"net must be a Network or a mapping of cell names to cells, got "
                        f"{type(net).__name__}")
    return list(cells.items())


def _cell_path(directory: Path, name: str) -> Path:
    """``directory/<stem>`` (no suffix yet); a name may not lead outside ``directory``."""
    stem = cell_file_stem(name)
    parts = Path(stem).parts
    if not stem or Path(stem).is_absolute() or ".." in parts:
        raise ValueError(f"cell name {name!r} cannot be a file name inside {directory}")
    return directory / stem


def _suffixed(base: Path, suffix: str) -> Path:
    return base.parent / f"{base.name}{suffix}.syntxt"


def _require(path: Path, why: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{path}: file not found ({why})")
    return path
