"""n2prune: N2D2's pruning quantizer and INI networks in PyTorch."""

__version__ = "0.1.0"

from n2prune import cells, compact, quantizer  # noqa: E402
from n2prune.errors import ConfigError  # noqa: E402
from n2prune.network import Network, load_network  # noqa: E402
from n2prune.prune import MASK_FILLERS, PruneCell, Pruner, attach, detach  # noqa: E402

__all__ = ["ConfigError", "MASK_FILLERS", "Network", "PruneCell", "Pruner", "attach", "cells",
           "compact", "detach", "load_network",
           "quantizer", "__version__"]
