"""Pruning criteria: the registry (``CRITERIA``, ``register_criterion``, :mod:`.registry`) and
its members, one module per family of statistics they read: :mod:`.weight` (the weights
alone), :mod:`.gradient` (gradients gathered while learning), :mod:`.activation` and
:mod:`.channel` (activation statistics), :mod:`.sparsegpt` (layer-wise reconstruction) and
:mod:`.combined` (products and sums of other criteria). Importing the package registers them.
"""

from n2prune.prune.criteria.registry import CRITERIA, Criterion, register_criterion
from n2prune.prune.criteria import (activation, channel, gradient,  # noqa: F401 (they register)
                                    sparsegpt, weight)

__all__ = ["CRITERIA", "Criterion", "register_criterion"]
