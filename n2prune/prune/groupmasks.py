"""PruneCell's masks by groups, a mixin: which groups are pruned (masks that only grow along a
schedule), the group scores a Global ranking compares, and keep-masks written back.

Needs the PruneCell's ``mask``, ``prune_mode``, ``regrow``, ``prune_filler``, ``params``,
``stats`` / ``criterion_inputs``, ``cell``, ``_pattern`` and ``_slices()``.
"""

from __future__ import annotations

from typing import List, Optional

import torch

from n2prune.prune import masks as criterion_masks
from n2prune.prune.criteria import CRITERIA
from n2prune.prune.options import PRUNE_MODES


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
        return [self.mask[:, part] == 0 for part in self._slices()]

    def dead_groups(self) -> List[torch.Tensor]:
        """Per input block, the bool group tensor of the groups the masks prune entirely."""
        return criterion_masks.dead_groups(self._pattern, [self.mask[:, part] == 0
                                                           for part in self._slices()],
                                           criterion_masks.out_view(self.cell))

    def group_scores(self) -> List[torch.Tensor]:
        """The group scores of each input block (for Global scope ranking)."""
        if self.prune_filler not in CRITERIA:
            raise ValueError(f"PruneCell: prune_filler={self.prune_filler!r} gives no scores")
        criterion = CRITERIA.get(self.prune_filler)
        missing = criterion.missing(self.stats)
        if missing:
            raise ValueError(f"PruneCell: criterion {self.prune_filler!r} needs the statistics "
                             f"{', '.join(missing)}; a Pruner gathers them")
        return criterion_masks.group_scores(criterion, self._pattern, self.cell.weight,
                                            self.criterion_inputs, self._slices(),
                                            self.params["criterion"],
                                            criterion_masks.out_view(self.cell))

    @torch.no_grad()
    def apply_keep(self, keeps: List[torch.Tensor], groups: bool = False) -> None:
        """Set the masks of each input block from bool keep-masks (of groups when ``groups``,
        expanded by the pattern)."""
        weight = self.cell.weight
        for keep, part in zip(keeps, self._slices()):
            if groups:
                keep = criterion_masks.expand_groups(self._pattern, keep, weight[:, part],
                                                     criterion_masks.out_view(self.cell))
            self.mask[:, part].copy_(keep)
