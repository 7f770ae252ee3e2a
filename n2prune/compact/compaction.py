"""``n2prune.compact(net)``: compaction of an INI network or of any torch model, one entry."""

from __future__ import annotations

from n2prune.compact.shrink import compact as compact_network
from n2prune.compact.torch_shrink import compact_module


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
