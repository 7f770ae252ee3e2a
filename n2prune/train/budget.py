"""``n2prune-train --budget sensitivity --target-sparsity S`` (or the INI's
``QWeight.PruningBudget=Sensitivity``): per-cell targets chosen from a sensitivity analysis of
the run's own weights (``n2prune.sensitivity``).

Which cells share a budget (:func:`budget_teams`): with ``--budget sensitivity``, every
PruneCell, pruning ``--target-sparsity`` of their weights overall; else the cells whose
``QWeight.PruningBudget`` is an analysed budget (``Sensitivity``), grouped by their
``QWeight.Threshold`` (each group prunes that fraction of its weights overall), a
``--target-sparsity`` replacing the INI's threshold.

The analysis runs on the warm-started weights (``-w``) before learning, else at the end of the
first epoch, scored by the loss on the Validation set (continuous: it sees a cell's damage
before decisions flip, where a few hundred images quantise accuracy; tools/bench_budgets.py
measured it against accuracy), on a grid refined between 0.9 and 0.995; its points go to
``OUTPUT/sensitivity.csv`` (so a run killed during it continues the analysis on ``--resume``)
and its curves to ``OUTPUT/sensitivity.png``. Each PruneCell's target becomes its budget (its
start too, where the start was above it); the budget is saved in the checkpoint, reapplied on
``--resume``, and recorded in ``report.json`` under ``budget``. Cells that prune the same
channels (``QWeight.PruningScope=Coupled``) are analysed and budgeted as one unit, one curve
and one target.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, List, Mapping

from n2prune.prune.budgets import BUDGETS as PRUNING_BUDGETS
from n2prune.prune.coupled import split_units
from n2prune.sensitivity.analysis import DEFAULT_SPARSITIES, sensitivity
from n2prune.sensitivity.budget import allocate
from n2prune.sensitivity.records import Sensitivity
from n2prune.train.evaluation import mean_loss

BUDGETS = ("sensitivity",)
# the default grid, refined where a high overall target puts the cells (measured, not
# extrapolated: tools/bench_budgets.py's sensitivity-loss)
GRID = tuple(DEFAULT_SPARSITIES) + (0.93, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995)


def budget_teams(net: Any, options: Any) -> Dict[float, List[str]]:
    """The cells whose targets a sensitivity analysis chooses, by the overall sparsity each
    team must reach (empty: no budget). A ``--target-sparsity`` without ``--budget`` and
    without a ``QWeight.PruningBudget=Sensitivity`` cell is refused."""
    pruned = net.pruned_cells()
    if options.budget is not None:
        return {float(options.target_sparsity): list(pruned)}
    teams: Dict[float, List[str]] = {}
    for name, cell in pruned.items():
        quantizer = cell.quantizer
        if PRUNING_BUDGETS.get(quantizer.budget).analysed:
            target = options.target_sparsity
            teams.setdefault(float(quantizer.budget_target if target is None else target),
                             []).append(name)
    if options.target_sparsity is not None and not teams:
        analysed = [n for n in PRUNING_BUDGETS.names() if PRUNING_BUDGETS.get(n).analysed]
        raise ValueError(f"--target-sparsity {options.target_sparsity}: no cell has "
                         f"QWeight.PruningBudget={'/'.join(analysed)}; give --budget "
                         f"sensitivity too (every pruned cell shares the budget)")
    return teams


def _team(result: Sensitivity, names: List[str]) -> Sensitivity:
    """The analysis of one team's cells: its single cells and the units of its coupled ones
    (every cell of a unit shares the team: they share one threshold)."""
    members = []
    for name in names:
        unit = next((u for u, cells in result.units.items() if name in cells), name)
        if unit not in members:
            members.append(unit)
    for unit in members:
        outside = [cell for cell in result.units.get(unit, ()) if cell not in names]
        if outside:
            raise ValueError(f"--budget sensitivity: {', '.join(result.units[unit])} prune the "
                             f"same channels (QWeight.PruningScope=Coupled) but {outside[0]} "
                             f"has another budget target; give them one QWeight.Threshold")
    return dataclasses.replace(result, points={n: result.points[n] for n in members},
                               weights={n: result.weights[n] for n in members},
                               methods={n: result.methods[n] for n in members},
                               units={n: result.units[n] for n in members if n in result.units})


def sensitivity_budget(trainer: Any, teams: Dict[float, List[str]]) -> Dict[str, Any]:
    """Analyse the ``teams``' cells on the trainer's Validation set and choose the per-cell
    targets meeting each team's target; returns what ``report.json`` records."""
    options = trainer.options
    if trainer.provider.size("Validation") == 0:
        raise ValueError("--budget sensitivity scores each cell on the Validation set, which is "
                         "empty: give [database] a Validation fraction")
    objective, provider = trainer.objectives[0], trainer.provider

    def evaluate(model) -> float:   # minus the loss: continuous, larger is better
        return -mean_loss(model, provider, objective, "Validation", trainer.seed,
                          trainer.batch_size)

    started = time.perf_counter()
    was_training = trainer.net.training
    names = [name for team in teams.values() for name in team]
    pruned = trainer.net.pruned_cells()
    single, units = split_units({name: pruned[name].quantizer for name in names})
    result = sensitivity(trainer.net, evaluate, cells=single, units=units,
                         sparsities=GRID, seed=trainer.seed,
                         csv=trainer.output / "sensitivity.csv",
                         plot=trainer.output / "sensitivity.png", quiet=options.quiet,
                         identity=f"-loss Validation seed={trainer.seed}")
    trainer.net.train(was_training)
    budgets = [allocate(_team(result, team), target, "Sparsity", ceiling=max(GRID))
               for target, team in teams.items()]
    chosen = result.cell_targets({name: s for budget in budgets
                                  for name, s in budget.sparsities.items()})
    return {"method": "sensitivity", "target_sparsity": _one(list(teams)),
            "cells": {name: chosen[name] for name in names},
            "achieved": _one([b.achieved for b in budgets]),
            "predicted_loss": sum(b.predicted_loss for b in budgets),
            "metric": "-loss (Validation)", "dense_metric": result.dense,
            "analysis_seconds": time.perf_counter() - started,
            **({"teams": [{"target": t, "cells": team} for t, team in teams.items()]}
               if len(teams) > 1 else {})}


def _one(values: List[float]) -> Any:
    """A team's value, or the list of them (several teams)."""
    return values[0] if len(values) == 1 else values


def apply_targets(net: Any, cells: Mapping[str, float]) -> None:
    """Give each PruneCell of ``cells`` its target (and its start when above it); masks past
    the new target are refilled at it."""
    pruned = net.pruned_cells()
    for name, target in cells.items():
        quantizer = pruned[name].quantizer
        quantizer.threshold = float(target)
        quantizer.start = min(quantizer.start, float(target))
        if float(quantizer.current_threshold) > float(target) + 1e-7:
            quantizer.recompute()
