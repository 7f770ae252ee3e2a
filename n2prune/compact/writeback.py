"""``n2prune-compact``'s library call: compact a network and write it as an INI file, N2D2
weight files and ONNX.

N2D2 has no position-dependent bias, so a ``shift`` map left by removed channels (see
:mod:`n2prune.compact.shrink`) is written to the N2D2 files as its mean, folded into the bias
or the next BatchNorm's mean, with a warning giving the largest difference; the ONNX file
keeps it exactly.

Every write-back is read back (:func:`check_read_back`: the INI built again, the weight files
read into it, its outputs compared with the compacted network's) before it is reported done,
and the folder gets a ``.compacted.json`` listing the files written.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from n2prune.atomic import atomic_write_text, make_folder
from n2prune.cells.kinds import kind_of
from n2prune.cells.shifted import Shifted
from n2prune.compact.ini_writer import compacted_ini_text
from n2prune.compact.onnx_export import export_onnx
from n2prune.compact.shrink import compact
from n2prune.n2d2io.read import read_weights
from n2prune.n2d2io.write import write_weights
from n2prune.network.build import load_network

MANIFEST = ".compacted.json"   # what a write-back wrote (the next one's --overwrite removes it)


def n2d2_ready(small) -> "tuple":
    """A copy of ``small`` without shift maps (means folded where N2D2 can hold them) and,
    per cell, the largest difference this makes to its pre-activation output."""
    ready = copy.deepcopy(small)
    changes: Dict[str, float] = {}
    for name, cell in ready.cells.items():
        if not isinstance(cell, Shifted):
            continue
        shift = cell.unshift()
        mean = shift.reshape(shift.shape[0], -1).mean(1)
        readers = [r for r, info in ready.info.items() if name in info.inputs]
        absorb = kind_of(ready.info[readers[0]].type).absorb_input_offset \
            if len(readers) == 1 else None
        with torch.no_grad():
            if cell.bias is not None:
                cell.bias.add_(mean)
                lost = shift - mean.reshape(-1, *([1] * (shift.dim() - 1)))
            elif absorb is not None and ready.info[readers[0]].inputs == [name] and \
                    cell.activation is None:
                absorb(ready.cells[readers[0]], mean)
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
    try:
        written += write_weights(ready, out / "weights")
        check_read_back(ready, out / f"{stem}.ini", out / "weights",
                        getattr(getattr(net, "ini", None), "environ", None))
    except BaseException:   # leave no network that does not read back
        for path in written:
            path.unlink(missing_ok=True)
        raise
    if onnx or masked_onnx:
        if onnx:
            written.append(export_onnx(small, out / f"{stem}.onnx"))
        if masked_onnx:
            written.append(export_onnx(net, out / f"{stem}.masked.onnx"))
    written.append(atomic_write_text(out / MANIFEST, json.dumps(
        {"written_by": "n2prune-compact", "ini": str(ini_path),
         "files": sorted(str(p.relative_to(out)) for p in map(Path, written))}, indent=1)))
    return written, small


def check_read_back(ready, ini_file: Path, weights: Path, environ=None) -> None:
    """Build the network ``ini_file`` describes, read ``weights`` into it and compare it
    with ``ready`` (cells, parameter shapes, outputs on a random input); a ValueError names
    the first difference. The text files hold 6 to 10 significant digits, hence the
    tolerance."""
    where = f"{ini_file} with {weights}: the written network does not read back"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the warnings the first reading gave already
        try:
            back = load_network(str(ini_file), environ=environ).eval()
            read_weights(back, weights, ignore_missing=False)
        except ValueError as exc:
            raise ValueError(f"{where} ({exc}); nothing was kept: please report it") from None
    if list(back.cells) != list(ready.cells):
        raise ValueError(f"{where}: cells {list(back.cells)}, the compacted network has "
                         f"{list(ready.cells)}")
    mine = dict(ready.state_dict())
    for key, value in back.state_dict().items():
        if isinstance(value, torch.Tensor) and isinstance(mine.get(key), torch.Tensor) and \
                mine[key].shape != value.shape:
            raise ValueError(f"{where}: {key} is {list(value.shape)}, the compacted "
                             f"network has {list(mine[key].shape)}")
    x = torch.rand(2, *ready.input_shape, generator=torch.Generator().manual_seed(0))
    names = list(ready.cells)
    with torch.no_grad():
        expected, got = ready.eval().outputs(x, names), back.outputs(x, names)
    for name in names:
        scale = max(1.0, float(expected[name].abs().max()))
        if not torch.allclose(got[name], expected[name], rtol=1e-3, atol=1e-4 * scale):
            worst = float((got[name] - expected[name]).abs().max())
            raise ValueError(f"{where}: cell {name!r} gives outputs up to {worst:.3g} away "
                             f"from the compacted network's")
