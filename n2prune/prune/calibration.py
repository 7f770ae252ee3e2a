"""StatisticsCollector: gathers the statistics the criteria need, as a Pruner callback.

A Pruner whose cells use data-driven criteria adds one. Forward hooks on the pruned layers
feed their inputs and outputs to :mod:`n2prune.prune.statistics` (running values, no batch
kept); gradients are read in ``on_before_optimizer_step``. A *window* gathers
``batches`` training batches (``calibration_batches=`` / ``QWeight.CalibrationBatches=``);
when it is complete the masks are recomputed at the current thresholds, and a new window
opens after every schedule step, so each pruning step uses statistics of recent weights.
SnipMomentum's running score is updated at every step, window or not. Only forward passes
in training mode count (validation passes are ignored).

``calibrate(model, batches, loss_fn=None)`` runs a window at once, outside any training loop
(one-shot pruning, the strategies): in eval mode unless asked, forward only unless a
criterion reads gradients, the model left exactly as it was found.

``state_dict()`` / ``load_state_dict()`` carry the window's position across a resume (the
running values themselves are the cells' buffers). The module is about 350 lines: one class
whose hooks, one-shot window and resume share the window's state (a layer's inputs are read
by :mod:`n2prune.prune.layer_inputs`).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from typing import Any, Callable, Dict, Iterable, Optional, Set, Tuple

import torch
from torch import nn

from n2prune.prune import statistics
from n2prune.prune.batches import Forward, feed, left_as_found
from n2prune.prune.budgets import BUDGETS
from n2prune.prune.criteria.registry import CRITERIA
from n2prune.prune.criteria.combined import criterion_names
from n2prune.prune.layer_inputs import finite_or_refuse, layer_input, unfolder
from n2prune.prune.ranking import rank_by_scope

def needs_of(cell: Any) -> Set[str]:
    """The statistics the cell's criteria and budget read."""
    out: Set[str] = set()
    for name in criterion_names(cell):
        out |= statistics.check_needs(CRITERIA.get(name).needs, f"criterion {name!r}")
    budget = getattr(cell, "budget", "Uniform")
    out |= statistics.check_needs(BUDGETS.get(budget).needs, f"budget {budget!r}")
    return out


def gradient_criteria(cell: Any) -> Tuple[str, ...]:
    """The cell's criteria that read gradients (calibration then needs a loss)."""
    return tuple(name for name in criterion_names(cell)
                 if set(CRITERIA.get(name).needs) & set(statistics.GRADIENT_STATS))


class _Store:
    """The PruneCell's statistics as a dict for the pure update functions; new or replaced
    tensors are written back as buffers (``set_stat``) on exit."""

    def __init__(self, cell: Any):
        self.cell = cell

    def __enter__(self) -> Dict[str, torch.Tensor]:
        self.before = dict(self.cell.stats)
        self.stats = dict(self.before)
        return self.stats

    def __exit__(self, *exc) -> None:
        for name, value in self.stats.items():
            if self.before.get(name) is not value:
                self.cell.set_stat(name, value)


def _param(cell: Any, name: str, default: Any) -> Any:
    params = getattr(cell, "params", None) or {}
    return params.get("criterion", {}).get(name, default)


