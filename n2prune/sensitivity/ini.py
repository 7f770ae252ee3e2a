"""Sensitivity of an INI network, scored as ``n2prune-train`` validates, and budgets written
back into the INI file.

``analyse_ini("net.ini", "out", weights_dir=...)`` builds the network and its data, loads the
weights, and runs :func:`~n2prune.sensitivity.analysis.sensitivity` with the trainer's
evaluation (``n2prune.train.evaluation``: the Validation set, N2D2's metric averaged over the
classes; ``metric="Loss"``: minus the objective's mean loss there, which is what
``n2prune-train --budget sensitivity`` scores). ``write_budget_ini`` writes the INI with each cell's ``QWeight.Threshold`` set to its
budget, everything else as written (``n2prune.compact.ini_writer`` keeps comments, key order,
``${VAR}`` and ``$(...)``; a template instance holding a cell is expanded in place). Cells
that prune the same channels (``QWeight.PruningScope=Coupled``) are one unit: one curve, one
budget entry, the unit's ``QWeight.Threshold`` written into each of its cells.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from n2prune import ini as ini_module
from n2prune.atomic import atomic_write, make_folder
from n2prune.compact.ini_writer import COMMENT_OUT, edited_ini_text
from n2prune.data import build_provider
from n2prune.errors import ConfigError
from n2prune.n2d2io.read import read_weights
from n2prune.onnxin import refuse_training
from n2prune.prune.coupled import split_units
from n2prune.network.build import build_network
from n2prune.network.routing import config_names
from n2prune.ini.values import read_word
from n2prune.sensitivity.analysis import DEFAULT_SPARSITIES, sensitivity
from n2prune.sensitivity.budget import TARGETS, allocate
from n2prune.sensitivity.records import Sensitivity
from n2prune.train.evaluation import evaluate_set, mean_loss
from n2prune.train.metrics import METRICS
from n2prune.train.objective import make_objective

CSV, PNG = "sensitivity.csv", "sensitivity.png"
LOSS = "Loss"   # minus the mean loss: continuous, as n2prune-train --budget sensitivity scores


@dataclass
class IniAnalysis:
    """The network the analysis ran on (weights loaded, PruneCells kept) and its result."""

    net: object
    result: Sensitivity


def network_evaluator(net, provider, seed: int, metric: str = "Sensitivity",
                      set_name: str = "Validation"):
    """``evaluate(model) -> float``: ``metric`` of ``net``'s primary target on ``set_name``,
    computed as ``n2prune-train`` validates (``model`` is ``net`` or a copy of it); ``Loss``:
    minus the objective's mean loss, as ``n2prune-train --budget sensitivity`` scores."""
    if metric not in METRICS and metric != LOSS:
        raise ValueError(f"metric {metric!r}: known metrics are {', '.join(METRICS)} and "
                         f"{LOSS} (minus the mean loss)")
    if provider.size(set_name) == 0:
        raise ValueError(f"the {set_name} set is empty: the sensitivity analysis scores the "
                         f"network on it (check [database] and its fractions)")
    if not net.targets:
        raise ConfigError("missing target: add a [<cell>.Target] section naming the cell to "
                          "score", path=getattr(net.ini, "path", None))
    objective = make_objective(net, net.targets[0], max(provider.nb_labels, 1))
    if metric == LOSS:
        return lambda model: -mean_loss(model, provider, objective, set_name, seed,
                                        provider.batch_size)
    return lambda model: evaluate_set(model, provider, objective, set_name, seed,
                                      provider.batch_size).score(metric)


