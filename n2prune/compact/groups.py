"""Channel dependency groups: the channels of a network that must be removed together.

Every output channel of every cell is an *atom*; cells that pass channels through (BatchNorm,
Pool with a one-to-one map, Padding, Dropout, Activation, ElemWise, the channels of a
depthwise convolution) tie their output atoms to their input atoms, and a union-find merges
tied atoms into groups. ``Input=a,b`` concatenates the parents' atoms; an ``Fc`` reads each
input channel as a block of ``H·W`` columns. Channels no rule can remove (the stimuli,
the network outputs, the inputs and outputs of cells without a rule) are *fixed*.

The rules come with each cell kind (``CellKind.channel_rule`` in ``n2prune.cells.kinds``,
keyed by the INI ``Type=``): a cell type without a rule fixes its inputs and its outputs,
which is always safe.

>>> from n2prune import load_network                       # doctest: +SKIP
>>> graph = channel_graph(load_network("networks/resnet-mini.ini"))   # doctest: +SKIP
>>> [g.size for g in graph.groups() if not g.fixed][:3]     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from n2prune.cells.channels import fix_all
from n2prune.cells.kinds import kind_of

Member = Tuple[str, int]  # (cell name, output channel)


@dataclass
class ChannelGroup:
    """Channels removed together: ``members`` (cell, channel) in build order; ``producers``
    the members whose values come from weights (Conv/Fc rows); ``fixed`` when not removable."""

    index: int
    members: List[Member] = field(default_factory=list)
    producers: List[Member] = field(default_factory=list)
    fixed: bool = False

    @property
    def size(self) -> int:
        return len(self.members)


class ChannelGraph:
    """Atoms (one per output channel of every cell and of the stimuli ``env``) and their
    union-find; built by :func:`channel_graph`."""

    def __init__(self) -> None:
        self.atoms: Dict[str, List[int]] = {}
        self.inputs: Dict[str, List[int]] = {}     # each cell's concatenated input atoms
        self.readers: Dict[str, List[str]] = {}
        self._parent: List[int] = []
        self._fixed: List[bool] = []
        self._producer: Dict[int, Member] = {}
        self._member: List[Member] = []

    # -- building ---------------------------------------------------------------------
    def new(self, name: str, count: int, produced: bool = False) -> List[int]:
        """``count`` fresh atoms for the outputs of ``name``; ``produced``: from weights."""
        first = len(self._parent)
        for channel in range(count):
            self._parent.append(first + channel)
            self._fixed.append(False)
            self._member.append((name, channel))
            if produced:
                self._producer[first + channel] = (name, channel)
        return list(range(first, first + count))

    def follow(self, name: str, in_atoms: Sequence[int]) -> List[int]:
        """Outputs of ``name`` tied one-to-one to ``in_atoms``."""
        out = self.new(name, len(in_atoms))
        for a, b in zip(out, in_atoms):
            self.union(a, b)
        return out

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)
            self._fixed[min(ra, rb)] = self._fixed[ra] or self._fixed[rb]

    def find(self, a: int) -> int:
        while self._parent[a] != a:
            self._parent[a] = self._parent[self._parent[a]]
            a = self._parent[a]
        return a

    def fix(self, atoms: Sequence[int]) -> None:
        for atom in atoms:
            self._fixed[self.find(atom)] = True

    # -- reading ----------------------------------------------------------------------
    def is_fixed(self, atom: int) -> bool:
        return self._fixed[self.find(atom)]

    def groups(self) -> List[ChannelGroup]:
        """Every group, in the order of its first atom; fixed ones included."""
        by_root: Dict[int, ChannelGroup] = {}
        for atom, member in enumerate(self._member):
            root = self.find(atom)
            if root not in by_root:
                by_root[root] = ChannelGroup(len(by_root), fixed=self._fixed[root])
            group = by_root[root]
            group.members.append(member)
            if atom in self._producer:
                group.producers.append(member)
        return list(by_root.values())

    def group_of(self) -> Dict[Member, int]:
        """(cell, channel) -> index of its group in :meth:`groups`."""
        return {m: g.index for g in self.groups() for m in g.members}

    def root_of(self, name: str) -> List[int]:
        return [self.find(a) for a in self.atoms[name]]


# ----------------------------------------------------------------------------- building
def channel_graph(net) -> ChannelGraph:
    """The atoms and groups of an INI :class:`~n2prune.network.Network`."""
    graph = ChannelGraph()
    graph.inputs_of = {name: list(info.inputs) for name, info in net.info.items()}
    graph.atoms["env"] = graph.new("env", net.input_shape[0])
    graph.fix(graph.atoms["env"])
    for name, cell in net.cells.items():
        info = net.info[name]
        in_atoms = [a for parent in info.inputs for a in graph.atoms[parent]]
        graph.inputs[name] = in_atoms
        for parent in info.inputs:
            graph.readers.setdefault(parent, []).append(name)
        rule = kind_of(info.type).channel_rule or fix_all
        out = rule(graph, name, cell, in_atoms)
        if len(out) != info.output_shape[0]:
            raise ValueError(f"[{name}] channel rule for {info.type} gave {len(out)} outputs, "
                             f"the cell has {info.output_shape[0]}")
        graph.atoms[name] = out
    names = list(net.cells)
    outputs = {names[-1]} | {t.cell for t in getattr(net, "targets", ()) if hasattr(t, "cell")}
    for name in names:
        if name in outputs or name not in graph.readers:
            graph.fix(graph.atoms[name])
    return graph


def channel_groups(net) -> List[ChannelGroup]:
    """The dependency groups of ``net`` (fixed ones included)."""
    return channel_graph(net).groups()


# ----------------------------------------------------------------------------- scores
def row_norms(cell: nn.Module, norm: str = "L1") -> torch.Tensor:
    """Per-output-channel norm of a cell's effective (masked) weight."""
    weight = cell.effective_weight().detach()
    flat = weight.reshape(weight.shape[0], -1)
    return flat.abs().sum(1) if norm == "L1" else flat.pow(2).sum(1).sqrt()


