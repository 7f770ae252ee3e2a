"""INI sections -> a torch network: cells built in ``Input=`` order (``build``), ConfigSection
routing of solvers and quantizers (``routing``), targets (``targets``), per-cell summary
(``summary``)."""

from n2prune.network.build import Network, build_network, load_network

__all__ = ["Network", "build_network", "load_network"]
