"""Measured latency as a budget target: a per-cell latency model, measured once per cell at a
few widths, and the check of a whole budget on the compacted network.

Pruned weights make a dense CPU kernel no faster; pruned channels do, once the network is
compacted (``n2prune.compact``): the cell loses rows and the next cell its inputs. So the
model is measured, never estimated: for each analysed cell with the ``Channel`` pattern, the
network is compacted with that cell alone pruned at each of ``widths`` (sparsities; the rest
dense) and timed with the dense compacted network, repeats alternating between them
(``n2prune.compact.costs.compare_latency``, one thread, CPU clock). The latency a cell saves
at sparsity s is interpolated between these points (non-decreasing: a point measured faster
than a sparser one is noise); cells of other patterns save nothing. The ``Latency`` target of
``allocate`` adds the cells' savings (first order, as the losses are), then measures the
chosen budget on the whole compacted network and, when the sum promised more than the
network gives (shrinking two neighbours saves less than the sum of each alone), asks the
knapsack for more until the measured saving meets the target, then bisects back to the least
request that meets it. The per-cell model of an analysis kept in a CSV is kept beside it
(``sensitivity.latency.json``), so a resumed analysis reads it back.

>>> result.latency = measure_latency(model, result, example=x)     # doctest: +SKIP
>>> budget = allocate(result, 0.3, "Latency")       # 30 % of the dense latency saved
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from torch import nn

from n2prune.compact.baking import baked
from n2prune.compact.compaction import compact
from n2prune.compact.costs import compare_latency
from n2prune.prune.coupled import Coupling, couplings, is_ini_network
from n2prune.prune.patterns import resolve_pattern
from n2prune.sensitivity.analysis import Method, dense_copy
from n2prune.sensitivity.latency_file import LatencyFile, clock_name
from n2prune.sensitivity.records import Sensitivity

DEFAULT_WIDTHS: Tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
# nets by name -> seconds per forward pass of each (measured together, repeats alternating)
Timer = Callable[[Mapping[str, nn.Module]], Dict[str, float]]


@dataclass
class LatencyModel:
    """The dense compacted network's seconds, each cell's (sparsities, seconds saved), and
    ``measure(sparsities)``: the seconds of the network with those cells pruned, compacted."""

    dense: float
    saved: Dict[str, Tuple[np.ndarray, np.ndarray]]
    measure: Callable[[Mapping[str, float]], float] = field(repr=False)

    def removed(self, cell: str, s: np.ndarray) -> np.ndarray:
        """Seconds the cell saves at each sparsity of ``s`` (interpolated; beyond the last
        measured width, the last saving)."""
        x, y = self.saved[cell]
        return np.interp(s, x, y)


def default_timer(example, input_shape: Optional[Sequence[int]], repeats: int = 9) -> Timer:
    """``compare_latency`` on one thread with the CPU clock (batch 1)."""
    def timer(nets: Mapping[str, nn.Module]) -> Dict[str, float]:
        return compare_latency(nets, input_shape, repeats=repeats, threads=1, clock="cpu",
                               example=example)
    return timer


def measure_latency(model: nn.Module, result: Sensitivity, example=None,
                    widths: Sequence[float] = DEFAULT_WIDTHS, timer: Optional[Timer] = None,
                    seed: int = 0) -> LatencyModel:
    """The latency model of ``result``'s cells on ``model`` (an INI network, or a torch model
    with ``example``: the input compaction records and the latency is measured on). ``timer``
    replaces the measurement (``default_timer``), e.g. a deterministic one in tests. An
    analysis kept in a CSV keeps its per-cell model beside it (``sensitivity.latency.json``,
    :mod:`.latency_file`): measured again on the same analysis, widths and clock, it is read
    back instead of timed."""
    if example is None and not hasattr(model, "input_shape"):
        raise TypeError(f"measure_latency: a {type(model).__name__} has no input_shape; pass "
                        f"an example input: measure_latency(model, result, example=x)")
    grid = sorted({float(s) for s in widths})
    if not grid or grid[0] <= 0.0 or grid[-1] >= 1.0:
        raise ValueError(f"widths must be sparsities strictly between 0 and 1, got "
                         f"{list(widths)}")
    given, timer = timer, timer or default_timer(
        example, None if example is not None else tuple(model.input_shape))
    methods = {cell: _method(result.methods[cell]) for cell in result.points}
    channel = [cell for cell, (_, pattern) in methods.items()
               if resolve_pattern(pattern)[0] == "Channel"]
    units = getattr(result, "units", {})
    if units and example is None and not is_ini_network(model):
        raise TypeError("measure_latency: the analysis has units (cells pruned together), "
                        "whose tied channels a forward pass records; pass an example input")
    tied = couplings(model, units, example) if units else {}

    def build(sparsities: Mapping[str, float]) -> nn.Module:
        return _compacted(model, sparsities, methods, example, seed, units, tied)

    nets = {"": build({})}
    store = None if getattr(result, "csv", None) is None else \
        LatencyFile(result.csv, grid, clock_name(given))
    kept = store.load(list(result.points)) if store is not None else None
    if kept is not None:
        dense, saved = kept
    else:
        dense, saved = _per_cell(result, nets, build, channel, grid, timer)
        if store is not None:
            store.save(dense, saved)

    def measure(sparsities: Mapping[str, float]) -> float:
        timed = timer({"": nets[""], "budget": build(sparsities)})
        return dense * timed["budget"] / timed[""]   # against the dense net timed beside it

    return LatencyModel(dense, saved, measure)


def _per_cell(result: Sensitivity, nets: Dict[str, nn.Module], build, channel, grid,
              timer: Timer) -> Tuple[float, Dict[str, Tuple[np.ndarray, np.ndarray]]]:
    """The dense seconds and each cell's (sparsities, seconds saved): the Channel cells
    compacted alone at each width, timed with the dense network (``nets[""]``)."""
    nets = dict(nets)
    nets.update({f"{cell}@{s:g}": build({cell: s}) for cell in channel for s in grid})
    seconds = timer(nets)
    dense = float(seconds[""])
    saved = {}
    for cell in result.points:
        x = np.array([0.0] + grid)
        y = np.zeros(len(x)) if cell not in channel else np.maximum.accumulate(np.maximum(
            dense - np.array([dense] + [seconds[f"{cell}@{s:g}"] for s in grid]), 0.0))
        saved[cell] = (x, y)
    return dense, saved


def _method(label: str) -> Tuple[str, str]:
    """(criterion, pattern) of a cell from its label in the result (``criterion/pattern``)."""
    criterion, _, pattern = label.rpartition("/")
    return criterion, pattern


def _compacted(model: nn.Module, sparsities: Mapping[str, float],
               methods: Mapping[str, Tuple[str, str]], example, seed: int,
               units: Optional[Mapping[str, Sequence[str]]] = None,
               tied: Optional[Mapping[str, Coupling]] = None) -> nn.Module:
    """A copy of ``model``, PruneCells removed, the cells (and units) of ``sparsities`` pruned
    Static at them with their criterion and pattern, compacted, masks baked in."""
    units, tied = units or {}, tied or {}
    pruned = {name: list(units.get(name, [name])) for name, s in sparsities.items() if s > 0.0}
    work, layers = dense_copy(model, [cell for group in pruned.values() for cell in group])
    for name, group in pruned.items():
        Method(*methods[name]).prune({cell: layers[cell] for cell in group},
                                     float(sparsities[name]), seed, tied.get(name))
    small = compact(work, example, strict=False) if example is not None else compact(work)
    return baked(small)


def latency_fraction(result: Sensitivity, sparsities: Mapping[str, float]) -> float:
    """The fraction of the dense latency the budget saves, measured on the compacted network."""
    return 1.0 - _model(result).measure(sparsities) / _model(result).dense


def _model(result: Sensitivity) -> LatencyModel:
    model = getattr(result, "latency", None)
    if model is None:
        raise ValueError("a Latency target needs the measured latency model: "
                         "result.latency = n2prune.sensitivity.measure_latency(model, result, "
                         "example=x)")
    return model


def latency_removed(result: Sensitivity, cell: str, s: np.ndarray) -> np.ndarray:
    """Seconds ``cell`` saves at each sparsity of ``s`` (the per-cell model)."""
    return _model(result).removed(cell, s)


def dense_latency(result: Sensitivity) -> float:
    return _model(result).dense


def prepare_latency(result: Sensitivity, net: nn.Module) -> None:
    """Measure ``result.latency`` on ``net`` (an INI network: its own input shape) unless
    measured already."""
    if result.latency is None:
        result.latency = measure_latency(net, result)