def group_channel_scores(net, channel_scores: Optional[Callable[[str, nn.Module],
                                                                torch.Tensor]] = None,
                         reduce: str = "sum") -> Dict[int, float]:
    """One score per removable group: the producers' channel scores, summed (or ``max``/
    ``mean``) over the group. ``channel_scores(name, cell)`` gives a cell's per-output scores
    (default: L1 norm of each masked weight row). Larger = keep."""
    score = channel_scores or (lambda name, cell: row_norms(cell))
    cache: Dict[str, torch.Tensor] = {}
    result: Dict[int, float] = {}
    for group in channel_groups(net):
        if group.fixed or not group.producers:
            continue
        values = []
        for name, channel in group.producers:
            if name not in cache:
                cache[name] = score(name, net.cells[name]).detach().float().reshape(-1)
            values.append(cache[name][channel])
        stacked = torch.stack(values)
        result[group.index] = float({"sum": stacked.sum, "max": stacked.max,
                                     "mean": stacked.mean}[reduce]())
    return result


# ----------------------------------------------------------------------------- selection
@torch.no_grad()
def zero_groups(net, groups: Sequence[ChannelGroup]) -> None:
    """Prune ``groups`` as a channel pattern would: zero their producers' mask rows (the
    weight rows of a cell without a PruneCell)."""
    for group in groups:
        if group.fixed:
            raise ValueError(f"group {group.index} ({group.members[0][0]} channel "
                             f"{group.members[0][1]}, ...) is fixed and cannot be pruned")
        for name, channel in group.producers:
            cell = net.cells[name]
            quantizer = getattr(cell, "quantizer", None)
            if quantizer is not None and quantizer.mask.numel():
                quantizer.mask[channel] = 0
            else:
                cell.weight[channel] = 0


def lowest_groups(net, fraction: float, scores: Optional[Dict[int, float]] = None
                  ) -> List[ChannelGroup]:
    """The removable groups of lowest score (default :func:`group_channel_scores`) holding
    ``fraction`` of the removable channels of each cell, at most (so no cell is emptied)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    scores = group_channel_scores(net) if scores is None else scores
    groups = {g.index: g for g in channel_groups(net)}
    budget: Dict[str, int] = {}
    for group in groups.values():
        if group.index in scores:
            for name, _ in group.members:
                budget[name] = budget.get(name, 0) + 1
    limit = {name: int(count * fraction) for name, count in budget.items()}
    chosen: List[ChannelGroup] = []
    used: Dict[str, int] = {}
    for index in sorted(scores, key=lambda i: (scores[i], i)):
        group = groups[index]
        counts: Dict[str, int] = {}
        for name, _ in group.members:
            counts[name] = counts.get(name, 0) + 1
        if all(used.get(n, 0) + c <= limit[n] for n, c in counts.items()):
            chosen.append(group)
            for n, c in counts.items():
                used[n] = used.get(n, 0) + c
    return chosen
