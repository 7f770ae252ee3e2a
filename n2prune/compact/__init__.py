"""Structured compaction: channel dependency groups, physically smaller networks, write-back
(INI, N2D2 weights, ONNX) and costs (parameters, MACs, latency).

The package is callable: ``n2prune.compact(net)`` is :func:`n2prune.compact.shrink.compact`.
"""

import sys
import types

from n2prune.compact.groups import (ChannelGroup, channel_graph, channel_groups,
                                    group_channel_scores, lowest_groups, zero_groups)
from n2prune.compact.compaction import compact
from n2prune.compact.shrink import compact as compact_network
from n2prune.compact import costs  # noqa: F401  (n2prune.compact.costs.cost_report works)

__all__ = ["ChannelGroup", "channel_graph", "channel_groups",
           "compact", "compact_network", "group_channel_scores", "lowest_groups", "zero_groups"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return compact(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
