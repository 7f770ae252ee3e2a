"""Sensitivity analysis and per-cell budgets.

``sensitivity(model, evaluate)`` prunes each cell alone over a grid of sparsities and writes
``sensitivity.csv`` / ``sensitivity.png``; ``allocate(result, target)`` turns the curves into
per-cell sparsities meeting a global target (overall sparsity, parameters, MACs or measured
latency, ``measure_latency``) at the least predicted loss; ``n2prune.sensitivity.ini`` does
both for an INI network and writes the budget back into the INI file as each cell's
``QWeight.Threshold``.
"""

import sys
import types

from n2prune.sensitivity.analysis import DEFAULT_SPARSITIES, prunable_cells, sensitivity
from n2prune.sensitivity.budget import TARGETS, Budget, allocate
from n2prune.sensitivity.latency import LatencyModel, measure_latency
from n2prune.sensitivity.records import Point, Sensitivity

__all__ = ["DEFAULT_SPARSITIES", "Point", "Sensitivity", "TARGETS", "Budget", "allocate",
           "LatencyModel", "measure_latency", "prunable_cells", "sensitivity"]


class _CallableModule(types.ModuleType):
    """``n2prune.sensitivity(model, evaluate, ...)`` calls :func:`.analysis.sensitivity`."""

    def __call__(self, *args, **kwargs):
        return sensitivity(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