class StatisticsCollector:
    """Hooks and running statistics for a set of PruneCells (``{name: PruneCell}``, or those of
    the Pruner it is added to).

    ``reduce`` (None, or a function mutating one cell's statistics dict) runs on every cell
    when a window completes, before the masks are recomputed: a distributed run sets it to
    ``n2prune.train.distributed.reduce_statistics`` so each rank scores with the statistics
    of the whole global batch.
    """

    reduce: Optional[Callable[[Dict[str, torch.Tensor]], Any]] = None
    calibrating = False  # True while calibrate() runs: forwards count in any mode

    def __init__(self, cells: Optional[Dict[str, Any]] = None, batches: Optional[int] = None):
        if batches is not None and (isinstance(batches, bool) or not isinstance(batches, int)
                                    or batches < 1):
            raise ValueError(f"calibration_batches={batches!r} must be an integer >= 1")
        self._given = batches
        self.batches, self.seen = batches or statistics.DEFAULT_BATCHES, 0
        self.cells: Dict[str, Any] = {}
        self._needs: Dict[str, Set[str]] = {}
        self._handles: list = []
        self._thresholds: Dict[str, float] = {}
        self._pruner: Any = None
        if cells is not None:
            self._bind_cells(cells)

    # ----------------------------------------------------------------- binding
    def bind(self, pruner: Any) -> None:
        """Install the forward hooks on the pruner's layers (Pruner.add_callback calls it)."""
        self._pruner = pruner
        self._bind_cells(pruner.cells)

    def _bind_cells(self, cells: Dict[str, Any]) -> None:
        self.unbind()
        self.cells = {name: cell for name, cell in cells.items() if needs_of(cell)}
        self._needs = {name: needs_of(cell) for name, cell in self.cells.items()}
        io = set(statistics.INPUT_STATS + statistics.OUTPUT_STATS)
        self._unfold = {}
        for name, cell in self.cells.items():
            layer = cell.cell
            if not self._needs[name] & io:
                continue
            if "input_col_sq_mean" in self._needs[name] and layer.weight.dim() > 2:
                self._unfold[name] = unfolder(layer)
            self._handles.append(layer.register_forward_hook(self._hook(name)))
        if self._given is None and self.cells:  # the cells' CalibrationBatches: the largest
            self.batches = max(int(_param(cell, "calibration_batches",
                                          statistics.DEFAULT_BATCHES))
                               for cell in self.cells.values())
        self._thresholds = self._current_thresholds()

    def unbind(self, *_: Any) -> None:
        """Remove the forward hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def active(self) -> bool:
        """Whether the current window still gathers batches."""
        return self.seen < self.batches

    def _current_thresholds(self) -> Dict[str, float]:
        return {name: cell.get_current_threshold() for name, cell in self.cells.items()}

    # ----------------------------------------------------------------- gathering
    def _hook(self, name: str) -> Callable:
        def hook(layer: nn.Module, inputs: tuple, output: Any) -> None:
            if not (self.active and (layer.training or self.calibrating)) \
                    or not isinstance(output, torch.Tensor):
                return
            needs = self._needs[name]
            bins = int(_param(self.cells[name], "entropy_bins", statistics.DEFAULT_BINS))
            with torch.no_grad(), _Store(self.cells[name]) as stats:
                if needs & set(statistics.INPUT_STATS):
                    x = layer_input(layer, inputs)
                    finite_or_refuse(x, name, "input", self.cells[name])
                    statistics.update_inputs(stats, x, layer.weight, needs,
                                             self._unfold.get(name))
                if needs & set(statistics.OUTPUT_STATS):
                    finite_or_refuse(output, name, "output", self.cells[name])
                    statistics.update_outputs(stats, output, layer.weight, needs, bins)
        return hook

    @torch.no_grad()
    def after_backward(self) -> None:
        """Read the weight gradients (after backward, before the optimiser step)."""
        for name, cell in self.cells.items():
            needs, layer = self._needs[name], cell.cell
            grad = layer.weight.grad
            if grad is None or not needs & set(statistics.GRADIENT_STATS):
                continue
            finite_or_refuse(grad, name, "weight gradient", cell)
            with _Store(cell) as stats:
                if "grad" in needs and self.active:
                    statistics.update_grad(stats, grad)
                if "momentum_score" in needs:
                    statistics.update_momentum(stats, layer.weight, grad,
                                               float(_param(cell, "score_momentum", 0.9)))

    def end_batch(self) -> bool:
        """Count one batch of the window; True when this batch completed it."""
        if not self.active:
            return False
        self.seen += 1
        return not self.active

    def restart(self) -> None:
        """Open a new window: the next batches replace the gathered values (SnipMomentum's
        score stays)."""
        self.seen = 0
        for cell in self.cells.values():
            with _Store(cell) as stats:
                statistics.reset(stats)

    def _reduce(self) -> None:
        """Merge the window's statistics across processes (``reduce``), cell by cell."""
        if self.reduce is None:
            return
        for name in sorted(self.cells):
            with _Store(self.cells[name]) as stats:
                self.reduce(stats)

    # ----------------------------------------------------------------- Pruner hooks
    def on_before_optimizer_step(self, pruner: Any) -> None:
        self.after_backward()

    def on_step_end(self, pruner: Any, batch_size: int) -> None:
        """Recompute the masks when the window completes; open a new window after a schedule
        step moved a threshold."""
        if self.end_batch():
            self._reduce()
            pruner.recompute()
        thresholds = self._current_thresholds()
        if thresholds != self._thresholds:
            self._thresholds = thresholds
            self.restart()

    def on_train_end(self, pruner: Any) -> None:
        self.unbind()

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> Dict[str, Any]:
        """The window's position, which the cells' buffers do not hold: batches gathered so
        far and the thresholds the window was opened at (a checkpoint saves it; the running
        values themselves are the cells' ``stat_*`` buffers)."""
        return {"seen": self.seen, "batches": self.batches,
                "thresholds": dict(self._thresholds)}

    def load_state_dict(self, state: Dict[str, Any], where: str = "collector state") -> None:
        """Continue the window ``state_dict()`` described; a ValueError naming ``where`` when
        it does not describe this collector (other cells or another window length)."""
        _check_state(state, _STATE_KEYS, where)
        if state["batches"] != self.batches:
            raise ValueError(f"{where}: its calibration window gathers {state['batches']} "
                             f"batches, this one {self.batches} (CalibrationBatches changed)")
        thresholds = state["thresholds"]
        if sorted(thresholds) != sorted(self._thresholds) or not all(
                isinstance(v, float) for v in thresholds.values()):
            raise ValueError(f"{where}: its thresholds are for cells "
                             f"{sorted(thresholds)}, this run gathers statistics for "
                             f"{sorted(self._thresholds)}")
        if not 0 <= state["seen"] <= self.batches:
            raise ValueError(f"{where}: seen={state['seen']} is outside 0..{self.batches}")
        self.seen = state["seen"]
        self._thresholds = dict(thresholds)

    # ----------------------------------------------------------------- one shot
    def calibrate(self, model: nn.Module, batches: Iterable, loss_fn: Optional[Callable] = None,
                  *, train: bool = False, forward: Optional[Forward] = None) -> int:
        """Gather a whole window now from the first ``batches`` (at most the window's length,
        ``calibration_batches``; a warning says when more were given), then recompute the
        masks (through the Pruner when bound, for budgets and the Global ranking); returns the
        number of batches used.

        Forward passes only, without autograd, unless a criterion reads gradients: then
        ``loss_fn(output, target)`` is required and backward runs (no optimiser step). The
        model runs in eval mode (dropout off, BatchNorm using its running statistics) unless
        ``train=True``; either way its modes, buffers, parameters, gradients and torch's random
        state are as they were afterwards (only the pruning state changes). Batch forms:
        :mod:`n2prune.prune.batches` (tensor, ``(inputs, targets)``, mapping called
        ``model(**batch)``, or any batch with ``forward(model, batch)``)."""
        gradients = sorted({name for cell in self.cells.values()
                            for name in gradient_criteria(cell)})
        if gradients and loss_fn is None:
            raise ValueError(f"calibrate: criterion {', '.join(map(repr, gradients))} reads "
                             f"gradients: give loss_fn(output, target) (a tensor to "
                             f"backpropagate)")
        taken = list(itertools.islice(iter(batches), self.batches + 1))
        if not taken:
            raise ValueError("calibration: no batches (the iterable is empty)")
        if len(taken) > self.batches:
            warnings.warn(f"calibrate: used the first {self.batches} batches (the window, "
                          f"calibration_batches={self.batches}); the rest were not read: "
                          f"give Pruner(..., calibration_batches=N) to use more",
                          stacklevel=3)
            taken = taken[:self.batches]
        self.restart()
        self.calibrating = True
        for cell in self.cells.values():
            cell.calibrating = True
        try:
            with left_as_found(model, train, keep_grads=bool(gradients)), \
                    torch.set_grad_enabled(bool(gradients)):
                for batch in taken:
                    if gradients:
                        model.zero_grad(set_to_none=True)
                    output, target = feed(model, batch, forward)
                    if gradients:
                        loss_fn(output, target).backward()
                        self.after_backward()
                    self.end_batch()
        finally:
            self.calibrating = False
            for cell in self.cells.values():
                cell.calibrating = False
        self.seen = self.batches  # the window is complete even with fewer batches
        self._reduce()
        if self._pruner is not None:
            self._pruner.recompute()
        else:
            recompute(self.cells.values())
        self._reconstruct(model, taken, forward)
        self._thresholds = self._current_thresholds()
        return len(taken)

    def _reconstruct(self, model: nn.Module, taken: list, forward: Optional[Forward]) -> None:
        """Criteria that rewrite weights (SparseGPT): each runs over its cells now, from the
        same batches, the model in eval mode without autograd."""
        teams: Dict[str, Dict[str, Any]] = {}
        for name, cell in self.cells.items():
            for criterion in criterion_names(cell):
                if CRITERIA.get(criterion).reconstruct is not None:
                    teams.setdefault(criterion, {})[name] = cell
        for criterion, cells in teams.items():
            runs = [functools.partial(feed, model, batch, forward) for batch in taken]
            with left_as_found(model, train=False, keep_grads=False), torch.no_grad():
                CRITERIA.get(criterion).reconstruct(model, cells, runs)


