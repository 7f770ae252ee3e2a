"""INI sections -> a torch network: cells built in ``Input=`` order (``build``), ConfigSection
routing of solvers and quantizers (``routing``), which keys a file may hold (``keys``), what
building may allocate (``limits``), targets (``targets``), per-cell summary (``summary``)."""

from n2prune.network.build import Network, build_network, load_network

__all__ = ["Network", "build_network", "load_network"]
