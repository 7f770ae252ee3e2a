"""ShrinkBench's pruning strategies by name: one call prunes a model to a compression ratio.

>>> import torch, n2prune.strategies as strategies
>>> model = torch.nn.Sequential(torch.nn.Linear(20, 20), torch.nn.ReLU(), torch.nn.Linear(20, 2))
>>> pruner = strategies.GlobalMagWeight(model, compression=4, prune_classifier=True)
>>> round(pruner.sparsity(), 3)  # 1 - 1/4 of all parameters, biases counted as kept
0.788

Compression is ShrinkBench's: total parameters / remaining parameters, over every parameter
of the model; the pruned layers' weights lose the fraction that gives it (biases and other
layers are never pruned), ShrinkBench's ``fraction_to_keep``. As in ShrinkBench the
classifier (the last Linear/Conv layer) is left alone unless ``prune_classifier=True``.

Each strategy attaches Static PruneCells (``n2prune.attach``) with a criterion, pattern and
scope, gathers the statistics it needs from ``data`` (``(inputs, targets)`` batches,
``calibration_batches`` of them) and returns the Pruner, whose ``cells`` are the PruneCells.
The masks then stay fixed; fine-tune the model as usual.

=====================  ==================  ===========  ============
strategy               criterion           pattern      scope
=====================  ==================  ===========  ============
GlobalMagWeight        Magnitude           Unstructured Global
LayerMagWeight         Magnitude           Unstructured Layer
GlobalMagGrad          MagGrad             Unstructured Global
LayerMagGrad           MagGrad             Unstructured Layer
GlobalMagAct           MagAct              Unstructured Global
LayerMagAct            MagAct              Unstructured Layer
RandomPruning          Random              Unstructured Layer
WeightNormChannel      L1Norm              Channel      Layer
ActivationNormChannel  ActivationNorm      Channel      Layer
=====================  ==================  ===========  ============

For the channel strategies ``compression`` gives the fraction of channels pruned in each
layer, 1 − 1/compression (ShrinkBench's ChannelPruning takes a fraction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import torch
from torch import nn

from n2prune.prune.attach import attach, select
from n2prune.prune.calibration import StatisticsCollector
from n2prune.prune.criteria.registry import CRITERIA
from n2prune.prune.pruner import Pruner
from n2prune.registry import Registry

STRATEGIES: Registry = Registry("pruning strategy")


@dataclass(frozen=True)
class Strategy:
    """A named preset: criterion (``prune_filler``), pattern and scope."""

    name: str
    criterion: str
    pattern: str = "Unstructured"
    scope: str = "Layer"

    def __call__(self, model: nn.Module, compression: float, **kwargs: Any) -> Pruner:
        return prune(model, compression, self, **kwargs)


for _strategy in (Strategy("GlobalMagWeight", "Magnitude", scope="Global"),
                  Strategy("LayerMagWeight", "Magnitude"),
                  Strategy("GlobalMagGrad", "MagGrad", scope="Global"),
                  Strategy("LayerMagGrad", "MagGrad"),
                  Strategy("GlobalMagAct", "MagAct", scope="Global"),
                  Strategy("LayerMagAct", "MagAct"),
                  Strategy("RandomPruning", "Random"),
                  Strategy("WeightNormChannel", "L1Norm", pattern="Channel"),
                  Strategy("ActivationNormChannel", "ActivationNorm", pattern="Channel")):
    STRATEGIES.register(_strategy.name)(_strategy)
    globals()[_strategy.name] = _strategy


def fraction_to_prune(model: nn.Module, layers: Iterable[nn.Module], compression: float) -> float:
    """The fraction of the layers' weights to prune so that total / remaining parameters of
    ``model`` equals ``compression``; ValueError when the other parameters alone exceed it."""
    if isinstance(compression, bool) or not isinstance(compression, (int, float)) \
            or math.isnan(compression) or compression < 1:
        raise ValueError(f"compression={compression!r} must be a number >= 1 (total / "
                         f"remaining parameters)")
    total = sum(p.numel() for p in model.parameters())
    prunable = sum(layer.weight.numel() for layer in layers)
    if prunable == 0:
        raise ValueError("no prunable layer selected")
    keep = (total / compression - (total - prunable)) / prunable
    if keep <= 0:
        raise ValueError(f"compression={compression:g} cannot be reached: the parameters that "
                         f"are not pruned ({total - prunable} of {total}: biases, other layers, "
                         f"the classifier) allow at most {total / (total - prunable):.3g}")
    return 1.0 - min(1.0, keep)


def _classifier(model: nn.Module, candidates: dict) -> Optional[str]:
    names = list(candidates)
    return names[-1] if names else None


def prune(model: nn.Module, compression: float, strategy: Any, *, data: Optional[Iterable] = None,
          loss_fn: Callable = nn.functional.cross_entropy, calibration_batches: int = 1,
          prune_classifier: bool = False, include=None, exclude=None, types=None,
          seed: Optional[int] = None) -> Pruner:
    """Prune ``model`` with ``strategy`` (a Strategy or its name) to ``compression``; returns
    the Pruner. ``data`` is needed by the gradient and activation criteria."""
    if isinstance(strategy, str):
        strategy = STRATEGIES.get(strategy)
    candidates = select(model, include=include, exclude=exclude, types=types)
    if not prune_classifier:
        last = _classifier(model, candidates)
        candidates.pop(last, None)
    channel = strategy.pattern == "Channel"
    fraction = 1.0 - 1.0 / compression if channel else \
        fraction_to_prune(model, candidates.values(), compression)
    needs = strategy.criterion in CRITERIA and CRITERIA.get(strategy.criterion).needs
    if needs and data is None:
        raise ValueError(f"{strategy.name}: criterion {strategy.criterion!r} needs data "
                         f"((inputs, targets) batches) to gather its statistics")
    extra = {"seed": seed} if seed is not None else {}
    names = list(candidates)
    cells = attach(model, include=names or ["<none>"], prune_mode="Static", threshold=fraction,
                   prune_filler=strategy.criterion, pattern=strategy.pattern,
                   scope=strategy.scope, **extra)
    pruner = Pruner(cells)
    if needs:
        collector = StatisticsCollector(batches=calibration_batches)
        pruner.add_callback(collector)
        with torch.enable_grad():
            collector.calibrate(model, data, loss_fn)
        collector.unbind()
    return pruner
