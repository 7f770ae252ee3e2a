"""PruneCell's masks by groups, a mixin: which groups are pruned (masks that only grow along a
schedule), the group scores a Global ranking compares, and keep-masks written back.

Needs the PruneCell's ``mask``, ``prune_mode``, ``regrow``, ``prune_filler``, ``params``,
``stats`` / ``criterion_inputs``, ``cell``, ``pattern_rule`` and ``input_parts()``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from n2prune.prune import masks as criterion_masks
from n2prune.prune.criteria.registry import CRITERIA
from n2prune.prune.options import PRUNE_MODES


def copy_into(target: torch.Tensor, source: torch.Tensor) -> None:
    """``target.copy_(source)``; on the CPU through numpy, one thread: torch's copy of a
    strided view runs on every intra-op thread and is about 5x slower at 2 threads than at
    one (0.17 s against 0.03 s for a 25M-weight Global ranking's masks)."""
    if target.device.type == "cpu" and source.device.type == "cpu" and \
            target.dtype != torch.bfloat16 and source.dtype != torch.bfloat16 and \
            not target.requires_grad and target.shape == source.shape:
        target.numpy()[...] = source.numpy()
    else:
        target.copy_(source)


class GroupMasks:
    """Group-level views of a PruneCell's masks (see the module docstring)."""

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

    def criterion_params(self, criterion: Any) -> Dict[str, Any]:
        """The cell's criterion parameters that ``criterion`` declares."""
        params = self.params["criterion"]
        return {key.arg: params[key.arg] for key in criterion.params if key.arg in params}

    @torch.no_grad()
    def apply_keep(self, keeps: List[torch.Tensor], groups: bool = False) -> None:
        """Set the masks of each input block from bool keep-masks (of groups when ``groups``,
        expanded by the pattern)."""
        weight = self.cell.weight
        for keep, part in zip(keeps, self.input_parts()):
            if groups:
                keep = criterion_masks.expand_groups(self.pattern_rule, keep, weight[:, part],
                                                     criterion_masks.out_view(self.cell))
            copy_into(self.mask[:, part], keep)
