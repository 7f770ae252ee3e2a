"""Reading N2D2's weight files back into a network: N2D2's ``-w DIR`` (spec §6, §4.7).

The layout is the one ``n2prune.n2d2io.write`` writes. Every file is checked before any cell
changes; an error names the file, the line and what was expected.

>>> read_weights(fresh_net, "weights")              # doctest: +SKIP
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from n2prune.cells.kinds import CellKind
from n2prune.cells.layouts import ColumnFile
from n2prune.n2d2io.write import Kernels, PathLike, cell_path, kinded_cells, suffixed

_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:nan|inf|infinity))")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class _BadValue(ValueError):
    """A value that is not a finite float32 number; read_weights adds the cell's name."""


def read_weights(net, directory: PathLike, ignore_missing: bool = True) -> List[Path]:
    """Import N2D2 weight files (the ``-w DIR`` option) into the cells; returns files read.

    Reads, for a cell whose kind has a weight ``layout``, ``<cell>_weights.syntxt`` and
    ``_biases.syntxt`` or the combined ``<cell>.syntxt`` (per output: its weights, then its
    bias); for one with ``columns`` (BatchNorm: ``_scales``, ``_biases``, ``_means``,
    ``_variances``) a file per column or the combined file (per channel, a value of each);
    and ``<cell>_masks.syntxt`` for a cell with a PruneCell (masks are not recomputed
    otherwise, as in N2D2). The files hold connected kernels only: as in N2D2, unconnected
    kernels keep their values after an ``OCHW`` file and become 0 after an ``HWCO`` one
    (N2D2 sets every kernel from a zeroed table there). A cell whose weights file
    is missing is skipped when ``ignore_missing`` (N2D2's ``-w``), an error otherwise. Every
    file is parsed before any cell changes; on an error nothing is imported.
    """
    directory = Path(directory)
    imports: List[Tuple[nn.Module, Callable[[], None], List[Path]]] = []
    for name, cell, kind in kinded_cells(net):
        plan = _plan_weighted if kind.layout is not None else _plan_columns
        try:
            found = plan(name, cell, kind, cell_path(directory, name), ignore_missing)
        except _BadValue as error:
            raise ValueError(f"{error} (cell {name!r})") from None
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


def _plan_weighted(name: str, cell: nn.Module, kind: CellKind, base: Path,
                   ignore_missing: bool):
    kernels = Kernels.of(cell, kind.layout)
    has_bias = cell.bias is not None
    combined = suffixed(base, "")
    if combined.is_file():
        dense, biases = _read_combined(combined, kernels, has_bias)
        files = [combined]
    else:
        weights_file = suffixed(base, "_weights")
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
            files.append(_require(suffixed(base, "_biases"), f"cell {name!r} has biases"))
            biases = _read_column(files[-1], cell.nb_outputs, "bias")
    masks = _masks_file(name, cell, base, ignore_missing)

    def apply() -> None:
        kernels.store(dense if kernels.fmt == "HWCO" else kernels.keep_unconnected(dense))
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
    path = suffixed(base, "_masks")
    if path.is_file():
        return path
    if ignore_missing:
        return None
    raise ValueError(f"{path}: masks file not found for cell {name!r} (it has a PruneCell)")


