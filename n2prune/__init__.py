"""n2prune: N2D2's pruning quantizer and INI networks in PyTorch."""

__version__ = "0.1.0"

from n2prune import cells, quantizer  # noqa: E402
from n2prune.errors import ConfigError  # noqa: E402
from n2prune.quantizer import PruneCell  # noqa: E402

__all__ = ["ConfigError", "PruneCell", "cells", "quantizer", "__version__"]
