"""Pruning: ``PruneCell`` (the one object holding a layer's pruning state), mask fillers
(``MASK_FILLERS``, keyed by ``QWeight.PruningFiller=``), schedules (pure functions), ``attach`` /
``detach`` (any torch model) and the ``Pruner`` (hooks for training loops).

Importing this package installs the hook that makes ``layer.quantizer = PruneCell(...)`` work on
plain torch layers (``n2prune.prune.attach``).
"""

from n2prune.prune.fillers import MASK_FILLERS
from n2prune.prune.prunecell import PruneCell
from n2prune.prune.attach import attach, detach  # noqa: E402  (after PruneCell: uses it)

__all__ = ["MASK_FILLERS", "PruneCell", "attach", "detach"]
