"""Pruning patterns: which weights are pruned together (``QWeight.PruningPattern=``).

A pattern turns per-weight scores into group scores (``groups``, using the criterion's norm)
and a group keep-mask back into a weight keep-mask (``expand``). Members are classes
registered in ``PATTERNS`` under their INI spelling, each with its own parameter table
``params`` (``Key`` with INI name, argument, default and valid range) and an optional
shorthand (``parse``): ``"2:4"`` is ``N:M`` with n=2, m=4; ``"4x1"`` is ``KxL`` with k=4, l=1.

- ``Unstructured`` (default): every weight is its own group.
- ``N:M``: at most N weights kept in every M consecutive weights along the input dimension.
  For a conv weight ``[O, C, kH, kW]`` the groups run along C at fixed (o, kh, kw), i.e. over
  the weight viewed as ``[O, kH, kW, C]`` (NVIDIA ASP's layout for sparse tensor cores); for
  ``[O, I]`` along I. A last group shorter than M (C not a multiple of M) counts its missing
  members as pruned. Each group loses ``max(M-N, ceil(t·M))`` weights (none when t = 0).
- ``KxL``: blocks of K outputs × L inputs over the weight viewed as ``[O, C·kH·kW]``
  (row-major C, kH, kW); edge blocks may be smaller.
- ``Channel``: whole output channels (filters).
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from n2prune.ini.params import Key, Range
from n2prune.ini.values import read_uint
from n2prune.prune.criteria.registry import group_norm
from n2prune.prune.comparison import LAYER, Comparison
from n2prune.prune.scope import pruned_first
from n2prune.registry import Registry, did_you_mean

PATTERNS: Registry = Registry("pruning pattern")
_COUNT = Range(1, math.inf, integer=True)


class Pattern:
    """Base: the Unstructured behaviour; subclasses override ``groups`` and ``expand``."""

    name = "Unstructured"  # a registered subclass gets its registered name
    params: Tuple[Key, ...] = ()
    global_ranking = True  # whether group scores may be ranked across cells (Global scope)
    row_groups = True  # whether group scores have rows of several groups (group="Row")

    def __init__(self, **params: Any):
        self.args = params

    @classmethod
    def parse(cls, text: str) -> Optional[Dict[str, int]]:
        """Parameters encoded in a shorthand spelling (``"2:4"``), or None."""
        return None

    def groups(self, scores: torch.Tensor, norm: str, shape: torch.Size) -> torch.Tensor:
        """Group scores (any shape) from per-weight ``scores`` of a weight of ``shape``."""
        return scores

    def expand(self, keep: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Per-weight bool keep-mask of ``shape`` from a group keep-mask."""
        return keep.reshape(shape)

    def group_size(self, shape: torch.Size) -> int:
        """The most weights one group holds in a weight of ``shape`` (the pattern's rounding)."""
        return 1

    def violations(self, mask: torch.Tensor, target: float) -> Tuple[int, int]:
        """``(groups the pattern forbids, groups)`` of a mask (output channels first) at
        ``target``: here, groups partly pruned (a group is pruned whole)."""
        if type(self).groups is Pattern.groups:
            return 0, mask.numel()  # every weight is its own group
        kept = self.groups((mask != 0).to(torch.float64), "L1", mask.shape)
        size = self.groups(torch.ones(mask.shape, dtype=torch.float64), "L1", mask.shape)
        return int(((kept > 0) & (kept < size)).sum()), kept.numel()

    def dead(self, pruned: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Bool group tensor (shaped as ``groups`` gives): groups whose every member is
        pruned in the per-weight bool ``pruned`` of a weight of ``shape``."""
        return self.groups((~pruned).to(torch.float32), "L1", shape) == 0

    def keep(self, scores: torch.Tensor, target: float, norm: str, shape: torch.Size,
             pruned: Optional[torch.Tensor] = None, compare: Comparison = LAYER
             ) -> torch.Tensor:
        """Per-weight keep-mask pruning ``target`` of this cell's groups (Layer scope), the
        groups competing as ``compare`` says (the whole cell, or each output row); the groups
        all pruned in ``pruned`` (per-weight bool, when given) go first."""
        groups = self.groups(scores, norm, shape)
        if pruned is not None:
            groups = pruned_first([groups], [self.dead(pruned, shape)], target)[0]
        return self.expand(compare.select(groups, target), shape)

    def __str__(self) -> str:
        return self.name


@PATTERNS.register("Unstructured")
class Unstructured(Pattern):
    """Every weight is its own group."""


@PATTERNS.register("Channel")
class Channel(Pattern):
    """Whole output channels: group score = norm over the channel's weights."""

    row_groups = False  # a row is one group

    def groups(self, scores, norm, shape):
        if scores.dim() == 1 and scores.numel() == shape[0]:
            return scores  # a channel-level criterion scored the channels itself
        return group_norm(scores.reshape(shape[0], -1), norm)

    def expand(self, keep, shape):
        return keep.reshape(-1, *([1] * (len(shape) - 1))).expand(shape)

    def group_size(self, shape):
        return int(np.prod(shape[1:]))


@PATTERNS.register("KxL")
class Block(Pattern):
    """Blocks of ``k`` outputs × ``l`` inputs of the weight viewed as [O, C·kH·kW]."""

    params = (Key("PruningBlockK", "k", read_uint, 4, "block height (outputs)", _COUNT),
              Key("PruningBlockL", "l", read_uint, 1, "block width (inputs)", _COUNT))

    @classmethod
    def parse(cls, text):
        match = re.fullmatch(r"(\d+)x(\d+)", text)
        return {"k": int(match.group(1)), "l": int(match.group(2))} if match else None

    def groups(self, scores, norm, shape):
        k, l = self.args["k"], self.args["l"]
        rows, cols = shape[0], int(np.prod(shape[1:]))
        flat = scores.reshape(rows, cols)
        padded = flat.new_zeros(-(-rows // k) * k, -(-cols // l) * l)
        padded[:rows, :cols] = flat
        blocks = padded.reshape(padded.shape[0] // k, k, padded.shape[1] // l, l)
        return group_norm(blocks.permute(0, 2, 1, 3).reshape(*blocks.shape[::2], k * l), norm)

    def expand(self, keep, shape):
        k, l = self.args["k"], self.args["l"]
        rows, cols = shape[0], int(np.prod(shape[1:]))
        full = keep.repeat_interleave(k, 0).repeat_interleave(l, 1)
        return full[:rows, :cols].reshape(shape)

    def group_size(self, shape):
        return self.args["k"] * self.args["l"]

    def __str__(self):
        return f"{self.args['k']}x{self.args['l']}"


@PATTERNS.register("N:M")
class NofM(Pattern):
    """At most ``n`` kept in every ``m`` consecutive weights along the input channels."""

    global_ranking = False
    row_groups = False  # already prunes within each group of M of a row
    params = (Key("PruningN", "n", read_uint, 2, "weights kept per group", _COUNT),
              Key("PruningM", "m", read_uint, 4, "group length along the inputs", _COUNT))

    def __init__(self, **params):
        super().__init__(**params)
        if params["n"] > params["m"]:
            raise ValueError(f"pattern N:M: n={params['n']} must be at most m={params['m']}")

    @classmethod
    def parse(cls, text):
        match = re.fullmatch(r"(\d+):(\d+)", text)
        return {"n": int(match.group(1)), "m": int(match.group(2))} if match else None

    def pruned_per_group(self, target: float) -> int:
        n, m = self.args["n"], self.args["m"]
        if not target > 0:
            return 0
        return min(m, max(m - n, int(math.ceil(float(np.float32(target) * np.float32(m))))))

    def keep(self, scores, target, norm, shape, pruned=None, compare=LAYER):
        m = self.args["m"]
        prune = self.pruned_per_group(target)
        width = shape[1] if len(shape) > 1 else scores.numel()
        if pruned is not None and \
                int(pruned.sum()) <= prune * (scores.numel() // width) * -(-width // m):
            scores = scores.detach().to(torch.float64).masked_fill(pruned.reshape(scores.shape),
                                                                   -math.inf)
        # [O, C, *k] -> [O, *k, C]: groups of m consecutive input channels
        moved = scores.detach().to(torch.float64).movedim(1, -1) if scores.dim() > 1 \
            else scores.detach().to(torch.float64).reshape(1, -1)
        lines = moved.reshape(-1, moved.shape[-1])
        width = lines.shape[1]
        padded = lines.new_full((lines.shape[0], -(-width // m) * m), -math.inf)
        padded[:, :width] = lines
        groups = padded.reshape(-1, m)
        keep = torch.ones(groups.shape, dtype=torch.bool, device=groups.device)
        if prune:
            if torch.isnan(groups).any():
                raise ValueError("pruning scores contain NaN (check the weights and statistics)")
            order = torch.sort(groups, dim=1, stable=True).indices  # ties: lower index first
            keep.scatter_(1, order[:, :prune], False)
        keep = keep.reshape(padded.shape)[:, :width].reshape(moved.shape)
        return keep.movedim(-1, 1).reshape(shape) if scores.dim() > 1 else keep.reshape(shape)

    def group_size(self, shape):
        return self.args["m"]

    def violations(self, mask, target):
        """Groups of M keeping more than M minus the count ``target`` prunes."""
        m = self.args["m"]
        moved = (mask != 0).to(torch.int64)
        moved = moved.movedim(1, -1) if moved.dim() > 1 else moved.reshape(1, -1)
        lines = moved.reshape(-1, moved.shape[-1])
        padded = lines.new_zeros(lines.shape[0], -(-lines.shape[1] // m) * m)
        padded[:, :lines.shape[1]] = lines
        kept = padded.reshape(-1, m).sum(dim=1)
        return int((kept > m - self.pruned_per_group(target)).sum()), kept.numel()

    def groups(self, scores, norm, shape):
        raise ValueError("pattern N:M prunes within each group of M; it cannot be ranked "
                         "across cells (use scope='Layer')")

    def __str__(self):
        return f"{self.args['n']}:{self.args['m']}"


def resolve_pattern(text: str) -> Tuple[str, Dict[str, int]]:
    """(registry name, parameters) of a pattern spelling: a name, or a member's shorthand."""
    if text in PATTERNS:
        return text, {}
    for name in PATTERNS:
        params = PATTERNS.get(name).parse(text)
        if params is not None:
            return name, params
    raise ValueError(f"pattern={text!r}: " + did_you_mean(str(text), PATTERNS.names(), "value")
                     + "; N:M and KxL are also spelt like '2:4' and '4x1'")
