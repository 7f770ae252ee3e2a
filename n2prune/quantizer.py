"""Weight quantizers by their INI name (``QWeight=Prune``), as N2D2's ``n2d2.quantizer``.

``n2prune.quantizer.PruneCell`` is the spelling of N2D2's Python API
(``n2d2.quantizer.PruneCell``). ``QUANTIZERS`` maps each ``QWeight=`` value to a class taking
keyword arguments, whose ``ini_keys()`` gives its ``QWeight.*`` table (read when a network is
built, so a quantizer or filler registered later is accepted); ``N2D2_ONLY`` names N2D2's
quantizers n2prune does not implement, for a clearer error.
"""

from n2prune.prune.prunecell import PruneCell
from n2prune.registry import Registry

QUANTIZERS: Registry = Registry("weight quantizer")
QUANTIZERS.register("Prune")(PruneCell)
N2D2_ONLY = ("SAT", "LSQ")

__all__ = ["N2D2_ONLY", "PruneCell", "QUANTIZERS"]
