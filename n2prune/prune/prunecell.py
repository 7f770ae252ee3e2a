"""PruneCell: N2D2's pruning quantizer, the one object that holds pruning state (spec §4).

Attach it to a Conv or Fc cell with ``cell.quantizer = PruneCell(...)``. The masks are computed
from the cell's weights **when it is attached**, at the current threshold (Identity 0, Static
``threshold``, Gradual ``start``), as N2D2's Python API does; ``recompute()`` redoes it later.
The forward pass uses weight × mask, so pruned weights get zero gradient while the weight stays
the same Parameter. Masks, the current threshold and the Gradual counter are buffers: they travel
in the cell's ``state_dict`` and ``load_state_dict`` restores them exactly.

>>> import torch, n2prune
>>> fc = n2prune.cells.Fc(8, 4)
>>> fc.quantizer = n2prune.prune.prunecell.PruneCell(prune_mode="Static", threshold=0.5,
...                                            prune_filler="IterNonStruct")
>>> float((fc.quantizer.get_pruned_masks() == 0).float().mean()) >= 0.5
True
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from n2prune.prune.fillers import MASK_FILLERS
from n2prune.n2d2io.masks import PathLike, read_masks, write_masks
from n2prune.ini.params import Key
from n2prune.registry import did_you_mean
from n2prune.prune.schedules import gradual_step, gradual_tick
from n2prune.ini.values import read_enum, read_float, read_uint

PRUNE_MODES = ("Identity", "Static", "Gradual")
QUANT_MODES = ("Default", "Symmetric", "Asymmetric", "FullRange")

# INI key (after "QWeight.") <-> Python argument <-> reader <-> default: spec §4.2.
PRUNE_KEYS = (
    Key("PruningMode", "prune_mode", read_enum(list(PRUNE_MODES)), "Identity"),
    Key("PruningFiller", "prune_filler", read_enum(MASK_FILLERS.names()), "Random"),
    Key("Threshold", "threshold", read_float, 0.2, "target fraction of zeros"),
    Key("Delta", "delta", read_float, 0.001, "IterNonStruct magnitude step"),
    Key("StartThreshold", "start", read_float, 0.1, "first Gradual fraction"),
    Key("StepSizeThreshold", "stepsize", read_uint, 0, "Gradual period in stimuli"),
    Key("GammaThreshold", "gamma", read_float, 0.05, "Gradual increment"),
    Key("Range", "range", read_uint, 255, "accepted and ignored"),
    Key("QuantMode", "quant_mode", read_enum(list(QUANT_MODES)), "Default",
        "accepted and ignored"),
)
_DEFAULTS = {key.arg: key.default for key in PRUNE_KEYS}
_EXTRA_ARGS = {"seed": None}


def _check_choice(name: str, value: Any, choices) -> str:
    if value is None and name == "prune_filler":
        return "None"
    if not isinstance(value, str):
        raise TypeError(f"PruneCell: {name} must be a string, got {value!r} "
                        f"({type(value).__name__}); allowed: {', '.join(choices)}")
    if value not in choices:
        raise ValueError(f"PruneCell: {name}={value!r}: " + did_you_mean(value, list(choices),
                                                                          "value"))
    return value


def _check_number(name: str, value: Any, integer: bool, low: float, high: float,
                  low_open: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds + (np.integer, np.floating)):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"PruneCell: {name} must be {kind}, got {value!r} "
                        f"({type(value).__name__})")
    if integer and isinstance(value, (float, np.floating)):
        raise TypeError(f"PruneCell: {name} must be an integer, got {value!r}")
    bad = math.isnan(value) or value > high or value < low or (low_open and value <= low)
    if bad:
        left = "(" if low_open else "["
        right = "]" if high != math.inf else ")"
        raise ValueError(f"PruneCell: {name}={value!r} is out of range; allowed: "
                         f"{left}{low:g}, {high:g}{right}")
    return int(value) if integer else float(value)


def _validated(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    known = list(_DEFAULTS) + list(_EXTRA_ARGS)
    for name in kwargs:
        if name not in known:
            raise TypeError("PruneCell: " + did_you_mean(name, known, "argument"))
    args = {**_DEFAULTS, **_EXTRA_ARGS, **kwargs}
    args["prune_mode"] = _check_choice("prune_mode", args["prune_mode"], PRUNE_MODES)
    args["prune_filler"] = _check_choice("prune_filler", args["prune_filler"],
                                         MASK_FILLERS.names())
    args["quant_mode"] = _check_choice("quant_mode", args["quant_mode"], QUANT_MODES)
    args["threshold"] = _check_number("threshold", args["threshold"], False, 0.0, 1.0)
    args["start"] = _check_number("start", args["start"], False, 0.0, 1.0)
    args["delta"] = _check_number("delta", args["delta"], False, 0.0, math.inf, low_open=True)
    args["gamma"] = _check_number("gamma", args["gamma"], False, 0.0, math.inf)
    args["stepsize"] = _check_number("stepsize", args["stepsize"], True, 0, math.inf)
    args["range"] = _check_number("range", args["range"], True, 0, math.inf)
    if args["seed"] is not None:
        args["seed"] = _check_number("seed", args["seed"], True, 0, 2**63 - 1)
    return args


class PruneCell(nn.Module):
    """N2D2's pruning quantizer for one Conv or Fc cell.

    Arguments and defaults are those of N2D2's Python wrapper: ``prune_mode`` Identity |
    Static | Gradual, ``prune_filler`` Random | IterNonStruct | None, ``threshold`` 0.2 (target
    fraction of zeros), ``delta`` 0.001, ``start`` 0.1, ``stepsize`` 0 (Gradual period in
    stimuli), ``gamma`` 0.05; ``quant_mode`` and ``range`` are accepted and ignored. ``seed``
    (ours) seeds the Random filler; by default it is drawn from torch's global generator, so
    ``torch.manual_seed`` makes masks reproducible.

    Gradual period: ``stepsize`` when > 0, else ``default_period`` (the trainer sets it to
    ``-log-epoch`` epochs of stimuli, as the ``n2d2`` program does); used stand-alone it stays
    0, and, as in N2D2's Python API, a step then fires on every ``update`` call.
    """

    def __init__(self, **kwargs: Any):
        super().__init__()
        args = _validated(kwargs)
        self.prune_mode: str = args["prune_mode"]
        self.prune_filler: str = args["prune_filler"]
        self.threshold: float = args["threshold"]
        self.delta: float = args["delta"]
        self.start: float = args["start"]
        self.stepsize: int = args["stepsize"]
        self.gamma: float = args["gamma"]
        self.quant_mode: str = args["quant_mode"]
        self.range: int = args["range"]
        self.default_period: int = 0
        seed = args["seed"]
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed: int = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.register_buffer("mask", torch.ones(0))
        self.register_buffer("current_threshold", torch.tensor(0.0, dtype=torch.float32))
        self.register_buffer("counter", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("increment", torch.tensor(0, dtype=torch.int64))
        self._cell_ref: Optional[weakref.ref] = None

    # ----------------------------------------------------------------- attaching
    def attach(self, cell: nn.Module) -> None:
        """Bind to ``cell`` (called by ``cell.quantizer = self``) and compute the masks."""
        weight = getattr(cell, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"PruneCell: can only be attached to a cell with a weight tensor "
                            f"(Conv, Fc), not {type(cell).__name__}")
        owner = self._cell_ref() if self._cell_ref is not None else None
        if owner is not None and owner is not cell:
            raise ValueError("PruneCell: this PruneCell is already attached to another cell; "
                             "create one PruneCell per cell")
        self._cell_ref = weakref.ref(cell)
        self.mask = torch.ones_like(weight, dtype=torch.float32)
        self.counter.zero_()
        self.increment.zero_()
        self.recompute()

    @property
    def cell(self) -> nn.Module:
        cell = self._cell_ref() if self._cell_ref is not None else None
        if cell is None:
            raise RuntimeError("PruneCell: not attached to a cell; use cell.quantizer = PruneCell(...)")
        return cell

    def _slices(self) -> List[slice]:
        return list(getattr(self.cell, "input_slices", None) or [slice(None)])

    def _initial_threshold(self) -> float:
        if self.prune_filler == "None" or self.prune_mode == "Identity":
            return 0.0
        return self.threshold if self.prune_mode == "Static" else self.start

    def recompute(self) -> None:
        """Reset the current threshold to its initial value and refill the masks from the
        cell's current weights (N2D2's ``initialize()``; Random keeps existing zeros)."""
        self.current_threshold.fill_(float(np.float32(self._initial_threshold())))
        self._refill()

    @torch.no_grad()
    def _refill(self) -> None:
        if self.prune_filler == "None":
            self.mask.fill_(1.0)
            return
        filler = MASK_FILLERS.get(self.prune_filler)
        target = float(self.current_threshold)
        weight = self.cell.weight
        for part in self._slices():
            new = filler(weight[:, part], self.mask[:, part], target, delta=self.delta,
                         generator=self.generator)
            self.mask[:, part].copy_(new)  # converts dtype and device in the same pass

    # ----------------------------------------------------------------- forward
    def quantize(self, weight: torch.Tensor) -> torch.Tensor:
        """weight × mask: the tensor the cell computes with."""
        if self.mask.shape != weight.shape:
            raise RuntimeError(f"PruneCell: mask shape {tuple(self.mask.shape)} does not match "
                               f"the weight shape {tuple(weight.shape)}; re-attach the PruneCell")
        return weight * self.mask

    # ----------------------------------------------------------------- schedule
    def update(self, batch_size: int) -> bool:
        """Count ``batch_size`` stimuli after an optimiser step; returns whether a Gradual step
        fired. The first call's batch size is the increment reused from then on (N2D2)."""
        if self.prune_mode != "Gradual":
            return False
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size <= 0:
            raise ValueError(f"PruneCell.update: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        if int(self.increment) == 0:
            self.increment.fill_(int(batch_size))
        counter, fired = gradual_tick(int(self.counter), int(self.increment), self.period)
        self.counter.fill_(counter)
        if fired and float(self.current_threshold) < float(np.float32(self.threshold)):
            self.current_threshold.fill_(gradual_step(float(self.current_threshold),
                                                      self.gamma, self.threshold))
            self._refill()
        return fired

    @property
    def period(self) -> int:
        """Gradual period in stimuli: ``stepsize`` if > 0, else ``default_period``."""
        return self.stepsize if self.stepsize > 0 else int(self.default_period)

    @property
    def done(self) -> bool:
        """Whether the current threshold has reached the target (always true unless Gradual)."""
        if self.prune_mode != "Gradual" or self.prune_filler == "None":
            return True
        return float(self.current_threshold) >= float(np.float32(self.threshold))

    # ----------------------------------------------------------------- N2D2's getters
    def _part(self, input_idx: int) -> slice:
        parts = self._slices()
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

    def sparsity(self) -> float:
        """Fraction of weights the masks prune."""
        if self.mask.numel() == 0:
            return 0.0
        return float((self.mask == 0).sum()) / self.mask.numel()

    # ----------------------------------------------------------------- files
    def export_masks(self, path: PathLike) -> None:
        """Write N2D2's ``<cell>_masks.syntxt``: for each input, one 0/1 line per output."""
        write_masks(path, [self.mask[:, part] for part in self._slices()])

    @torch.no_grad()
    def import_masks(self, path: PathLike) -> None:
        """Read a masks file; the current threshold becomes the zero fraction of mask 0.

        A file holding every input's masks restores them all; one holding only the first
        input's restores that one, as N2D2 does.
        """
        values = torch.from_numpy(read_masks(path))
        parts = self._slices()
        sizes = [self.mask[:, part].numel() for part in parts]
        if values.numel() == sum(sizes):
            count = len(parts)
        elif values.numel() == sizes[0]:
            count = 1
        else:
            raise ValueError(f"{path}: masks file holds {values.numel()} values, but the cell's "
                             f"weights need {sum(sizes)} (one 0/1 per weight, "
                             f"{self.mask.shape[0]} lines of {sum(sizes) // self.mask.shape[0]})")
        offset = 0
        for part, size in zip(parts[:count], sizes[:count]):
            target = self.mask[:, part]
            self.mask[:, part] = values[offset:offset + size].reshape(target.shape).to(target)
            offset += size
        first = self.mask[:, parts[0]]
        zeros = np.float32((first == 0).sum().item()) / np.float32(first.numel())
        self.current_threshold.fill_(float(zeros))

    # ----------------------------------------------------------------- state
    def get_extra_state(self) -> Dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        if isinstance(state, dict) and "generator" in state:
            self.generator.set_state(state["generator"])

    def __getstate__(self) -> Dict[str, Any]:
        # Copies and pickles drop the link to the cell (the cell's own __setstate__ re-links)
        # and carry the generator as its state.
        state = self.__dict__.copy()
        state["_cell_ref"] = None
        state["generator"] = self.generator.get_state()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        generator_state = state["generator"]
        state = {**state, "generator": torch.Generator()}
        super().__setstate__(state)
        self.generator.set_state(generator_state)

    def _rebind(self, cell: nn.Module) -> None:
        if self._cell_ref is None or self._cell_ref() is not cell:
            self._cell_ref = weakref.ref(cell)

    def extra_repr(self) -> str:
        attached = self._cell_ref is not None and self._cell_ref() is not None
        sparsity = f"{self.sparsity():.4f}" if attached else "n/a (not attached)"
        return (f"prune_mode={self.prune_mode!r}, prune_filler={self.prune_filler!r}, "
                f"threshold={self.threshold:g}, current={self.get_current_threshold():.6g}, "
                f"sparsity={sparsity}")
