"""Sensitivity analysis: each prunable cell pruned alone over a grid of sparsities.

``sensitivity(model, evaluate)`` prunes one cell at a time with a Static ``PruneCell`` (any
criterion or N2D2 filler, any pattern), every other cell dense, and records the metric
``evaluate(model)`` returns with the parameters and MACs the point removes. A *unit* (``units=``)
is a set of cells pruned together at each point, with the ``Coupled`` scope
(``n2prune.prune.coupled``): the cells of a residual stream zero the same channels, so the unit
is pruned as a compaction would shrink it. Points are
written to a CSV as they finish (``n2prune.sensitivity.records``); a run started again on the
same CSV skips the points it holds.
"""

from __future__ import annotations

import copy
import hashlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from tqdm import tqdm

from n2prune.compact.costs import macs as count_macs
from n2prune.prune.attach import select
from n2prune.prune.coupled import (NAME as COUPLED, Coupling, couple, couplings,
                                   is_ini_network, rank_coupled)
from n2prune.prune.criteria.registry import CRITERIA
from n2prune.prune.prunecell import PruneCell
from n2prune.prune.sparsity import cell_counts
from n2prune.sensitivity.plot import plot_sensitivity
from n2prune.sensitivity.records import DENSE, Point, Records, Sensitivity

DEFAULT_SPARSITIES: Tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass
class Method:
    """How one cell is pruned at each point: criterion (or N2D2 filler), pattern, parameters."""

    criterion: str = "Magnitude"
    pattern: str = "Unstructured"
    params: Dict[str, object] = field(default_factory=dict)

    def prunecell(self, sparsity: float, seed: int, **extra: Any) -> PruneCell:
        return PruneCell(prune_mode="Static", prune_filler=self.criterion, pattern=self.pattern,
                         threshold=sparsity, seed=seed, **self.params, **extra)

    def prune(self, layers: Mapping[str, nn.Module], sparsity: float, seed: int,
              coupling: Optional[Coupling] = None) -> None:
        """A Static PruneCell at ``sparsity`` on each of ``layers`` (by name); with
        ``coupling`` they prune the same channels (the Coupled scope)."""
        extra = {} if coupling is None else {"scope": COUPLED}
        cells = {}
        for name, layer in layers.items():
            layer.quantizer = cells[name] = self.prunecell(sparsity, seed, **extra)
        if coupling is not None:
            couple(cells, coupling)
            rank_coupled(list(cells.values()))

    def label(self) -> str:
        return f"{self.criterion}/{self.pattern}"


def _method_of(quantizer: Optional[PruneCell], criterion: Optional[str],
               pattern: Optional[str]) -> Method:
    """The cell's own filler, pattern and parameters unless overridden."""
    own_filler = getattr(quantizer, "prune_filler", None)
    if isinstance(own_filler, (list, tuple)):
        own_filler = "+".join(own_filler)
    own = Method(own_filler or "Magnitude", getattr(quantizer, "pattern", None) or "Unstructured",
                 {k: v for group in getattr(quantizer, "params", {}).values() for k, v in
                  group.items()} if quantizer is not None else {})
    if own.criterion == "None":  # N2D2's 'no filler' prunes nothing: rank by magnitude
        own.criterion = "Magnitude"
    if criterion is not None and criterion != own.criterion:
        own = Method(criterion, own.pattern, {})
    if pattern is not None:
        own.pattern = pattern
    for name in own.criterion.split("+"):
        if name in CRITERIA and CRITERIA.get(name).needs:
            raise ValueError(f"criterion {name!r} ranks with statistics gathered while learning "
                             f"({', '.join(CRITERIA.get(name).needs)}); the sensitivity "
                             f"analysis prunes trained weights at once: give a weight "
                             f"criterion (Magnitude, L1Norm, L2Norm, LAMP, FPGM, ...) or an "
                             f"N2D2 filler (IterNonStruct, Random)")
    return own


