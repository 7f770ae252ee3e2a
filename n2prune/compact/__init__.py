"""Structured compaction: channel dependency groups, physically smaller networks, write-back
(INI, N2D2 weights, ONNX) and costs (parameters, MACs, latency).

The package is callable: ``n2prune.compact(net)`` is :func:`n2prune.compact.shrink.compact`.
"""

import sys
import types

from n2prune.compact.groups import (ChannelGroup, channel_graph, channel_groups,
                                    group_channel_scores, lowest_groups, zero_groups)
from n2prune.compact.shrink import compact as compact_network
from n2prune.compact.torch_shrink import compact_module
from n2prune.compact import costs  # noqa: F401  (n2prune.compact.costs.cost_report works)

__all__ = ["ChannelGroup", "channel_graph", "channel_groups",
           "compact", "compact_network", "group_channel_scores", "lowest_groups", "zero_groups"]


def compact(net, example=None, **kwargs):
    """A physically smaller copy of ``net`` with the same outputs: an INI
    :class:`~n2prune.network.Network` (:func:`.shrink.compact`), or any torch model, attached
    with ``n2prune.attach`` or not, recorded on ``example`` (a tensor, a tuple of arguments or
    a dict of keyword arguments; :func:`.torch_shrink.compact_module`).
    """
    if hasattr(net, "info") and hasattr(net, "cells"):
        return compact_network(net, **kwargs)
    if example is None:
        raise TypeError(f"compact: a {type(net).__name__} is not an INI network; pass an "
                        f"example input to record a forward pass: compact(model, example)")
    return compact_module(net, example, **kwargs)


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return compact(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