def analyse_ini(ini_path: str, output: str, weights_dir: Optional[str] = None, seed: int = 1,
                sparsities: Sequence[float] = DEFAULT_SPARSITIES,
                criterion: Optional[str] = None, pattern: Optional[str] = None,
                metric: str = "Sensitivity", overwrite: bool = False, quiet: bool = True,
                environ: Optional[Mapping[str, str]] = None) -> IniAnalysis:
    """Analyse ``ini_path`` (weights from ``weights_dir``, else its fillers with ``seed``) and
    write ``output/sensitivity.csv`` and ``output/sensitivity.png``. ``seed`` also draws the
    database split: give the seed of the run that trained the weights, so the Validation set
    is the one it validated on. A CSV already there is continued (``overwrite``: replaced)."""
    refuse_training(ini_path)
    ini = ini_module.load(ini_path, os.environ if environ is None else environ)
    net = build_network(ini, seed=seed)
    if weights_dir is not None:
        if not Path(weights_dir).is_dir():
            raise ValueError(f"-w {weights_dir}: no such directory of N2D2 weight files")
        if not read_weights(net, weights_dir, ignore_missing=True):
            raise ValueError(f"-w {weights_dir}: no N2D2 weight file of this network's cells "
                             f"found there (<cell>_weights.syntxt)")
    provider = build_provider(ini, seed=seed)
    evaluate = network_evaluator(net, provider, seed, metric)
    folder = make_folder(output)
    if overwrite and (folder / CSV).exists():
        (folder / CSV).unlink()
    with open(ini_path, "rb") as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()[:16]
    # cells pruning the same channels (QWeight.PruningScope=Coupled) are analysed as one unit,
    # as n2prune-train --budget sensitivity analyses them
    single, units = split_units({name: cell.quantizer for name, cell in
                                 net.pruned_cells().items()})
    if units and pattern not in (None, "Channel"):
        raise ValueError(f"--pattern {pattern}: {', '.join(units)} prune the same channels "
                         f"(QWeight.PruningScope=Coupled), by the Channel pattern only; give "
                         f"--pattern Channel, or none (each cell's own)")
    result = sensitivity(net, evaluate, cells=single or None, units=units,
                         sparsities=sparsities, criterion=criterion, pattern=pattern,
                         csv=folder / CSV, plot=folder / PNG, seed=seed,
                         quiet=quiet, identity=f"{metric} Validation seed={seed} ini={digest}")
    return IniAnalysis(net, result)


def budget_edits(net, thresholds: Mapping[str, float],
                 method: Optional[Mapping[str, str]] = None
                 ) -> Dict[str, Dict[str, Optional[str]]]:
    """INI edits giving each cell of ``thresholds`` its ``QWeight.Threshold`` (and
    ``QWeight.StartThreshold`` where the old start is above the new target, as a Gradual
    schedule would begin above it), and the keys of ``method`` (``{"QWeight.PruningFiller":
    "L1Norm", ...}``: the criterion and pattern the analysis pruned with, where they were not
    the cells' own, so the network trains with the method its budget was chosen for). A
    ConfigSection value overrides a cell's own, so such a key is commented out of the
    ConfigSection and written into every pruned cell using it (the cells outside the budget
    keep their value)."""
    values: Dict[str, Dict[str, str]] = {}
    pruned = net.pruned_cells()
    for name, target in thresholds.items():
        if name not in pruned:
            raise ValueError(f"budget: {name!r} is not a cell with QWeight=Prune (those are: "
                             f"{', '.join(pruned)})")
        cell = pruned[name].quantizer
        values[name] = {"QWeight.Threshold": f"{target:.4f}", **(method or {})}
        if cell.prune_mode == "Gradual" and cell.start > target:
            values[name]["QWeight.StartThreshold"] = f"{target:.4f}"
    edits: Dict[str, Dict[str, Optional[str]]] = {}
    model = net.ini[""].get("DefaultModel", read_word, "Frame")
    for name in pruned:
        section = net.ini[name]
        configs = config_names(section, section.get("Model", read_word, model))
        for key in {k for v in values.values() for k in v}:
            holders = [c for c in configs if key in net.ini[c]]
            for config in holders:
                edits.setdefault(config, {})[key] = COMMENT_OUT
            if holders or key in values.get(name, {}):
                edits.setdefault(name, {})[key] = values.get(name, {}).get(
                    key, _current(pruned[name].quantizer, key))
    return edits


# the INI spelling of what a PruneCell holds, for the keys a budget writes
_SPELLED = {"QWeight.Threshold": lambda q: f"{q.threshold:.4f}",
            "QWeight.StartThreshold": lambda q: f"{q.start:.4f}",
            "QWeight.PruningFiller": lambda q: q.prune_filler,
            "QWeight.PruningPattern": lambda q: str(q.pattern)}


