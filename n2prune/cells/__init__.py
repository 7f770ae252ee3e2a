"""Cells (N2D2 layers) as torch modules; ``CELLS`` maps each INI ``Type=`` to its builder."""

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.conv import Conv
from n2prune.cells.fc import Fc
from n2prune.cells.sequence import Sequence
from n2prune.cells.weighted import WeightCell

__all__ = ["CELLS", "BuildContext", "Conv", "Fc", "Sequence", "WeightCell"]
