"""Cells (N2D2 layers) as torch modules; ``CELLS`` maps each INI ``Type=`` to its builder."""

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.conv import Conv
from n2prune.cells.fc import Fc
from n2prune.cells.sequence import Sequence
from n2prune.cells.weighted import WeightCell
from n2prune.cells import (activation, batchnorm, deconv, dropout, elemwise,  # noqa: F401
                           lrn, normalize, padding, pool, reshape, resize, scaling, softmax,
                           target_bias, threshold)  # imported to register their INI builders
from n2prune.cells.kinds import CELL_KINDS, CellKind

__all__ = ["CELLS", "CELL_KINDS", "BuildContext", "CellKind", "Conv", "Fc", "Sequence", "WeightCell"]
