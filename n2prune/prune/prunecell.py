"""PruneCell: N2D2's pruning quantizer, the one object that holds pruning state (spec §4).

``cell.quantizer = PruneCell(...)`` computes the masks from the cell's weights at once, at the
current threshold (Identity 0, Static ``threshold``, Gradual the schedule's first value), as
N2D2's Python API does. The forward pass uses weight × mask: pruned weights get zero gradient,
the weight stays the same Parameter. Masks, threshold, schedule counters, statistics and rewind
weights are buffers, so ``load_state_dict`` restores pruning exactly. Arguments are checked
against one table (``n2prune.prune.options``), members registered later accepted by name.

One class in one file, over the ~400-line guideline on purpose: what reads or writes the
cell's buffers (masks, groups, statistics, schedule counters, N2D2's getters, saved state)
stays here, in marked sections; what does not (mask files, generator state, group maths,
fillers, schedules) lives in its own module as plain functions. Splitting the class again
would bring back mixins reaching into each other's buffers (issue 21, item 15).

>>> import torch, n2prune
>>> fc = n2prune.cells.Fc(8, 4)
>>> fc.quantizer = n2prune.PruneCell(prune_mode="Static", threshold=0.5,
...                                  prune_filler="Magnitude")
>>> int((fc.quantizer.get_pruned_masks() == 0).sum())
16
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from n2prune.n2d2io.masks import PathLike, import_cell_masks, write_masks
from n2prune.prune import masks as criterion_masks
from n2prune.prune.counting import PRUNING_COUNTS, fill_blocks
from n2prune.prune.criteria.combined import combined_masks, is_combined
from n2prune.prune.criteria.registry import CRITERIA, Criterion
from n2prune.prune.fillers import MASK_FILLERS
from n2prune.prune.options import PRUNE_KEYS, PRUNE_MODES, QUANT_MODES, prune_keys, validated
from n2prune.prune.ranking import check_saved, scope_of
from n2prune.prune.schedules import gradual_step, gradual_tick, scheduled_fraction
from n2prune.prune.sparsity import mask_sparsity
from n2prune.seeds import generator_state, restore_generator

__all__ = ["PRUNE_KEYS", "PRUNE_MODES", "QUANT_MODES", "PruneCell", "prune_keys"]

STAT_PREFIX = "stat_"  # statistic ``name`` is the buffer ``stat_<name>``


class PruneCell(nn.Module):
    """N2D2's pruning quantizer for one Conv or Fc cell.

    Arguments and defaults are those of N2D2's Python wrapper: ``prune_mode`` Identity |
    Static | Gradual, ``prune_filler`` Random | IterNonStruct | None or a criterion
    (Magnitude, L1Norm, L2Norm, ...), ``threshold`` 0.2 (target fraction of zeros), ``delta``
    0.001, ``start`` 0.1, ``stepsize`` 0 (Gradual period in stimuli), ``gamma`` 0.05;
    ``quant_mode`` and ``range`` are accepted and ignored. Ours: ``pattern`` (Unstructured,
    N:M as ``"2:4"``, KxL as ``"4x1"``, Channel), ``scope`` (Layer | Global), ``min_keep``,
    ``schedule`` (Linear | Cubic | OneShot | Iterative, with their window parameters),
    ``rewind`` (stimuli), ``regrow`` (Gradual criteria: re-rank pruned groups at each step
    instead of keeping them pruned), ``count`` (All | Connected: under a Mapping table, whether
    the fillers rank every entry, as N2D2, or count the target over the connected weights only,
    ``n2prune.prune.counting``), ``stats`` (initial statistics for criteria), ``seed`` for the
    Random filler (by default drawn from torch's global generator).

    The trainer or Pruner sets ``default_period`` (see :attr:`period`), ``horizon`` (stimuli
    in the run) and ``epoch_size`` for the schedules. Other modules use only public members.
    """

    _version = 2           # state_dict format: from 2, a coupled cell saves its ties
    waiting = False        # a criterion's masks wait for statistics (nothing pruned yet)
    calibrating = False    # a Pruner's calibration pass runs (no "waiting" warning)
    ranked_later = False   # attach ranks this shared-scope cell with its team afterwards

    def __init__(self, **kwargs: Any):
        super().__init__()
        args = validated(kwargs)
        for key in PRUNE_KEYS:
            setattr(self, key.arg, args[key.arg])
        self.params: Dict[str, Dict[str, Any]] = args["params"]
        self.pattern_rule = args["pattern_member"]
        self.comparison = args["compare_member"]
        self.schedule_rule = args["schedule_member"]
        self.budget_target: float = self.threshold  # a budget's common target (OWL)
        self.default_period, self.horizon, self.epoch_size = 0, 0, 0
        seed = args["seed"]
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed: int = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.register_buffer("mask", torch.ones(0))
        self.register_buffer("current_threshold", torch.tensor(0.0, dtype=torch.float32))
        self.register_buffer("counter", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("increment", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("position", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("rewind_weight", None)
        self.register_buffer("coupled", None)   # the Coupled scope's ties (coupled.py)
        for stat, value in (args["stats"] or {}).items():
            self.set_stat(stat, value)
        self._cell_ref: Optional[weakref.ref] = None
        self._counter_views: Optional[_CounterViews] = None   # quiet_plan's cache

    def _apply(self, fn, recurse: bool = True):
        """``model.to(dtype)``, ``.half()``, ``.bfloat16()``: the mask follows the weights,
        the threshold and the statistics keep their dtype (a bfloat16 threshold of 0.8 is
        0.80078, which prunes more weights than asked); device moves apply to every buffer."""
        kept = {name: value for name, value in self._buffers.items() if value is not None
                and (name == "current_threshold" or name.startswith(STAT_PREFIX))}
        super()._apply(fn, recurse)
        for name, value in kept.items():
            moved = self._buffers[name]
            if moved is not None and moved.dtype != value.dtype:
                self._buffers[name] = value.to(moved.device)
        return self

    @classmethod
    def ini_keys(cls):
        """The ``QWeight.*`` table now (ours and every registered member's parameters)."""
        return prune_keys()

    # ----------------------------------------------------------------- attaching
    def attach(self, cell: nn.Module) -> None:
        """Bind to ``cell`` (called by ``cell.quantizer = self``) and compute the masks."""
        weight = getattr(cell, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"PruneCell: can only be attached to a cell with a weight tensor "
                            f"(Conv, Fc), not {type(cell).__name__}")
        owner = self.attached_cell
        if owner is not None and owner is not cell:
            raise ValueError("PruneCell: this PruneCell is already attached to another cell; "
                             "create one PruneCell per cell")
        self._cell_ref = weakref.ref(cell)
        # the weights' dtype: weight × mask stays in it (a half or bfloat16 model computes so)
        self.mask = criterion_masks.ones_mask(weight)
        for buffer in (self.counter, self.increment, self.position):
            buffer.zero_()
        self.rewind_weight = None
        self.recompute()
        self._save_rewind()

    def rebind(self, cell: nn.Module) -> None:
        """Re-link to ``cell`` (a copy or unpickled cell calls it before using its masks)."""
        if self._cell_ref is None or self._cell_ref() is not cell:
            self._cell_ref = weakref.ref(cell)

    @property
    def attached_cell(self) -> Optional[nn.Module]:
        """The cell this PruneCell is attached to, or None (never attached, or gone)."""
        return self._cell_ref() if self._cell_ref is not None else None

    @property
    def cell(self) -> nn.Module:
        """The cell this PruneCell is attached to (an error when there is none)."""
        cell = self.attached_cell
        if cell is None:
            raise RuntimeError("PruneCell: not attached to a cell; use cell.quantizer = "
                               "PruneCell(...)")
        return cell

    def input_parts(self) -> List[slice]:
        """The weight's column slice of each input of the cell (one for a single input)."""
        return list(getattr(self.cell, "input_slices", None) or [slice(None)])

    # ----------------------------------------------------------------- masks
    def recompute(self) -> None:
        """Reset the current threshold to its initial value and refill the masks from the
        cell's current weights (N2D2's ``initialize()``; Random keeps existing zeros)."""
        initial = 0.0 if self.prune_filler == "None" else \
            PRUNE_MODES.get(self.prune_mode).initial(self)
        self.current_threshold.fill_(float(np.float32(initial)))
        self._rank()

    def _rank(self) -> None:
        """This cell's masks at its current threshold: as its scope ranks a cell alone; a
        shared scope's cell (Global) ranks its own scores here, its team ranks it later."""
        scope = scope_of(self)
        if scope.shared:
            self.refill()
        else:
            scope.rank([self])

    @torch.no_grad()
    def refill(self) -> None:
        """The masks from this cell's own scores at its current threshold (Layer scope), left
        as they are while a criterion lacks statistics (``waiting``: a Pruner gathers them)."""
        if self.ranked_later:
            return  # n2prune.attach ranks its Global cells together right after attaching
        if self.prune_filler == "None":
            self.mask.fill_(1.0)
            return
        target = float(self.current_threshold)
        if self.prune_filler in MASK_FILLERS:  # N2D2's fillers
            self.waiting = False
            fill_blocks(MASK_FILLERS.get(self.prune_filler), PRUNING_COUNTS.get(self.count),
                        self.cell, self.mask, self.input_parts(), target, delta=self.delta,
                        generator=self.generator)
            return
        if is_combined(self.prune_filler):  # several criteria (n2prune.prune.criteria.combined)
            keeps = combined_masks(self, target)
        else:
            criterion = CRITERIA.get(self.prune_filler)
            keeps = None if criterion.missing(self.stats) else \
                self.criterion_keeps(criterion, target)
        self.waiting = keeps is None
        if keeps is not None:
            self.apply_keep(keeps)

    def criterion_keeps(self, criterion: Criterion, target: float) -> List[torch.Tensor]:
        """Bool keep-masks of each input block by ``criterion`` at ``target``, ranked alone."""
        return criterion_masks.criterion_masks(
            criterion, self.pattern_rule, self.cell.weight, self.criterion_inputs,
            self.input_parts(), target, self.criterion_params(criterion),
            criterion_masks.out_view(self.cell), self.pruned_parts(), self.comparison)

    @torch.no_grad()
    def apply_keep(self, keeps: List[torch.Tensor], groups: bool = False) -> None:
        """Set the masks of each input block from bool keep-masks (of groups when ``groups``,
        expanded by the pattern)."""
        weight = self.cell.weight
        for keep, part in zip(keeps, self.input_parts()):
            if groups:
                keep = criterion_masks.expand_groups(self.pattern_rule, keep, weight[:, part],
                                                     criterion_masks.out_view(self.cell))
            criterion_masks.copy_into(self.mask[:, part], keep)

    # ----------------------------------------------------------------- masks by groups
    @property
    def sticky(self) -> bool:
        """Whether masks only grow: Gradual mode without ``regrow`` (pruned groups are ranked
        first whenever the new target prunes at least as many)."""
        return PRUNE_MODES.get(self.prune_mode).scheduled and not self.regrow

    def pruned_parts(self) -> Optional[List[torch.Tensor]]:
        """Per input block, the bool tensor of pruned weights when ``sticky``, else None."""
        if not self.sticky:
            return None
        return [self.mask[:, part] == 0 for part in self.input_parts()]

    def dead_groups(self) -> List[torch.Tensor]:
        """Per input block, the bool group tensor of the groups the masks prune entirely."""
        pruned = [self.mask[:, part] == 0 for part in self.input_parts()]
        return criterion_masks.dead_groups(self.pattern_rule, pruned,
                                           criterion_masks.out_view(self.cell))

    def group_scores(self, name: Optional[str] = None) -> List[torch.Tensor]:
        """The group scores of each input block (for Global scope ranking) by the criterion
        ``name`` (default: the cell's filler; one of a combined filler's criteria), with the
        cell's parameters that criterion declares."""
        name = self.prune_filler if name is None else name
        if name not in CRITERIA:
            raise ValueError(f"PruneCell: prune_filler={name!r} gives no scores")
        criterion = CRITERIA.get(name)
        missing = criterion.missing(self.stats)
        if missing:
            raise ValueError(f"PruneCell: criterion {name!r} needs the statistics "
                             f"{', '.join(missing)}; a Pruner gathers them")
        return criterion_masks.group_scores(criterion, self.pattern_rule, self.cell.weight,
                                            self.criterion_inputs, self.input_parts(),
                                            self.criterion_params(criterion),
                                            criterion_masks.out_view(self.cell))

    def criterion_params(self, criterion: Criterion) -> Dict[str, Any]:
        """The cell's criterion parameters that ``criterion`` declares."""
        params = self.params["criterion"]
        return {key.arg: params[key.arg] for key in criterion.params if key.arg in params}

    # ----------------------------------------------------------------- statistics
    @property
    def stats(self) -> Dict[str, torch.Tensor]:
        """The statistics criteria read (buffers ``stat_<name>``, saved in state_dict)."""
        return {name[len(STAT_PREFIX):]: value for name, value in self._buffers.items()
                if name.startswith(STAT_PREFIX) and value is not None}

    @property
    def criterion_inputs(self) -> Dict[str, torch.Tensor]:
        """What a criterion's ``stats`` argument holds: the statistics, plus ``"mask"`` (the
        current mask, for criteria that score the effective weights, as LAMP does)."""
        return {**self.stats, "mask": self.mask}

    def set_stat(self, name: str, value: torch.Tensor) -> None:
        """Store (or replace) the statistic ``name`` as a buffer."""
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"PruneCell: statistic {name!r} must be a tensor, got "
                            f"{type(value).__name__}")
        key = STAT_PREFIX + name
        if key in self._buffers and self._buffers[key] is not None \
                and self._buffers[key].shape == value.shape:
            self._buffers[key].copy_(value.detach())
        else:  # contiguous: safetensors refuses a transposed view's strides
            self.register_buffer(key, value.detach().clone(memory_format=torch.contiguous_format))

    # ----------------------------------------------------------------- forward
    def quantize(self, weight: torch.Tensor) -> torch.Tensor:
        """weight × mask: the tensor the cell computes with."""
        mask = self._buffers["mask"]   # nn.Module's attribute fallback costs more, every pass
        if mask.shape != weight.shape:
            raise RuntimeError(f"PruneCell: mask shape {tuple(mask.shape)} does not match "
                               f"the weight shape {tuple(weight.shape)}; re-attach the PruneCell")
        if self.waiting and not self.cell.training and not self.calibrating:
            self._warn_waiting()
        return weight * mask

    def _warn_waiting(self) -> None:
        """Once: an inference forward while the masks still wait for statistics."""
        if not self.__dict__.get("_warned_waiting"):
            self.__dict__["_warned_waiting"] = True
            warnings.warn(f"PruneCell on {type(self.cell).__name__} "
                          f"{tuple(self.cell.weight.shape)}: criterion {self.prune_filler!r} "
                          f"has no statistics yet, so nothing is pruned; run "
                          f"n2prune.Pruner(model).calibrate(model, batches) first",
                          stacklevel=4)

    # ----------------------------------------------------------------- schedule
    def update(self, batch_size: int) -> bool:
        """Count ``batch_size`` stimuli after an optimiser step; returns whether a Gradual step
        fired (the threshold changed). Linear: the first call's batch size is the increment
        reused from then on (N2D2). Global scope: the masks are left to ``prune_global``."""
        if not PRUNE_MODES.get(self.prune_mode).scheduled:
            return False
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size <= 0:
            raise ValueError(f"PruneCell.update: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        position = int(self.position) + int(batch_size)
        if self.schedule_rule.staircase:
            increment = int(self.increment)
            if increment == 0:
                increment = int(batch_size)
                self.increment.fill_(increment)
            counter, fired = gradual_tick(int(self.counter), increment, self.period)
            self.counter.fill_(counter)
            current = float(self.current_threshold)
            if fired and current < float(np.float32(self.threshold)):
                self._step(gradual_step(current, self.gamma, self.threshold))
        else:
            new = float(np.float32(scheduled_fraction(  # raises before any state changes
                self.schedule_rule, position, self.start, self.threshold, self.period,
                self.horizon, self.epoch_size)))
            fired = new != float(self.current_threshold)
            if fired:
                self._step(new)
        self.position.fill_(position)
        self._save_rewind()
        return fired

    def quiet_plan(self, batch_size: int) -> Optional[tuple]:
        """What :meth:`update` writes on a step where it only counts: ``(counter, new value,
        position, new value)``, NumPy views of the 0-d CPU counters (kept while the buffers
        stay the same tensors; a tensor operation costs microseconds between two optimiser
        steps); ``()`` without a schedule; None when ``update`` must run. Changes nothing."""
        if not PRUNE_MODES.get(self.prune_mode).scheduled:
            return ()
        buffers = self._buffers   # nn.Module's attribute fallback costs more than this
        if type(batch_size) is not int or batch_size <= 0 or type(self).update is not \
                PruneCell.update or not self.schedule_rule.staircase or \
                (self.rewind is not None and buffers["rewind_weight"] is None):
            return None   # update checks the batch size, or does more than count
        views = self._counter_views
        if views is None or views[0][0] is not buffers["counter"] or \
                views[0][1] is not buffers["increment"] or views[0][2] is not buffers["position"]:
            views = self._counter_views = _counter_views(buffers)
            if views is None:
                return None
        counter, increment, position = views[1]
        count, fired = gradual_tick(int(counter), int(increment), self.period)
        if fired or not increment:
            return None   # a Gradual step is due, or the first update sets the increment
        return counter, count, position, int(position) + batch_size

    @staticmethod
    def count_quietly(plans: List[tuple]) -> None:
        """Write the :meth:`quiet_plan` of each cell (what each one's ``update`` would)."""
        for plan in plans:
            if plan:
                counter, count, position, stimuli = plan
                counter[()] = count
                position[()] = stimuli

    def _step(self, threshold: float) -> None:
        self.current_threshold.fill_(threshold)
        if not scope_of(self).shared:  # a shared scope's cells are ranked by the Pruner
            self._rank()
            self.rewind_weights()

    def _save_rewind(self) -> None:
        if self.rewind is not None and self.rewind_weight is None \
                and int(self.position) >= self.rewind:
            self.rewind_weight = self.cell.weight.detach().clone()

    @torch.no_grad()
    def rewind_weights(self) -> None:
        """Weights back to their values saved at ``rewind`` stimuli (when saved; masks kept)."""
        if self.rewind_weight is not None:
            self.cell.weight.copy_(self.rewind_weight)

    @property
    def period(self) -> int:
        """Gradual period in stimuli: ``stepsize`` if > 0, else ``default_period`` (the trainer
        sets ``-log-epoch`` epochs of stimuli, as the ``n2d2`` program does); stand-alone it
        stays 0 and, as in N2D2's Python API, a step fires on every ``update`` call."""
        return self.stepsize if self.stepsize > 0 else int(self.default_period)

    @property
    def done(self) -> bool:
        """Whether the current threshold has reached the target (always true unless Gradual)."""
        if not PRUNE_MODES.get(self.prune_mode).scheduled or self.prune_filler == "None":
            return True
        return float(self.current_threshold) >= float(np.float32(self.threshold))

    def sparsity(self) -> float:
        """Fraction of the connected weights the masks prune (``n2prune.prune.sparsity``)."""
        cell = self.attached_cell
        return mask_sparsity(self.mask, getattr(cell, "connection", None))

    # ----------------------------------------------------------------- N2D2's getters, files
    def _part(self, input_idx: int) -> slice:
        parts = self.input_parts()
        if isinstance(input_idx, bool) or not isinstance(input_idx, int) \
                or not 0 <= input_idx < len(parts):
            raise IndexError(f"PruneCell: input_idx={input_idx!r} out of range; this cell has "
                             f"{len(parts)} input(s)")
        return parts[input_idx]

    def get_pruned_masks(self, input_idx: int = 0) -> torch.Tensor:
        """The mask (0 = pruned) of input ``input_idx``, same shape as its weight."""
        return self.mask[:, self._part(input_idx)].detach().clone()

    def get_quantized_weights(self, input_idx: int = 0) -> torch.Tensor:
        """The masked weights of input ``input_idx``."""
        part = self._part(input_idx)
        return (self.cell.weight[:, part] * self.mask[:, part]).detach().clone()

    def get_current_threshold(self) -> float:
        return float(self.current_threshold)

    def export_masks(self, path: PathLike) -> None:
        """Write N2D2's ``<cell>_masks.syntxt``: for each input, one 0/1 line per output."""
        write_masks(path, [self.mask[:, part] for part in self.input_parts()])

    @torch.no_grad()
    def import_masks(self, path: PathLike) -> None:
        """Read N2D2's masks file (every input's masks, or only the first input's, as N2D2
        does); the current threshold becomes the zero fraction of mask 0."""
        self.current_threshold.fill_(import_cell_masks(path, self.mask, self.input_parts()))

    # ----------------------------------------------------------------- saved state
    def _load_from_state_dict(self, state_dict, prefix, metadata, strict, missing, *args):
        """Refuse masks the cell's pattern forbids (saved under another pattern, or edited)
        and entries its scope contradicts (``Scope.check_load``) before anything is copied;
        create the statistics and rewind buffers saved."""
        check_saved(self, state_dict, prefix, metadata)
        mask = state_dict.get(prefix + "mask")
        attached = self.attached_cell is not None
        if isinstance(mask, torch.Tensor) and attached and mask.shape == self.mask.shape:
            threshold = float(state_dict.get(prefix + "current_threshold",
                                             self.current_threshold))
            bad, groups = criterion_masks.pattern_violations(
                self.pattern_rule, mask, self.input_parts(), threshold,
                criterion_masks.out_view(self.cell))
            if bad:
                raise ValueError(f"PruneCell ({self.pattern_rule}): the mask in {prefix}mask "
                                 f"breaks the pattern in {bad} of {groups} groups (saved under "
                                 f"another pattern?); attach with the pattern it was saved with")
        for key, value in state_dict.items():
            name = key[len(prefix):]
            saved = name.startswith(STAT_PREFIX) or name == "rewind_weight"
            if key.startswith(prefix) and saved and "." not in name \
                    and getattr(self, name, None) is None:
                self.register_buffer(name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, metadata, strict, missing, *args)
        if prefix + "coupled" in missing:   # saved before version 2: check_saved allowed it
            missing.remove(prefix + "coupled")

    def get_extra_state(self) -> torch.Tensor:
        """The Random filler's generator state, saved as ``<cell>._extra_state``."""
        return generator_state(self.generator)

    def set_extra_state(self, state: Any) -> None:
        """The generator state saved by :meth:`get_extra_state` (or by older versions)."""
        restore_generator(self.generator, state, "PruneCell")

    def __getstate__(self) -> Dict[str, Any]:
        # Copies and pickles drop the link to the cell (the cell's own __setstate__ re-links)
        # and carry the generator as its state.
        state = self.__dict__.copy()
        state["_cell_ref"] = None
        state["_counter_views"] = None
        state["generator"] = self.generator.get_state()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        saved = state["generator"]
        state = {**state, "generator": torch.Generator()}
        for old, new in _RENAMED.items():   # pickled before these members were public
            if old in state:
                state.setdefault(new, state.pop(old))
        state.setdefault("_counter_views", None)
        super().__setstate__(state)
        self.generator.set_state(saved)

    def extra_repr(self) -> str:
        attached = self.attached_cell is not None
        sparsity = f"{self.sparsity():.4f}" if attached else "n/a (not attached)"
        extra = "".join(f", {name}={value!r}" for name, value in
                        (("pattern", str(self.pattern_rule)), ("scope", self.scope),
                         ("group", self.group), ("budget", self.budget),
                         ("schedule", self.schedule), ("count", self.count)) if value not in
                        ("Unstructured", "Layer", "Linear", "Uniform", "All"))
        return (f"prune_mode={self.prune_mode!r}, prune_filler={self.prune_filler!r}, "
                f"threshold={self.threshold:g}{extra}, "
                f"current={self.get_current_threshold():.6g}, sparsity={sparsity}")


_COUNTERS = ("counter", "increment", "position")
_CounterViews = Tuple[Tuple[torch.Tensor, ...], Tuple[np.ndarray, ...]]


def _counter_views(buffers: Dict[str, Optional[torch.Tensor]]) -> Optional[_CounterViews]:
    """The counters and NumPy views of them (None when one is not a 0-d CPU int64 tensor)."""
    tensors = tuple(buffers.get(name) for name in _COUNTERS)
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu" \
                or tensor.dtype != torch.int64 or tensor.dim() != 0 or tensor.requires_grad:
            return None
    return tensors, tuple(tensor.numpy() for tensor in tensors)


_RENAMED = {"_pattern": "pattern_rule", "_compare": "comparison",
            "_schedule": "schedule_rule", "_waiting": "waiting", "_calibrating": "calibrating"}