_STATE_KEYS = {"seen": int, "batches": int, "thresholds": dict}


def _check_state(state: Any, keys: Dict[str, type], where: str) -> None:
    """ValueError naming ``where`` unless ``state`` is a dict with ``keys`` of those types."""
    if not isinstance(state, dict):
        raise ValueError(f"{where}: a {type(state).__name__}, expected a dict")
    for key, kind in keys.items():
        value = state.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{where}: entry {key!r} is missing or not a {kind.__name__} "
                             f"(found {type(value).__name__})")


def recompute(cells: Iterable[Any]) -> None:
    """Refill the masks of ``cells`` at their current thresholds, as their scopes rank
    (Layer: each on its own; Global: together)."""
    rank_by_scope(cells)


def waiting_cells(cells: Dict[str, Any]) -> str:
    """'' when every cell's criteria and budget have their statistics, else a description of
    the first few that lack them (``name: criterion 'X' lacks input_sq_mean``)."""
    lacking = []
    for name, cell in cells.items():
        needs = sorted(need for need in needs_of(cell) if need not in cell.stats)
        if needs:
            lacking.append(f"{name or '<model>'} ({cell.prune_filler}"
                           f"{', budget ' + cell.budget if cell.budget != 'Uniform' else ''}) "
                           f"lacks {', '.join(needs)}")
    if not lacking:
        return ""
    more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
    return "no statistics gathered: " + "; ".join(lacking[:3]) + more