def prunable_cells(model: nn.Module, cells: Union[None, Sequence[str], Dict[str, nn.Module]]
                   = None) -> Dict[str, nn.Module]:
    """The cells to analyse, by name: ``cells`` (names or a dict), else those carrying a
    PruneCell, else every layer ``n2prune.attach`` supports."""
    named = dict(model.named_modules())
    if hasattr(model, "cells") and hasattr(model, "info"):  # an INI network: cells by name
        named.update(model.cells)
    if isinstance(cells, dict):
        return dict(cells)
    if cells is not None:
        unknown = [name for name in cells if name not in named]
        if unknown:
            raise ValueError(f"cells: no layer named {unknown[0]!r} (layers that can be "
                             f"pruned: {', '.join(select(model)) or 'none'})")
        return {name: named[name] for name in cells}
    carrying = {name: layer for name, layer in (model.cells.items() if hasattr(model, "info")
                                                else named.items())
                if isinstance(getattr(layer, "quantizer", None), PruneCell)}
    found = carrying or select(model)
    if not found:
        raise ValueError(f"sensitivity: {type(model).__name__} has no layer to prune (Conv, "
                         f"Fc, nn.Linear, nn.Conv*)")
    return found


def weights_digest(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of the model's parameter names, shapes and values: the CSV of
    one network is never mixed with another's."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        if ".quantizer." in f".{name}" or not torch.is_tensor(value):
            continue
        digest.update(f"{name}{tuple(value.shape)}{value.dtype}".encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def dense_copy(model: nn.Module, names: Iterable[str]) -> Tuple[nn.Module, Dict[str, nn.Module]]:
    """A copy of ``model`` with every PruneCell removed (all weights as trained), and its
    cells ``names``."""
    work = copy.deepcopy(model)
    for module in work.modules():
        if getattr(module, "quantizer", None) is not None:
            module.quantizer = None
    return work, prunable_cells(work, list(names))


def sensitivity(model: nn.Module, evaluate: Callable[[nn.Module], float],
                cells: Union[None, Sequence[str], Dict[str, nn.Module]] = None,
                sparsities: Sequence[float] = DEFAULT_SPARSITIES,
                criterion: Optional[str] = None, pattern: Optional[str] = None,
                csv: Union[None, str, Path] = None, plot: Union[None, str, Path] = None,
                input_shape: Optional[Sequence[int]] = None, seed: int = 0,
                quiet: bool = True, identity: str = "",
                units: Optional[Mapping[str, Sequence[str]]] = None,
                example: Any = None) -> Sensitivity:
    """Prune each cell of ``model`` alone at each of ``sparsities`` and score it with
    ``evaluate(model_copy) -> float`` (larger is better); ``model`` itself is not changed.

    Each cell is pruned with its own PruneCell's filler and pattern (``criterion`` /
    ``pattern`` override them; Magnitude, Unstructured for a layer without one). ``csv``: the
    points are written there as they finish, and a run on the same file skips the points it
    holds (a file written for other weights, cells or sparsities is refused). ``plot``: a PNG
    with one curve per cell. ``input_shape`` (batch excluded; an INI network has its own) is
    needed for the MACs column. ``identity``: extra text that must match to resume (the
    metric, the data). ``units``: ``{name: [cells]}``, each pruned as one, alongside
    ``cells``, with the ``Coupled`` scope (their tied channels recorded on ``example``, an
    input of ``model``, not needed for an INI network; ``n2prune.prune.coupled.coupled_units``
    finds them), with the first
    cell's criterion and the Channel pattern.

    >>> result = sensitivity(model, lambda m: accuracy(m, data), csv="sensitivity.csv")  # doctest: +SKIP
    """
    grid = _grid(sparsities)
    units = _units(units, example, model)
    chosen = prunable_cells(model, cells) if cells is not None or not units else {}
    members = {name: [name] for name in chosen}
    clash = sorted(set(units) & set(members))
    if clash:
        raise ValueError(f"units: {clash[0]!r} is also a cell's name; name the unit otherwise")
    members.update(units)
    every = prunable_cells(model, [c for group in members.values() for c in group])
    methods = {name: _method_of(getattr(every[group[0]], "quantizer", None), criterion,
                                "Channel" if name in units else pattern)
               for name, group in members.items()}
    work, layers = dense_copy(model, every)
    tied = couplings(work, units, example) if units else {}
    shape = tuple(input_shape) if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        warnings.warn("sensitivity: no input_shape given and the model has none: the MACs "
                      "column stays empty (MACs budgets need it)", stacklevel=2)
    records = Records(csv, {"net": weights_digest(work), "grid": " ".join(f"{s:g}" for s in grid),
                            "cells": " ".join(f"{_unit_label(n, members[n])}:{m.label()}"
                                              for n, m in methods.items()),
                            "identity": identity})
    started = time.perf_counter()
    base_macs = count_macs(work, shape)["nonzero"] if shape is not None else None
    todo = [(name, s) for name in members for s in grid if not records.has(name, s)]
    if not records.has(DENSE, 0.0):
        records.add(Point(DENSE, 0.0, float(evaluate(work)), 0, 0 if shape else None))
    bar = _bar(len(todo) + len(records.points) - 1, len(records.points) - 1, quiet)
    try:
        for name, s in todo:
            group = {cell: layers[cell] for cell in members[name]}
            methods[name].prune(group, s, seed, tied.get(name))
            try:
                removed = sum(cell_counts(layer)[0] for layer in group.values())
                metric = float(evaluate(work))
                macs = base_macs - count_macs(work, shape)["nonzero"] if shape else None
            finally:
                for layer in group.values():
                    layer.quantizer = None
            records.add(Point(name, s, metric, removed, macs))
            bar.update(1)
            bar.set_postfix_str(f"{name} @ {s:g}: {metric:.4g}", refresh=False)
    finally:
        bar.close()
    result = records.result({n: sum(cell_counts(layers[c])[1] for c in group)
                             for n, group in members.items()},
                            {n: m.label() for n, m in methods.items()},
                            sum(p.numel() for p in work.parameters()), base_macs,
                            time.perf_counter() - started)
    result.units = {name: list(group) for name, group in units.items()}
    result.csv = Path(csv) if csv is not None else None
    if plot is not None:
        plot_sensitivity(result, plot)
    return result


def _units(units: Optional[Mapping[str, Sequence[str]]], example: Any, model: nn.Module
           ) -> Dict[str, List[str]]:
    """The units as ``{name: [cells]}``, checked (an INI network has its own channel graph:
    no example needed)."""
    if not units:
        return {}
    if example is None and not is_ini_network(model):
        raise ValueError("units: the cells of a unit prune the channels tied across them, "
                         "which a forward pass records: give sensitivity an example input "
                         "(example=x)")
    out = {}
    for name, group in units.items():
        if isinstance(group, str) or not group:
            raise ValueError(f"units: {name!r} must name a list of cells, got {group!r}")
        out[str(name)] = list(group)
    return out


def _unit_label(name: str, group: Sequence[str]) -> str:
    """How a unit is named in the CSV's header: its name, with its cells when they differ."""
    return name if list(group) == [name] else f"{name}=[{'+'.join(group)}]"


def _grid(sparsities: Sequence[float]) -> List[float]:
    grid = sorted({float(s) for s in sparsities})
    if not grid or grid[0] <= 0.0 or grid[-1] >= 1.0:
        raise ValueError(f"sparsities must lie strictly between 0 and 1 (fractions of weights "
                         f"pruned), got {list(sparsities)}")
    return grid


def _bar(total: int, done: int, quiet: bool):
    return tqdm(total=total, initial=done, unit="point", desc="Sensitivity", disable=quiet,
                dynamic_ncols=True)
