"""``n2prune-train --budget sensitivity --target-sparsity S``: per-cell targets chosen from a
sensitivity analysis of the run's own weights (``n2prune.sensitivity``).

The analysis runs on the warm-started weights (``-w``) before learning, else at the end of the
first epoch; its points go to ``OUTPUT/sensitivity.csv`` (so a run killed during it continues
the analysis on ``--resume``) and its curves to ``OUTPUT/sensitivity.png``. Each PruneCell's
target becomes its budget (its start too, where the start was above it); the budget is saved
in the checkpoint, reapplied on ``--resume``, and recorded in ``report.json`` under
``budget``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Mapping

from n2prune.sensitivity.analysis import DEFAULT_SPARSITIES, sensitivity
from n2prune.sensitivity.budget import allocate
from n2prune.train.evaluation import evaluate_set

BUDGETS = ("sensitivity",)
# the default grid, with the points a high overall target needs measured, not extrapolated
GRID = tuple(DEFAULT_SPARSITIES) + (0.97, 0.98, 0.99)


def sensitivity_budget(trainer: Any) -> Dict[str, Any]:
    """Analyse the trainer's network on its Validation set and choose the per-cell targets
    meeting ``--target-sparsity``; returns what ``report.json`` records."""
    options = trainer.options
    if trainer.provider.size("Validation") == 0:
        raise ValueError("--budget sensitivity scores each cell on the Validation set, which is "
                         "empty: give [database] a Validation fraction")
    objective, provider = trainer.objectives[0], trainer.provider

    def evaluate(model) -> float:
        return evaluate_set(model, provider, objective, "Validation", trainer.seed,
                            trainer.batch_size).score(options.valid_metric)

    started = time.perf_counter()
    was_training = trainer.net.training
    result = sensitivity(trainer.net, evaluate, sparsities=GRID, seed=trainer.seed,
                         csv=trainer.output / "sensitivity.csv",
                         plot=trainer.output / "sensitivity.png", quiet=options.quiet,
                         identity=f"{options.valid_metric} Validation seed={trainer.seed}")
    trainer.net.train(was_training)
    budget = allocate(result, options.target_sparsity, "Sparsity")
    return {"method": options.budget, "target_sparsity": options.target_sparsity,
            "cells": budget.sparsities, "achieved": budget.achieved,
            "predicted_loss": budget.predicted_loss, "dense_metric": result.dense,
            "analysis_seconds": time.perf_counter() - started}


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
