"""Weight quantizers by their INI name (``QWeight=Prune``), as N2D2's ``n2d2.quantizer``.

``n2prune.quantizer.PruneCell`` is the spelling of N2D2's Python API
(``n2d2.quantizer.PruneCell``); ``QUANTIZERS`` maps each ``QWeight=`` value to its class.
"""

from n2prune.prune.prunecell import PruneCell
from n2prune.registry import Registry

QUANTIZERS: Registry = Registry("weight quantizer")
QUANTIZERS.register("Prune")(PruneCell)

__all__ = ["PruneCell", "QUANTIZERS"]
