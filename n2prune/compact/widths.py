"""Widths that run fast: removed channel groups given back until each layer keeps a multiple
of N channels (``round_to=N``, INI ``QWeight.PruningRoundTo=N``), for the INI channel graph and
the recorded graph of a torch model alike (both have ``atoms`` per layer and ``find``)."""

from __future__ import annotations

from typing import Dict, Set


def round_widths(graph, removed: Set[int], multiple, names=None) -> None:
    """Give back removed (all-zero, so harmless) groups until every layer's kept width is a
    multiple of its ``multiple`` (an int, or ``{layer: int}``, 1 for layers not in it) or its
    full width; repeated since a group spans layers. ``names``: the layers (default: the
    graph's layer nodes)."""
    for _ in range(8):
        changed = False
        for name in (graph.layer_nodes if names is None else names):
            step = multiple if isinstance(multiple, int) else multiple.get(name, 1)
            roots = [graph.find(a) for a in graph.atoms[name]]
            kept = sum(r not in removed for r in roots)
            if kept % step == 0 or kept == len(roots):
                continue
            counts: Dict[int, int] = {}
            for r in roots:
                if r in removed:
                    counts[r] = counts.get(r, 0) + 1
            for root in sorted(counts, key=lambda r: (counts[r], r)):
                removed.discard(root)
                kept += counts[root]
                changed = True
                if kept % step == 0:
                    break
        if not changed:
            return