def _current(quantizer, key: str) -> str:
    return _SPELLED[key](quantizer)


def method_keys(criterion: Optional[str], pattern: Optional[str]) -> Dict[str, str]:
    """The INI keys giving every cell the analysis' ``criterion`` and ``pattern`` (those given
    in place of the cells' own)."""
    keys = {"QWeight.PruningFiller": criterion, "QWeight.PruningPattern": pattern}
    return {key: value for key, value in keys.items() if value is not None}


def write_budget_ini(net, ini_path: str, thresholds: Mapping[str, float], out_path,
                     method: Optional[Mapping[str, str]] = None,
                     environ: Optional[Mapping[str, str]] = None) -> Path:
    """Write ``ini_path`` with the per-cell ``thresholds`` (and ``method`` keys) to
    ``out_path`` (atomically), after reading the text back: built, its cells must hold the
    thresholds, criterion and pattern asked for, else nothing is written."""
    out_path = Path(out_path)
    edits = budget_edits(net, thresholds, method)
    text = edited_ini_text(net.ini, ini_path, str(out_path.parent), edits)
    _check_read_back(text, ini_path, out_path, thresholds, method or {},
                     os.environ if environ is None else environ)
    return atomic_write(out_path, lambda out: out.write(text.encode("utf-8", "surrogateescape")))


def _check_read_back(text: str, ini_path: str, out_path: Path,
                     thresholds: Mapping[str, float], method: Mapping[str, str],
                     environ: Mapping[str, str]) -> None:
    """Build the network of ``text`` (as if at ``out_path``) and compare its PruneCells with
    what the budget asked for."""
    scratch = out_path.with_name(f".{out_path.name}.check")
    try:
        scratch.write_text(text, encoding="utf-8", errors="surrogateescape")
        again = build_network(ini_module.load(str(scratch), environ)).pruned_cells()
    finally:
        scratch.unlink(missing_ok=True)
    for name, target in thresholds.items():
        quantizer = again[name].quantizer if name in again else None
        wanted = {"QWeight.Threshold": f"{target:.4f}", **method}
        got = {key: _current(quantizer, key) for key in wanted} if quantizer else {}
        if got != wanted:
            differ = {k: v for k, v in wanted.items() if got.get(k) != v}
            raise RuntimeError(
                f"budget INI for {ini_path}: read back, [{name}] holds "
                f"{', '.join(f'{k}={got.get(k)}' for k in differ)} instead of "
                f"{', '.join(f'{k}={v}' for k, v in differ.items())}; nothing written "
                f"(an n2prune bug: please report it)")


def run_sensitivity(ini_path: str, output: str, weights_dir: Optional[str] = None,
                    seed: int = 1, sparsities: Optional[Sequence[float]] = None,
                    criterion: Optional[str] = None, pattern: Optional[str] = None,
                    metric: str = "Sensitivity", kind: Optional[str] = None,
                    target: Optional[float] = None, floor: float = 0.0, ceiling: float = 0.99,
                    overwrite: bool = False, quiet: bool = True) -> List[str]:
    """``n2prune-sensitivity``: the analysis, then (with a ``target`` of ``kind``) the budget
    and the INI written back as ``output/<ini name>``; returns the lines to print."""
    analysis = analyse_ini(ini_path, output, weights_dir, seed,
                           sparsities or DEFAULT_SPARSITIES, criterion, pattern, metric,
                           overwrite, quiet)
    result = analysis.result
    lines = result.table() + [f"analysis: {result.seconds:.1f} s; wrote {Path(output) / CSV} "
                              f"and {Path(output) / PNG}"]
    if target is None:
        return lines
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare = TARGETS.get(kind or "Sparsity").prepare
        if prepare is not None:
            prepare(result, analysis.net)
        budget = allocate(result, target, kind or "Sparsity", floor=floor, ceiling=ceiling)
    written = write_budget_ini(analysis.net, ini_path, result.cell_targets(budget.sparsities),
                               Path(output) / Path(ini_path).name,
                               method_keys(criterion, pattern))
    lines += [""] + budget.table(result) + [f"wrote {written}: n2prune-train {written} trains "
                                            f"to this budget"]
    lines += [f"warning: {w.message}" for w in caught]
    return lines
