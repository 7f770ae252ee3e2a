"""n2prune: N2D2's pruning quantizer and INI networks in PyTorch.

The public API: what a user calls (``PruneCell``, ``attach``/``detach``, ``Pruner``,
``load_network``, ``Network``, ``ConfigError``) and the registries a user extends, each keyed by
its INI spelling (``@SOLVERS.register("MySolver")``; a member registered after import is
accepted from Python and INI alike):

=======================  ===========================================  ===============================
registry                 members                                      INI key
=======================  ===========================================  ===============================
``CELLS``                cell builders                                ``Type=``
``ACTIVATIONS``          activation functions                         ``ActivationFunction=``
``WEIGHT_INITIALIZERS``  weight and bias initialisers (N2D2 fillers)  ``WeightsFiller=``
``QUANTIZERS``           weight quantizers                            ``QWeight=``
``MASK_FILLERS``         pruning mask fillers                         ``QWeight.PruningFiller=``
``CRITERIA``             pruning criteria (``register_criterion``)    ``QWeight.PruningFiller=``
``PATTERNS``             pruning patterns                             ``QWeight.PruningPattern=``
``SCHEDULES``            pruning schedules                            ``QWeight.PruningSchedule=``
``SOLVERS``              solvers (torch optimizers)                   ``Solvers=``
``LR_POLICIES``          learning-rate policies                       ``LearningRatePolicy=``
``DATABASES``            databases                                    ``[database] Type=``
``TRANSFORMATIONS``      stimuli transformations                      ``[sp.Transformation-N] Type=``
=======================  ===========================================  ===============================
"""

__version__ = "0.1.0"

from n2prune import cells, compact, quantizer  # noqa: E402
from n2prune.cells import CELLS  # noqa: E402
from n2prune.cells.activation_functions import ACTIVATIONS  # noqa: E402
from n2prune.cells.initializers import WEIGHT_INITIALIZERS  # noqa: E402
from n2prune.data import DATABASES, TRANSFORMATIONS  # noqa: E402
from n2prune.errors import ConfigError  # noqa: E402
from n2prune.export import export_onnx  # noqa: E402
from n2prune.network import Network, load_network  # noqa: E402
from n2prune.parameters import parameter  # noqa: E402
from n2prune.prune import (CRITERIA, MASK_FILLERS, PATTERNS, SCHEDULES, PruneCell,  # noqa: E402
                           Pruner, attach, detach, register_criterion)
from n2prune.quantizer import QUANTIZERS  # noqa: E402
from n2prune.registry import Registry  # noqa: E402
from n2prune.solvers import LR_POLICIES, SOLVERS  # noqa: E402
from n2prune import sparse  # noqa: E402
from n2prune.sparse import densify, sparsify  # noqa: E402
from n2prune import sensitivity  # noqa: E402  (callable: n2prune.sensitivity(model, evaluate))
from n2prune import strategies  # noqa: E402  (documented as n2prune.strategies)
import n2prune.compact.costs  # noqa: E402,F401  (documented as n2prune.compact.costs)

__all__ = [
    # what a user calls
    "ConfigError", "Network", "PruneCell", "Pruner", "attach", "detach", "export_onnx",
    "load_network",
    # the registries a user extends, and the class they are made of
    "ACTIVATIONS", "CELLS", "CRITERIA", "DATABASES", "LR_POLICIES", "MASK_FILLERS", "PATTERNS",
    "QUANTIZERS", "Registry", "SCHEDULES", "SOLVERS", "TRANSFORMATIONS", "WEIGHT_INITIALIZERS",
    "parameter", "register_criterion",
    # sparse inference (n2prune.sparse)
    "densify", "sparsify", "sparse",
    # sub-packages
    "cells", "compact", "quantizer", "sensitivity", "strategies", "__version__",
]
