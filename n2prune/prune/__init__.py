"""Pruning: ``PruneCell`` (the one object holding a layer's pruning state) and the registries
it reads by name at call time: mask fillers (``MASK_FILLERS``) and criteria (``CRITERIA``,
``register_criterion``) for ``QWeight.PruningFiller=``, patterns (``PATTERNS``), scopes
(``SCOPES``: ``prune_global``) and schedules (``SCHEDULES``); ``attach`` / ``detach`` (any torch
model) and the ``Pruner`` (hooks for training loops).

Importing this package installs the hook that makes ``layer.quantizer = PruneCell(...)`` work on
plain torch layers (``n2prune.prune.attach``).
"""

from n2prune.prune.criteria.registry import CRITERIA, register_criterion
from n2prune.prune.fillers import MASK_FILLERS
from n2prune.prune.patterns import PATTERNS
from n2prune.prune.prunecell import PruneCell
from n2prune.prune.schedules import SCHEDULES
from n2prune.prune.ranking import SCOPES, prune_global
from n2prune.prune.scope import global_keep
from n2prune.prune.attach import attach, detach  # noqa: E402  (after PruneCell: uses it)
from n2prune.prune.pruner import Pruner  # noqa: E402
from n2prune.prune import coupled  # noqa: E402,F401  (registers the Coupled scope)

__all__ = ["CRITERIA", "MASK_FILLERS", "PATTERNS", "PruneCell", "SCHEDULES", "SCOPES", "Pruner",
           "attach", "detach", "global_keep", "prune_global", "register_criterion"]
