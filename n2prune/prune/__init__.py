"""Pruning: ``PruneCell`` (the one object holding a layer's pruning state), mask fillers
(``MASK_FILLERS``, keyed by ``QWeight.PruningFiller=``) and schedules (pure functions)."""

from n2prune.prune.fillers import MASK_FILLERS
from n2prune.prune.prunecell import PruneCell

__all__ = ["MASK_FILLERS", "PruneCell"]
