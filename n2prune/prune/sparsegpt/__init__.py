"""SparseGPT (Frantar & Alistarh 2023): one-shot pruning with weight reconstruction.

:mod:`.obs` solves one layer (``obs_prune``: pure maths on a weight matrix and its Hessian),
:mod:`.hessian` gathers a layer's ``H = 2/n Σ x xᵀ`` (``HessianAccumulator``, ``LAYER_VIEWS``),
:mod:`.model` runs every layer of a model in forward order (``reconstruct``). The
``SparseGPT`` criterion that drives them from a PruneCell is
:mod:`n2prune.prune.criteria.sparsegpt`.
"""

from n2prune.prune.sparsegpt.hessian import HessianAccumulator, layer_view
from n2prune.prune.sparsegpt.obs import obs_prune
from n2prune.prune.sparsegpt.model import SparseGPTLayer, reconstruct

__all__ = ["HessianAccumulator", "SparseGPTLayer", "layer_view", "obs_prune", "reconstruct"]
