"""The sparse form of an INI network on disk, with its latency report (``n2prune-compact
--sparse``), and end-to-end latency of dense / masked / sparse models side by side."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from n2prune.atomic import atomic_write, atomic_write_text, make_folder
from n2prune.prune.attach import detach
from n2prune.sparse.layers import PackedLayer, SparseConv, SparseConv2d, SparseFc, SparseLinear
from n2prune.sparse.matrix import SparseWeight
from n2prune.sparse.storage import PackedWeight
from n2prune.sparse.convert import SparsifyReport, relative_difference, sparsify
from n2prune.examples import run
from n2prune.sparse.timing import time_candidates

#: The classes a ``torch.save``d sparse model adds to those of the model itself: give them
#: (with the model's own) to ``torch.serialization.safe_globals`` to load it with
#: ``torch.load(path, weights_only=True)``.
SAFE_GLOBALS = [PackedLayer, PackedWeight, SparseConv, SparseConv2d, SparseFc, SparseLinear,
                SparseWeight]


def saved_bytes(obj: Any) -> int:
    """Size of ``torch.save(obj)`` in bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer().nbytes


def compare_latency(models: Dict[str, nn.Module], example: Any, rounds: int = 21
                    ) -> Dict[str, Dict[str, float]]:
    """Per model: median seconds on ``example``, speed-up over the first model (median of
    per-round ratios, alternating rounds), max output difference relative to the first."""
    names = list(models)
    wrapped = [_Runner(models[name], example) for name in names]
    medians, speedups = time_candidates(wrapped, (), rounds)
    with torch.no_grad():
        reference = run(models[names[0]], example)
        return {name: {"seconds": medians[i], "speedup": speedups[i],
                       "max_difference": relative_difference(run(models[name], example),
                                                             reference)}
                for i, name in enumerate(names)}


class _Runner(nn.Module):
    """``model(example)`` as a call without arguments (what ``time_candidates`` times)."""

    def __init__(self, model: nn.Module, example: Any):
        super().__init__()
        self.model, self.example = model, example

    def forward(self) -> Any:
        return run(self.model, self.example)


def write_sparse(net: nn.Module, ini_path: str, out_dir: str, batch: int = 1,
                 rounds: int = 21) -> Tuple[List[Path], SparsifyReport, List[str]]:
    """Sparsify a copy of ``net`` (masks as loaded; pruned cells computed dense are stored
    packed) on a batch of ``batch`` random inputs and write ``out_dir/NAME.sparse.pt``
    (``torch.save`` of the whole network: load it with ``weights_only=False``, or with
    ``safe_globals``) and ``out_dir/NAME.sparse.json`` (the per-layer choices and the
    end-to-end latency of dense, masked and sparse). Returns the files, the report and the
    lines to print."""
    out = make_folder(out_dir)
    stem = Path(ini_path).stem
    net.eval()
    example = torch.randn(batch, *net.input_shape, generator=torch.Generator().manual_seed(0))
    dense = copy.deepcopy(net)
    detach(dense)
    sparse = copy.deepcopy(net)
    report = sparsify(sparse, example)
    latency = compare_latency({"dense": dense, "masked": net, "sparse": sparse}, example,
                              rounds)
    sizes = {"dense": saved_bytes(dense.state_dict()), "sparse": saved_bytes(sparse.state_dict())}
    written = [atomic_write(out / f"{stem}.sparse.pt", lambda f: torch.save(sparse, f))]
    data = {"batch": batch, "threads": torch.get_num_threads(), "latency": latency,
            "state_dict_bytes": sizes, **report.as_dict()}
    written.append(atomic_write_text(out / f"{stem}.sparse.json", json.dumps(data, indent=1)))
    lines = [str(report)] + [
        f"{name:<6} {1e3 * row['seconds']:8.3f} ms  {row['speedup']:5.2f}x  "
        f"max difference {row['max_difference']:.1e}" for name, row in latency.items()]
    lines.append(f"batch {batch}, {torch.get_num_threads()} thread(s); weights on disk "
                 f"{sizes['sparse']:,} bytes sparse, {sizes['dense']:,} dense")
    return written, report, lines
