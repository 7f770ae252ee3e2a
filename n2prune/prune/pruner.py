"""Pruner: drives the PruneCells of a model from a training loop (yours or ``n2prune-train``).

It owns schedule stepping (``PruneCell.update`` for every cell after each optimiser step) and
the global ranking (one ``prune_global`` over all cells with ``scope="Global"`` whenever their
threshold moves), and reports sparsity. The hooks are those INC's pruning users know; a loop
calls them in this order::

    pruner = n2prune.Pruner(model, epoch_size=len(train_set), epochs=10)
    pruner.on_train_begin()
    for epoch in range(10):
        pruner.on_epoch_begin(epoch)
        for step, (x, y) in enumerate(loader):
            pruner.on_step_begin(step)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(); loss.backward()
            pruner.on_before_optimizer_step()
            optimizer.step()
            pruner.on_step_end(len(x))
        pruner.on_epoch_end()
    pruner.on_train_end()

Extensions (statistics for criteria, regularisers) are *callbacks*: objects with any of the
hook methods, each called with the Pruner as its first argument after the Pruner's own work,
plus optional ``bind(pruner)`` (install forward hooks on ``pruner.layers``) and ``unbind()``.
They store what they gather in the cells (``PruneCell.set_stat``), so it travels in state_dict;
``pruner.recompute()`` then refills the masks at the current thresholds.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

import math

import numpy as np
import torch
from torch import nn

from n2prune.prune.budgets import allocate
from n2prune.prune.calibration import StatisticsCollector, needs_of, waiting_cells
from n2prune.prune.options import PRUNE_MODES
from n2prune.prune.prunecell import PruneCell
from n2prune.prune.reached import report as report_missed
from n2prune.prune.regularization import cell_penalty
from n2prune.prune.sparsity import mask_counts
from n2prune.prune.ranking import SCOPES, rank_by_scope, scope_of, teams

HOOKS = ("on_train_begin", "on_epoch_begin", "on_step_begin", "on_before_optimizer_step",
         "on_step_end", "on_epoch_end", "on_train_end")
ModelOrCells = Union[nn.Module, Mapping[str, PruneCell], Iterable[PruneCell]]


def find_cells(model_or_cells: ModelOrCells) -> Dict[str, PruneCell]:
    """``{name: PruneCell}`` from a model (every layer's ``quantizer``), a dict as ``attach``
    returns (an empty dict is accepted: ``n2prune-train`` on an unpruned network), or a list
    of PruneCells (named by position)."""
    if isinstance(model_or_cells, PruneCell):
        return {"": model_or_cells}
    if isinstance(model_or_cells, nn.Module):
        found = {name: layer._modules["quantizer"]
                 for name, layer in model_or_cells.named_modules()
                 if isinstance(layer._modules.get("quantizer"), PruneCell)}
        if not found:
            raise ValueError(f"Pruner: {type(model_or_cells).__name__} holds no PruneCell; "
                             f"use n2prune.attach(model, ...) first")
        return found
    if isinstance(model_or_cells, Mapping):
        items = list(model_or_cells.items())  # may be empty: a Pruner with nothing to do
    else:
        items = [(str(i), cell) for i, cell in enumerate(model_or_cells)]
        if not items:
            raise ValueError("Pruner: no PruneCell given")
    for name, cell in items:
        if not isinstance(cell, PruneCell):
            raise TypeError(f"Pruner: {name!r} is a {type(cell).__name__}, not a PruneCell")
    return dict(items)


class Pruner:
    """Schedule stepping, global ranking and statistics for a set of PruneCells.

    ``epoch_size`` (stimuli per epoch) lets schedules take positions in epochs; ``epochs``
    (or ``horizon``, stimuli in the whole run) lets a schedule without an end reach its target
    before learning ends; ``period`` is the Gradual period of cells without ``stepsize``
    (N2D2's default: the log period). Values a cell already has are not overwritten unless
    given here. ``callbacks``: extensions, see the module docstring.
    """

    def __init__(self, model_or_cells: ModelOrCells, *, epoch_size: int = 0,
                 epochs: Optional[float] = None, horizon: Optional[int] = None,
                 period: Optional[int] = None, callbacks: Iterable[Any] = (),
                 calibration_batches: Optional[int] = None):
        self.cells: Dict[str, PruneCell] = find_cells(model_or_cells)
        if epochs is not None and horizon is not None:
            raise ValueError("Pruner: give epochs or horizon (stimuli), not both")
        if epochs is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) \
                    or not math.isfinite(epochs) or epochs <= 0:
                raise ValueError(f"Pruner: epochs={epochs!r} must be a finite number > 0")
            if epoch_size <= 0:
                raise ValueError("Pruner: epochs needs epoch_size (stimuli per epoch)")
            horizon = int(round(epochs * epoch_size))
        for value, name in ((epoch_size, "epoch_size"), (horizon, "horizon"),
                            (period, "period")):
            if value is not None and (isinstance(value, bool) or int(value) != value
                                      or value < 0):
                raise ValueError(f"Pruner: {name}={value!r} must be a non-negative integer")
        for cell in self.cells.values():
            if epoch_size:
                cell.epoch_size = int(epoch_size)
            if horizon is not None:
                cell.horizon = int(horizon)
            if period is not None:
                cell.default_period = int(period)
        # cells of shared scopes (Global, and any registered one), ranked together
        self.global_cells: List[PruneCell] = [c for c in self.cells.values()
                                              if scope_of(c).shared]
        self.epoch, self.step, self.stimuli = 0, 0, 0
        self.masks_changed = False  # whether the last on_step_end moved a threshold
        self.callbacks: List[Any] = []
        for callback in callbacks:
            self.add_callback(callback)
        # data-driven criteria: a collector gathers their statistics (n2prune.prune.calibration)
        self.budgets: Dict[str, float] = {}  # per-cell targets a budget (OWL) chose
        self.collector: Optional[StatisticsCollector] = None
        if any(needs_of(cell) for cell in self.cells.values()):
            self.collector = StatisticsCollector(batches=calibration_batches)
            self.add_callback(self.collector)
        if self.global_cells:
            self.rank_global()
        report_missed(self.cells)  # once per cell and target (INI cells were never attached)

    # ----------------------------------------------------------------- layers and callbacks
    @property
    def layers(self) -> Dict[str, nn.Module]:
        """``{name: layer}``: the module each cell prunes (for forward hooks)."""
        return {name: cell.cell for name, cell in self.cells.items()}

    def add_callback(self, callback: Any) -> None:
        """Add an extension; its ``bind(pruner)`` (if any) is called now."""
        bind = getattr(callback, "bind", None)
        if bind is not None:
            bind(self)
        self.callbacks.append(callback)

    def _dispatch(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self) -> None:
        self._dispatch("on_train_begin")

    def on_epoch_begin(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._dispatch("on_epoch_begin", epoch)

    def on_step_begin(self, step: int) -> None:
        self.step = int(step)
        self._dispatch("on_step_begin", step)

    def on_before_optimizer_step(self) -> None:
        """After backward, before the optimiser: where gradient statistics are read."""
        self._dispatch("on_before_optimizer_step")

    def on_step_end(self, batch_size: int) -> bool:
        """Advance every cell's schedule by ``batch_size`` stimuli; returns whether a mask
        changed. Global cells are ranked together when their threshold moves."""
        plans = []
        for cell in self.cells.values():
            plan = cell.quiet_plan(batch_size)
            if plan is None:
                break
            plans.append(plan)
        else:   # no schedule is due: each cell only counts
            PruneCell.count_quietly(plans)
            self.stimuli += batch_size
            self.masks_changed = False
            self._dispatch("on_step_end", batch_size)
            return False
        fired = False
        global_fired = False
        before = [float(cell.current_threshold) for cell in self.cells.values()]
        for cell in self.cells.values():
            if cell.update(batch_size):
                fired = True
                global_fired = global_fired or scope_of(cell).shared
        self.stimuli += int(batch_size)
        if global_fired:
            self.rank_global()
            for cell in self.global_cells:
                rewind = getattr(cell, "rewind_weights", None)
                if rewind is not None:
                    rewind()
        self.masks_changed = fired and any(  # a step at the final threshold changes nothing
            float(cell.current_threshold) != value
            for cell, value in zip(self.cells.values(), before))
        if self.masks_changed:
            report_missed(self.cells)
        self._dispatch("on_step_end", batch_size)
        return fired

    def on_epoch_end(self) -> None:
        self._dispatch("on_epoch_end")

    def on_train_end(self) -> None:
        self._dispatch("on_train_end")
        for callback in self.callbacks:
            unbind = getattr(callback, "unbind", None)
            if unbind is not None:
                unbind()

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> Dict[str, Any]:
        """What the Pruner itself holds (the cells' state is in the model's state_dict): its
        position, which regularisation schedules read, and the calibration window's."""
        return {"epoch": self.epoch, "step": self.step, "stimuli": self.stimuli,
                "collector": None if self.collector is None else self.collector.state_dict()}

    def load_state_dict(self, state: Dict[str, Any], where: str = "Pruner state") -> None:
        """Continue from ``state_dict()`` (after the model's state_dict is loaded); a
        ValueError naming ``where`` when it was saved by a differently configured Pruner."""
        if not isinstance(state, dict):
            raise ValueError(f"{where}: a {type(state).__name__}, expected a dict")
        for key in ("epoch", "step", "stimuli"):
            if not isinstance(state.get(key), int) or isinstance(state[key], bool) \
                    or state[key] < 0:
                raise ValueError(f"{where}: entry {key!r} is missing or not an integer >= 0")
        if (state.get("collector") is None) != (self.collector is None):
            saved = "gathers" if state.get("collector") is not None else "gathers no"
            raise ValueError(f"{where}: it {saved} calibration statistics, this Pruner "
                             f"{'does not' if self.collector is None else 'does'}")
        if self.collector is not None:
            self.collector.load_state_dict(state["collector"], f"{where}: collector")
        self.epoch, self.step, self.stimuli = state["epoch"], state["step"], state["stimuli"]

    # ----------------------------------------------------------------- criteria's extras
    def calibrate(self, model: nn.Module, batches: Iterable, loss_fn: Any = None, *,
                  train: bool = False, forward: Any = None) -> int:
        """Gather the criteria's (and budgets') statistics now and recompute the masks; returns
        the batches used. Forward only, in eval mode, the model left exactly as found, unless
        a criterion reads gradients (``loss_fn(output, target)`` then required) or
        ``train=True``; batches are tensors, ``(inputs, targets)`` pairs, mappings (called
        ``model(**batch)``) or anything ``forward(model, batch)`` takes
        (``StatisticsCollector.calibrate``). 0 when no cell reads statistics."""
        if self.collector is None:
            return 0  # no criterion or budget reads statistics: the masks need none
        return self.collector.calibrate(model, batches, loss_fn, train=train, forward=forward)

    def penalty(self) -> torch.Tensor:
        """The cells' sparsity penalties (``regularization=`` L1 / GroupLasso, scheduled over
        the stimuli seen), to add to the loss; a zero tensor when none is set."""
        total: Optional[torch.Tensor] = None
        for cell in self.cells.values():
            term = cell_penalty(cell, self.stimuli)
            if term is not None:
                total = term if total is None else total + term
        return total if total is not None else torch.zeros(())

    # ----------------------------------------------------------------- masks
    def rank_global(self) -> None:
        """One ranking per shared scope (Global: over every Global cell at their common current
        threshold)."""
        for name, team in teams(self.global_cells).items():
            SCOPES.get(name).rank(team)

    @torch.no_grad()
    def recompute(self) -> None:
        """Refill every mask at the current thresholds (after new statistics, say); cells with
        a budget (OWL) first get their own targets from it. A criterion or budget still
        lacking its statistics is an error naming ``calibrate``."""
        missing = waiting_cells(self.cells)
        if missing:
            raise ValueError(f"Pruner.recompute: {missing}; run pruner.calibrate(model, "
                             f"batches) first (or train with the Pruner's hooks)")
        for name, target in allocate(self.cells).items():
            cell = self.cells[name]
            cell.threshold = target
            if not PRUNE_MODES.get(cell.prune_mode).scheduled:
                cell.current_threshold.fill_(float(np.float32(target)))
            elif float(cell.current_threshold) > target:
                cell.current_threshold.fill_(float(np.float32(target)))
        rank_by_scope(self.cells.values())
        report_missed(self.cells)
        self.budgets = {name: cell.threshold for name, cell in self.cells.items()
                        if cell.budget != "Uniform"}

    # ----------------------------------------------------------------- statistics
    def statistics(self) -> Dict[str, Dict[str, float]]:
        """Per cell and ``"total"``: weights, pruned, sparsity; per cell also the current
        and target thresholds."""
        stats: Dict[str, Dict[str, float]] = {}
        pruned_all = weights_all = 0
        for name, cell in self.cells.items():
            layer = cell.attached_cell
            pruned, weights = mask_counts(cell.mask, getattr(layer, "connection", None))
            stats[name] = {"weights": weights, "pruned": pruned,
                           "sparsity": pruned / weights if weights else 0.0,
                           "threshold": cell.get_current_threshold(),
                           "target": cell.threshold}
            pruned_all, weights_all = pruned_all + pruned, weights_all + weights
        stats["total"] = {"weights": weights_all, "pruned": pruned_all,
                          "sparsity": pruned_all / weights_all if weights_all else 0.0}
        return stats

    def sparsity(self) -> float:
        """Pruned over (connected) weights of all cells."""
        return self.statistics()["total"]["sparsity"]

    def summary(self) -> List[str]:
        """One line per cell (name, layer, weight shape, how it prunes, sparsity), then total."""
        stats = self.statistics()
        width = max([len(name) for name in self.cells] + [5])
        lines = []
        for name, cell in self.cells.items():
            layer = cell.attached_cell
            shape = "x".join(str(d) for d in cell.mask.shape)
            how = " ".join(str(v) for v in (cell.prune_mode, cell.prune_filler,
                                            getattr(cell, "pattern", "Unstructured"),
                                            getattr(cell, "scope", "Layer"),
                                            getattr(cell, "schedule", "Linear")))
            s = stats[name]
            lines.append(f"{name or '<model>':<{width}}  {type(layer).__name__:<16} "
                         f"{shape:<14} {how:<48} {s['threshold']:.4f}/{s['target']:.4f}  "
                         f"sparsity {s['sparsity']:.4f} ({s['pruned']}/{s['weights']})")
        total = stats["total"]
        lines.append(f"{'total':<{width}}  {len(self.cells)} cells, sparsity "
                     f"{total['sparsity']:.4f} ({total['pruned']}/{total['weights']})")
        return lines

    def __repr__(self) -> str:
        return (f"Pruner({len(self.cells)} cells, {len(self.global_cells)} global, "
                f"sparsity={self.sparsity():.4f}, epoch={self.epoch}, stimuli={self.stimuli})")
