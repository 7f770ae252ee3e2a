"""The files a run leaves in its output folder, each written atomically.

- ``report.json``: accuracies, sparsity, per-cell figures, timing, seed, threads, whether the
  pruning targets were reached (a ``-test`` run writes ``test_report.json`` instead and
  nothing else);
- ``log.csv``: one row per log point;
- ``weights/``: N2D2's ``<cell>_weights.syntxt``, ``_biases``, ``_masks``, ``_quant_weights``
  text files (BatchNorm: ``_scales``, ``_biases``, ``_means``, ``_variances``);
- ``model.pt``: the final network's state (``torch.load(..., weights_only=True)``);
- ``compact/`` (``--compact``): the compacted network as ``n2prune-compact`` writes it (NET.ini,
  weights/, NET.onnx), its parameters and MACs under ``compact`` in ``report.json``;
- ``learning_curves.png`` and ``sparsity.png``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from n2prune import __version__
from n2prune.prune.reached import missed
from n2prune.train.checkpoint import save_atomic
from n2prune.atomic import atomic_write_text
from n2prune.train.splitrecord import write_split_record

COMPACT_DIR = "compact"   # n2prune-train --compact writes the compacted network here
LOG_COLUMNS = ("log_point", "epoch", "stimuli", "loss", "learn_accuracy", "validation_score",
               "validation_accuracy", "learning_rate", "sparsity", "pruning_done", "processes")


def write_log(output: Path, rows: List[Dict[str, Any]]) -> None:
    """``log.csv``: one row per log point (rewritten whole, atomically)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(Path(output) / "log.csv", buffer.getvalue())


def cell_figures(trainer: Any) -> Dict[str, Dict[str, Any]]:
    """Per cell: type, parameters, zero weights, sparsity, target and current thresholds."""
    from n2prune.network.summary import synapses
    from n2prune.prune.sparsity import cell_counts
    figures: Dict[str, Dict[str, Any]] = {}
    with torch.no_grad():
        for name, cell in trainer.net.cells.items():
            params = synapses(cell)
            if params == 0:
                continue
            entry: Dict[str, Any] = {"type": trainer.net.info[name].type, "params": params}
            weight = getattr(cell, "weight", None)
            quantizer = getattr(cell, "quantizer", None)
            if isinstance(weight, torch.Tensor):
                pruned, connected = cell_counts(cell)  # n2prune.prune.sparsity's definition
                entry.update(weights=connected, zeros=pruned,
                             sparsity=pruned / connected if connected else 0.0)
            entry["threshold"] = quantizer.threshold if quantizer is not None else None
            entry["current_threshold"] = quantizer.get_current_threshold() \
                if quantizer is not None else None
            figures[name] = entry
    return figures


def pruning_status(net: Any) -> Dict[str, Any]:
    """``pruning_reached`` (every PruneCell at its final threshold), ``pruning_unfinished``:
    cell -> [current threshold, target] for the others, and ``targets_missed``: one line per
    cell whose masks miss its current threshold by more than its pattern's rounding (what,
    where and why, :mod:`n2prune.prune.reached`)."""
    cells = {name: cell.quantizer for name, cell in net.pruned_cells().items()}
    unfinished = {name: [q.get_current_threshold(), float(q.threshold)]
                  for name, q in cells.items() if not q.done}
    return {"pruning_reached": not unfinished, "pruning_unfinished": unfinished,
            "targets_missed": [message for _, _, message in missed(cells)]}


def write_outputs(trainer: Any, state: Dict[str, Any], test: Optional[Any],
                  seconds: float) -> Dict[str, Any]:
    """Write every output file; return the report."""
    from n2prune.n2d2io.write import write_weights
    from n2prune.train.plots import plot_learning_curves, plot_sparsity
    output = Path(trainer.output)
    rows = state["rows"]
    best = state.get("best")
    best_row = rows[best["log_point"] - 1] if best else None
    learning = state.get("learning_seconds", 0.0)
    report = {
        "n2prune": __version__,
        "ini": str(trainer.ini_path),
        "seed": trainer.seed,
        "test_accuracy": test.accuracy() if test is not None else None,
        "test_score": test.score(trainer.options.valid_metric) if test is not None else None,
        "validation_metric": trainer.options.valid_metric,
        "validation_accuracy": best_row["validation_accuracy"] if best_row else None,
        "validation_score": best["score"] if best else None,
        "best_log_point": best["log_point"] if best else (len(rows) or None),
        "sparsity": trainer.sparsity(),
        "cells": cell_figures(trainer),
        "epochs": state["stimuli"] / max(1, trainer.provider.epoch_size),
        "stimuli": state["stimuli"],
        "seconds": seconds,
        "learning_seconds": learning,
        "throughput": state["stimuli"] / learning if learning > 0 else None,
        "sets": {name: trainer.provider.size(name) for name in ("Learn", "Validation", "Test")},
        "threads": getattr(trainer, "threads", None),
        "stopped_early": bool(state.get("stopped_early", False)),   # -stop-valid
        **pruning_status(trainer.net),
        **({"budget": state["budget"]} if state.get("budget") else {}),
        **state.get("report", {}),   # -fuse, -test-index (n2prune.train.n2d2modes)
    }
    writes = getattr(trainer, "writes_files", True)   # False on a distributed run's rank > 0
    small = None
    if writes and getattr(trainer.options, "compact", False) and not trainer.options.test_only:
        report["compact"], small = write_compact(trainer.net, trainer.ini_path,
                                                 output / COMPACT_DIR)
    report["costs"] = _costs(trainer.net, small)
    if not writes:
        return report
    if trainer.options.test_only:  # leave the learning run's files as they are
        atomic_write_text(output / "test_report.json", json.dumps(report, indent=2) + "\n")
        return report
    write_weights(trainer.net, output / "weights")
    write_split_record(output / "weights", trainer.seed, trainer.provider)
    save_atomic({"net": trainer.net.state_dict(), "seed": trainer.seed,
                 "input_shape": list(trainer.net.input_shape), "n2prune": __version__},
                output / "model.pt")
    if rows:
        write_log(output, rows)
        plot_learning_curves(rows, output / "learning_curves.png")
    pruned = [(name, fig["sparsity"], fig["threshold"]) for name, fig in report["cells"].items()
              if fig.get("threshold") is not None]
    if pruned:
        plot_sparsity(pruned, output / "sparsity.png")
    atomic_write_text(output / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _costs(net: Any, small: Any = None) -> Optional[Dict[str, Any]]:
    """Parameters, MACs and CPU latency (batch 1) of the dense, masked and compacted network
    (``n2prune.compact.costs``; ``small``: the compacted one when already made); None for a
    network compaction does not know."""
    if not hasattr(net, "info"):
        return None
    from n2prune.compact.costs import cost_report
    return cost_report(net, small, repeats=5, min_seconds=0.005)


def write_compact(net: Any, ini_path: Any, folder: Path) -> "tuple":
    """``--compact``: the compacted network in ``folder`` (NET.ini, weights/, NET.onnx, by
    ``n2prune-compact``'s own call); returns its report entry and the compacted network."""
    import copy
    from n2prune.compact.costs import macs, parameters
    from n2prune.compact.writeback import write_compacted
    plain = copy.deepcopy(net).cpu().eval()
    written, small = write_compacted(plain, str(ini_path), str(folder))
    entry = {"folder": folder.name,
             "files": sorted(str(Path(p).relative_to(folder)) for p in written),
             "removed_groups": small.compaction["removed_groups"],
             "parameters": parameters(small)["total"], "macs": macs(small)["dense"]}
    return entry, small