def _plan_columns(name: str, cell: nn.Module, kind: CellKind, base: Path,
                  ignore_missing: bool):
    columns: Sequence[ColumnFile] = kind.columns
    count, what = cell.nb_outputs, type(cell).__name__
    combined = suffixed(base, "")
    if combined.is_file():
        stream = _Stream(combined, len(columns) * count,
                         f"{count} channels x ({', '.join(c.what for c in columns)})")
        table = stream.values.reshape(count, len(columns))
        values, files = [table[:, i] for i in range(len(columns))], [combined]
    else:
        first = _first_required(columns)
        if not suffixed(base, "_" + first.suffix).is_file():
            if ignore_missing:
                return None
            raise ValueError(f"{suffixed(base, '_' + first.suffix)}: {first.suffix} file not "
                             f"found for {what} cell {name!r} (nor a combined "
                             f"{combined.name})")
        values, files = [], []
        for column in columns:
            path = suffixed(base, "_" + column.suffix)
            if column.default is not None and ignore_missing and not path.is_file():
                values.append(np.full(count, column.default, dtype=np.float32))
                continue
            files.append(_require(path, f"{what} cell {name!r} needs it"))
            values.append(_read_column(path, count, column.what))
    for column, value in zip(columns, values):
        below = np.flatnonzero(value < column.minimum) if column.minimum is not None else ()
        if len(below):
            where = combined if combined.is_file() else suffixed(base, "_" + column.suffix)
            how = "negative " if column.minimum == 0 else f"below {column.minimum:g}: "
            raise ValueError(f"{where}: {how}{column.what} {value[below[0]]:g} for channel "
                             f"{below[0]}")

    def apply() -> None:
        with torch.no_grad():
            for column, value in zip(columns, values):
                target = getattr(cell, column.attribute)
                target.copy_(torch.from_numpy(np.asarray(value, np.float32)).to(target))

    return apply, files


def _first_required(columns: Sequence[ColumnFile]) -> ColumnFile:
    """The file whose absence means the cell has no files (not one with a default)."""
    return next((column for column in columns if column.default is None), columns[0])


def _read_combined(path: Path, kernels: Kernels, has_bias: bool):
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
    values = np.array([float(word) for word in words], dtype=np.float64)
    with np.errstate(over="ignore"):
        bad = np.flatnonzero(~np.isfinite(values.astype(np.float32)))
    if bad.size:
        index = int(bad[0])
        raise _BadValue(f"{path}:{line}: value {index + 1} is {words[index]!r}, not a finite "
                        f"float32 number (|x| <= {_FLOAT32_MAX:.8g})")
    return values


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

def _require(path: Path, why: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{path}: file not found ({why})")
    return path



# ----------------------------------------------------------------------------- a whole folder
def missing_weight_files(net, directory: PathLike) -> Dict[str, Path]:
    """Cell name -> the file each cell of ``net`` with weight files would read first
    from ``directory`` and that is not there (nor its combined ``<cell>.syntxt``)."""
    directory, missing = Path(directory), {}
    for name, _, kind in kinded_cells(net):
        first = "_weights" if kind.layout is not None else \
            "_" + _first_required(kind.columns).suffix
        base = cell_path(directory, name)
        if not suffixed(base, "").is_file() and not suffixed(base, first).is_file():
            missing[name] = suffixed(base, first)
    return missing


def read_weight_folder(net, directory: PathLike, allow_partial: bool = False,
                       option: str = "-w") -> List[Path]:
    """Read a whole folder of N2D2 weight files (``-w DIR`` on the command line).

    Unlike N2D2's ``-w``, a folder missing a cell's file is refused (the cell would keep its
    random initial weights and every result would be silently wrong), in one line naming the
    missing files; ``allow_partial`` reads what is there and warns once, naming the cells left
    at their initial weights. A folder holding no file of the network is always refused.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{option} {directory}: no N2D2 weight files there (no such "
                         f"directory)")
    missing = missing_weight_files(net, directory)
    expected = len(kinded_cells(net))
    if expected and len(missing) == expected:
        raise ValueError(f"{option} {directory}: no N2D2 weight file of this network's cells "
                         f"found there (<cell>_weights.syntxt)")
    if missing and not allow_partial:
        raise ValueError(f"{option} {directory}: {_listed(list(missing.values()))} missing ({len(missing)} of "
                         f"{expected} cells): the folder is partial; give the complete folder "
                         f"(or --allow-partial-weights to keep those cells' initial weights)")
    read = read_weights(net, directory, ignore_missing=True)
    if missing:
        warnings.warn(f"{option} {directory}: partial folder: {len(missing)} cell(s) keep "
                      f"their initial (random) weights, their files being absent: "
                      f"{', '.join(missing)}")
    return read


def _listed(paths: Sequence[Path], most: int = 5) -> str:
    names = [path.name for path in paths]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more
