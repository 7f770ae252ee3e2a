"""N2D2's solvers as torch optimizers (``optimizers``: ``SOLVERS``, keyed by ``Solvers.Type=``)
and their learning-rate policies (``lr_policies``: ``LR_POLICIES``)."""

from n2prune.solvers.lr_policies import LR_POLICIES
from n2prune.solvers.optimizers import SOLVERS

__all__ = ["LR_POLICIES", "SOLVERS"]
