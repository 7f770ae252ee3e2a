"""Structured compaction: channel dependency groups, physically smaller networks, write-back
(INI, N2D2 weights, ONNX) and costs (parameters, MACs, latency).

The package is callable: ``n2prune.compact(net)`` is :func:`n2prune.compact.shrink.compact`.
"""

import sys
import types

from n2prune.compact.groups import (CHANNEL_RULES, ChannelGroup, channel_graph, channel_groups,
                                    group_channel_scores, lowest_groups, zero_groups)
from n2prune.compact.shrink import SHRINKERS, compact

__all__ = ["CHANNEL_RULES", "ChannelGroup", "SHRINKERS", "channel_graph", "channel_groups",
           "compact", "group_channel_scores", "lowest_groups", "zero_groups"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return compact(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
