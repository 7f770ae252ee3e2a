"""``n2prune-compact``'s library call: compact a network and write it as an INI file, N2D2
weight files and ONNX.

N2D2 has no position-dependent bias, so a ``shift`` map left by removed channels (see
:mod:`n2prune.compact.shrink`) is written to the N2D2 files as its mean, folded into the bias
or the next BatchNorm's mean, with a warning giving the largest difference; the ONNX file
keeps it exactly.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from n2prune.atomic import atomic_write_text, make_folder
from n2prune.cells.batchnorm import BatchNorm
from n2prune.compact.ini_writer import compacted_ini_text
from n2prune.compact.shrink import ShiftedConv, ShiftedFc, compact
from n2prune.n2d2io.write import write_weights


def n2d2_ready(small) -> "tuple":
    """A copy of ``small`` without shift maps (means folded where N2D2 can hold them) and,
    per cell, the largest difference this makes to its pre-activation output."""
    ready = copy.deepcopy(small)
    changes: Dict[str, float] = {}
    for name, cell in ready.cells.items():
        if not isinstance(cell, (ShiftedConv, ShiftedFc)):
            continue
        shift = cell._buffers.pop("shift")
        shift = shift[0] if isinstance(cell, ShiftedFc) else shift
        mean = shift.reshape(shift.shape[0], -1).mean(1)
        cell.__class__ = cell.__class__.__mro__[1]
        readers = [r for r, info in ready.info.items() if name in info.inputs]
        with torch.no_grad():
            if cell.bias is not None:
                cell.bias.add_(mean)
                lost = shift - mean.reshape(-1, *([1] * (shift.dim() - 1)))
            elif len(readers) == 1 and isinstance(ready.cells[readers[0]], BatchNorm) and \
                    ready.info[readers[0]].inputs == [name] and cell.activation is None:
                ready.cells[readers[0]].running_mean.sub_(mean)
                lost = shift - mean.reshape(-1, *([1] * (shift.dim() - 1)))
            else:
                lost = shift
        changes[name] = float(lost.abs().max())
    return ready, changes


def write_compacted(net, ini_path: str, out_dir: str, onnx: bool = True,
                    name: Optional[str] = None, masked_onnx: bool = False
                    ) -> Tuple[List[Path], object]:
    """Compact ``net`` (built from ``ini_path``) and write ``out_dir/NAME.ini``, its weights
    in ``out_dir/weights/`` and ``out_dir/NAME.onnx`` (and, with ``masked_onnx``, ``net``
    itself, masks applied, as ``out_dir/NAME.masked.onnx``); returns the files written and
    the compacted network (exact, shift maps included)."""
    out = make_folder(out_dir)
    stem = name or Path(ini_path).stem
    small = compact(net)
    ready, changes = n2d2_ready(small)
    for cell, difference in changes.items():
        warnings.warn(f"[{cell}]: removed channels leave a position-dependent constant "
                      f"(zero padding after a bias or BatchNorm shift); N2D2 cannot hold it: "
                      f"the INI/N2D2 files use its mean (largest difference {difference:.3g}); "
                      f"{stem}.onnx is exact")
    written = [atomic_write_text(out / f"{stem}.ini",
                                 compacted_ini_text(ready, ini_path, str(out)))]
    written += write_weights(ready, out / "weights")
    if onnx or masked_onnx:
        from n2prune.compact.onnx_export import export_onnx
        if onnx:
            written.append(export_onnx(small, out / f"{stem}.onnx"))
        if masked_onnx:
            written.append(export_onnx(net, out / f"{stem}.masked.onnx"))
    return written, small
