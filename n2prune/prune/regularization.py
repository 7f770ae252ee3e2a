"""Sparsity regularisation: L1 and group-lasso penalties the Pruner adds to the loss.

A penalty is a pure, differentiable function of a layer's effective weight (weight × mask:
pruned weights are left alone) and its pattern's groups:

- ``L1``: Σ|w|;
- ``GroupLasso``: Σ_g ‖w_g‖₂ over the groups of the layer's pruning pattern: output channels
  (``Channel``), K×L blocks (``KxL``), runs of M consecutive inputs (``N:M``), single weights
  (``Unstructured``, where it equals L1). Groups pushed to zero are then cut at little cost.

The strength follows a schedule over the learning position (stimuli): 0 before
``start``, a linear ramp up to ``strength`` at ``end``, then ``strength`` (``end <= start``: a
step at ``start``; both 0: constant).

>>> import torch
>>> group_lasso(torch.tensor([[3.0, 4.0], [0.0, 1.0]]), "Channel")
tensor(6.)
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch

from n2prune.ini.params import Choice, Key, Range
from n2prune.ini.values import read_enum, read_float, read_uint
from n2prune.prune.masks import out_view
from n2prune.registry import Registry, did_you_mean

REGULARIZERS: Registry = Registry("regularisation")


def _kinds() -> list:
    return ["None"] + REGULARIZERS.names()


# INI key (after "QWeight.") <-> PruneCell argument <-> default.
REGULARIZATION_KEYS = (
    Key("Regularization", "regularization", read_enum(_kinds), "None",
        "sparsity penalty added to the loss: None, L1 or GroupLasso", Choice(_kinds)),
    Key("RegularizationStrength", "regularization_strength", read_float, 1e-4,
        "penalty weight", Range(0.0, math.inf)),
    Key("RegularizationStart", "regularization_start", read_uint, 0,
        "position (stimuli) where the strength starts to ramp up",
        Range(0, math.inf, integer=True)),
    Key("RegularizationEnd", "regularization_end", read_uint, 0,
        "position (stimuli) where the ramp reaches the full strength",
        Range(0, math.inf, integer=True)),
)


def _rows_of_inputs(weight: torch.Tensor, m: int) -> torch.Tensor:
    """Groups of ``m`` consecutive inputs (zero-padded), as N:M reads them: [groups, m]."""
    moved = weight.movedim(1, -1) if weight.dim() > 1 else weight.reshape(1, -1)
    lines = moved.reshape(-1, moved.shape[-1])
    pad = (-lines.shape[1]) % m
    if pad:
        lines = torch.nn.functional.pad(lines, (0, pad))
    return lines.reshape(-1, m)


def _blocks(weight: torch.Tensor, k: int, l: int) -> torch.Tensor:
    """K×L blocks of the weight viewed as [O, C·kH·kW] (zero-padded): [blocks, k·l]."""
    flat = weight.reshape(weight.shape[0], -1)
    flat = torch.nn.functional.pad(flat, (0, (-flat.shape[1]) % l, 0, (-flat.shape[0]) % k))
    blocks = flat.reshape(flat.shape[0] // k, k, flat.shape[1] // l, l)
    return blocks.permute(0, 2, 1, 3).reshape(-1, k * l)


def pattern_groups(weight: torch.Tensor, pattern: str = "Unstructured",
                   args: Optional[Dict[str, Any]] = None) -> torch.Tensor:
    """The weight as [groups, members] for the pattern ``pattern`` (its parameters in
    ``args``: n, m for N:M; k, l for KxL)."""
    args = args or {}
    if pattern == "Channel":
        return weight.reshape(weight.shape[0], -1)
    if pattern == "KxL":
        return _blocks(weight, int(args.get("k", 4)), int(args.get("l", 1)))
    if pattern == "N:M":
        return _rows_of_inputs(weight, int(args.get("m", 4)))
    if pattern == "Unstructured":
        return weight.reshape(-1, 1)
    raise ValueError(f"group lasso: unknown pattern {pattern!r} (known: Unstructured, N:M, "
                     f"KxL, Channel)")


@REGULARIZERS.register("L1")
def l1(weight: torch.Tensor, pattern: str = "Unstructured",
       args: Optional[Dict[str, Any]] = None) -> torch.Tensor:
    """Σ|w| (the pattern does not matter)."""
    return weight.abs().sum()


@REGULARIZERS.register("GroupLasso")
def group_lasso(weight: torch.Tensor, pattern: str = "Unstructured",
                args: Optional[Dict[str, Any]] = None) -> torch.Tensor:
    """Σ_g ‖w_g‖₂ over the pattern's groups. The gradient of ‖·‖₂ at 0 is taken as 0
    (a group already at zero stays there without NaN)."""
    groups = pattern_groups(weight, pattern, args)
    sq = groups.square().sum(dim=1)
    safe = torch.where(sq > 0, sq, torch.ones_like(sq))
    return torch.where(sq > 0, safe.sqrt(), torch.zeros_like(sq)).sum()


def strength_at(strength: float, position: float, start: int = 0, end: int = 0) -> float:
    """The scheduled strength at ``position`` stimuli."""
    if position < start:
        return 0.0
    if end <= start or position >= end:
        return float(strength)
    return float(strength) * (position - start) / (end - start)


def check_regularization(kind: str, strength: float, start: int, end: int) -> None:
    """ValueError naming the bad argument and what is valid."""
    if kind != "None" and kind not in REGULARIZERS:
        raise ValueError("regularization=" + repr(kind) + ": " + did_you_mean(
            str(kind), ["None"] + REGULARIZERS.names(), "value"))
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
            or math.isnan(strength) or strength < 0:
        raise ValueError(f"regularization_strength={strength!r} is out of range; allowed: "
                         f"[0, inf)")
    for name, value in (("regularization_start", start), ("regularization_end", end)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} must be an integer >= 0 (stimuli)")


def penalty(weight: torch.Tensor, kind: str, strength: float, position: float = 0,
            start: int = 0, end: int = 0, pattern: str = "Unstructured",
            args: Optional[Dict[str, Any]] = None) -> torch.Tensor:
    """strength_at(position) × the ``kind`` penalty of ``weight`` (0 for ``None``)."""
    scale = strength_at(strength, position, start, end)
    if kind == "None" or scale == 0.0:
        return weight.new_zeros(())
    return scale * REGULARIZERS.get(kind)(weight, pattern, args)


def cell_penalty(cell: Any, position: float) -> Optional[torch.Tensor]:
    """The penalty a PruneCell asks for (its ``regularization*`` arguments) on its effective
    weight, grouped by its pattern over the weight seen output channels first (a
    ConvTranspose's [out, in/groups, ...] view, as its masks are); None when it asks for none."""
    kind = getattr(cell, "regularization", "None")
    if kind == "None":
        return None
    pattern = getattr(cell, "pattern_rule", None)
    name = getattr(pattern, "name", "Unstructured")
    layer = cell.cell
    return penalty(out_view(layer).first(layer.weight * cell.mask), kind,
                   cell.regularization_strength, position,
                   cell.regularization_start, cell.regularization_end, name,
                   getattr(pattern, "args", None))
