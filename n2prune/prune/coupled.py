"""The ``Coupled`` scope: cells whose output channels meet in a residual sum (or any other
channel tie) prune the **same** channels, chosen from their summed channel scores.

A Channel-pattern mask on one cell of a residual stream (the stem, each block's second
convolution, a stage's shortcut) cannot be compacted: the channel it zeroes is still fed by the
other cells of the sum. :func:`n2prune.compact.trace.trace_channel_graph` records which output
channels are tied (through BatchNorm, activations, adds, ...); a *unit* is the set of channel
groups whose producers are the same cells. The Coupled scope ranks each unit on its own: a
group's score is the sum of its producers' channel scores (the cells' criterion: L1Norm,
L2Norm, FPGM, any channel-level one), the ``ceil(t·groups)`` lowest groups are pruned at the
cells' common current threshold ``t``, and every producer row of a pruned group is zeroed, so
``n2prune.compact`` removes the whole group.

>>> cells = n2prune.attach(model, include=["stem", "blocks.*.conv2"], scope="Coupled",
...                        pattern="Channel", prune_filler="L1Norm", threshold=0.5,
...                        example=x)                                 # doctest: +SKIP
>>> pruner = n2prune.Pruner(cells, epoch_size=len(train_set), epochs=10)   # doctest: +SKIP

``attach`` traces ``model`` on ``example`` once (``Scope.bind``); a Pruner ranks the units after
every schedule step, as it ranks Global cells. Errors name the layer and channel: a channel
whose group is fixed (it reaches the model's output, or an operation without a channel rule), a
group also produced by a layer outside the scope, a pattern other than ``Channel``, cells of one
unit at different thresholds.

The coupling is part of the saved state: each cell tied to others keeps the buffer
``coupled`` (its ties, ``stem+conv2``), and ``Scope.check_load`` refuses a state_dict whose
coupling is not the model's (:func:`check_load`); one saved before it was kept still loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from n2prune.compact.groups import ChannelGraph, channel_graph
from n2prune.compact.trace import TracedGraph, trace_channel_graph
from n2prune.prune.attach import select
from n2prune.prune.criteria.combined import waiting
from n2prune.prune.ranking import SCOPES, Scope
from n2prune.prune.scope import global_keep, pruned_first

NAME = "Coupled"


@dataclass
class Unit:
    """Channel groups produced by the same cells: ``rows[cell]`` the cell's output channels in
    the unit, ``position[cell]`` the group (0 … groups-1) of each of them."""

    cells: Tuple[str, ...]
    groups: int
    rows: Dict[str, torch.Tensor]
    position: Dict[str, torch.Tensor]


@dataclass
class Coupling:
    """The units of a set of cells (by layer name), from one traced forward pass."""

    units: List[Unit]

    @property
    def cells(self) -> List[str]:
        return sorted({cell for unit in self.units for cell in unit.cells})


def trace_coupling(model: nn.Module, names: Sequence[str], example: Any) -> Coupling:
    """The units of the layers ``names`` of ``model`` recorded on ``example``; a ValueError
    naming the layer and channel when one of their channels cannot be pruned with them."""
    return coupling_of(channel_graph_of(model, example), names)


def couplings(model: nn.Module, units: Mapping[str, Sequence[str]], example: Any
              ) -> Dict[str, Coupling]:
    """The coupling of each unit ``{name: [layer names]}`` of ``model``, from one pass on
    ``example`` (an INI network without one: its own channel graph)."""
    graph = channel_graph_of(model, example)
    return {name: coupling_of(graph, list(names)) for name, names in units.items()}


def is_ini_network(model: nn.Module) -> bool:
    """Whether ``model`` is a network built from an INI file (cells by section name)."""
    return hasattr(model, "info") and hasattr(model, "cells")


def channel_graph_of(model: nn.Module, example: Any) -> ChannelGraph:
    """The channel groups of ``model``: recorded on ``example``, or, for an INI network
    without one, its own (``n2prune.compact.groups``); a ValueError naming the fix when a
    plain model comes without an example."""
    if example is None and is_ini_network(model):
        return channel_graph(model)
    if example is None:
        raise ValueError(f"scope={NAME!r} prunes the channels tied across layers, which a "
                         f"forward pass records: give an example input (example=x)")
    return trace_channel_graph(model, example, strict=False)


def units_of(cells: Mapping[str, Any]) -> Dict[str, List[str]]:
    """The PruneCells of ``cells`` (by name, in the network's order) that prune channels
    together (the Coupled scope) as ``{unit name: [cells]}``, the name its cells joined by
    ``+``; cells tied through any channel are one unit. Cells outside a coupling are left out."""
    order = list(cells)
    parent = {name: name for name in order}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for name in order:
        coupling = getattr(cells[name], "coupling", None)
        for unit in coupling.units if coupling is not None else ():
            tied = [cell for cell in unit.cells if cell in parent]
            for cell in tied[1:]:
                parent[root(cell)] = root(tied[0])
    groups: Dict[str, List[str]] = {}
    for name in order:
        if getattr(cells[name], "coupling", None) is not None:
            groups.setdefault(root(name), []).append(name)
    return {"+".join(group): group for group in groups.values()}


def split_units(cells: Mapping[str, Any]) -> Tuple[List[str], Dict[str, List[str]]]:
    """``cells`` (PruneCells by name, in the network's order) as a sensitivity analysis takes
    them (``n2prune-sensitivity`` and ``n2prune-train --budget sensitivity``): the names of the
    cells outside any coupling, and the units of the coupled ones (:func:`units_of`)."""
    units = units_of(cells)
    tied = {cell for group in units.values() for cell in group}
    return [name for name in cells if name not in tied], units


def coupling_of(graph: ChannelGraph, names: Sequence[str]) -> Coupling:
    """The units of the layers ``names`` in a channel graph, traced or an INI network's (see
    :func:`trace_coupling`)."""
    chosen = set(names)
    order = {name: index for index, name in enumerate(names)}
    missing = [name for name in names if name not in graph.atoms]
    if missing:
        raise ValueError(f"scope={NAME!r}: {missing[0] or '<model>'} did not run in the "
                         f"example's forward pass, so its channel groups are unknown; give an "
                         f"example that runs it, or leave it out")
    by_cells: Dict[Tuple[str, ...], List[Any]] = {}
    for group in graph.groups():
        mine = [m for m in group.producers if m[0] in chosen]
        if not mine:
            continue
        name, channel = mine[0]
        if group.fixed:
            raise ValueError(f"scope={NAME!r}: {name} output channel {channel} cannot be "
                             f"pruned: its channel group is fixed ({_why_fixed(graph)}); "
                             f"leave {name} out of the scope")
        others = sorted({m[0] for m in group.producers if m[0] not in chosen})
        if others:
            raise ValueError(f"scope={NAME!r}: {name} output channel {channel} is summed with "
                             f"channels of {', '.join(others)}, outside the scope; include "
                             f"{'them' if len(others) > 1 else 'it'} (attach's include=, a "
                             f"unit's cells) so that every producer prunes the same channels")
        key = tuple(sorted({m[0] for m in mine}, key=order.__getitem__))
        by_cells.setdefault(key, []).append(mine)
    units = []
    for cells, groups in by_cells.items():
        rows: Dict[str, List[int]] = {cell: [] for cell in cells}
        position: Dict[str, List[int]] = {cell: [] for cell in cells}
        for index, members in enumerate(groups):
            for cell, channel in members:
                rows[cell].append(channel)
                position[cell].append(index)
        units.append(Unit(cells, len(groups),
                          {c: torch.tensor(v, dtype=torch.long) for c, v in rows.items()},
                          {c: torch.tensor(v, dtype=torch.long) for c, v in position.items()}))
    return Coupling(units)


def _why_fixed(graph: ChannelGraph) -> str:
    blocked = "; ".join(f"{b.op} at {b.where}" for b in getattr(graph, "blocked", [])[:2])
    return ("it reaches the model's output, a layer used twice or an operation that mixes "
            "channels" + (f"; operations without a channel rule: {blocked}" if blocked else ""))


def coupled_units(model: nn.Module, example: Any, include=None, exclude=None
                  ) -> Dict[str, List[str]]:
    """The units of the supported layers ``select(model, include, exclude)`` chooses:
    ``{unit name: [cells]}``, the name its cells joined by ``+`` in the model's order (a layer
    feeding no sum is a unit of its own). Without ``include``, every layer the example runs
    whose channels can be pruned; layers ``include`` names whose channels cannot be pruned are
    an error, as in :func:`trace_coupling`."""
    graph = trace_channel_graph(model, example, strict=False)
    names = list(select(model, include, exclude))
    if include is None:   # every layer: leave out those that cannot be pruned
        names = _prunable(graph, [name for name in names if name in graph.layer_nodes])
    coupling = coupling_of(graph, names)
    return {"+".join(unit.cells): list(unit.cells) for unit in coupling.units}


def _prunable(graph: TracedGraph, names: List[str]) -> List[str]:
    """``names`` less the layers with a fixed output channel, and then, until none is left,
    those summed with a layer left out."""
    kept = set(names)
    groups = [g for g in graph.groups() if g.producers]
    kept -= {m[0] for g in groups if g.fixed for m in g.producers}
    changed = True
    while changed:
        changed = False
        for group in groups:
            producers = {m[0] for m in group.producers}
            if producers & kept and not producers <= kept:
                kept -= producers
                changed = True
    return [name for name in names if name in kept]


# ----------------------------------------------------------------------------- the scope
def bind(model: nn.Module, cells: Mapping[str, Any], example: Any) -> None:
    """``Scope.bind`` of Coupled: trace ``model`` on ``example`` (an INI network without one:
    its own channel graph, ``n2prune.compact.groups``) and give ``cells`` (PruneCells by layer
    name) their coupling."""
    if example is None and not is_ini_network(model):
        raise ValueError(f"scope={NAME!r} prunes the channels tied across layers, which a "
                         f"forward pass records: give attach an example input "
                         f"(n2prune.attach(model, scope={NAME!r}, example=x, ...))")
    couple(cells, coupling_of(channel_graph_of(model, example), list(cells)))


def couple(cells: Mapping[str, Any], coupling: Coupling) -> None:
    """Hand ``coupling`` to ``cells`` (PruneCells by layer name, every cell of the coupling)."""
    absent = [name for name in coupling.cells if name not in cells]
    if absent:
        raise ValueError(f"scope={NAME!r}: no PruneCell for {', '.join(absent)}")
    for name, cell in cells.items():
        pattern = str(cell.pattern_rule)
        if pattern != "Channel":
            raise ValueError(f"scope={NAME!r} prunes whole output channels: {name} has "
                             f"pattern={pattern!r}; use pattern='Channel'")
        cell.coupling, cell.coupled_as = coupling, name
        _save_ties(cell, coupling, name)


# ----------------------------------------------------------------------------- saved state
KEY = "coupled"       # the PruneCell buffer of a coupled cell's ties, saved in its state_dict
SAVED_SINCE = 2       # PruneCell._version from which a state_dict holds it


def ties(coupling: Coupling, name: str) -> List[str]:
    """The cells sharing a unit of ``coupling`` with the cell ``name``, itself included."""
    tied: List[str] = []
    for unit in coupling.units:
        if name in unit.cells:
            tied += [cell for cell in unit.cells if cell not in tied]
    return tied


def _save_ties(cell: Any, coupling: Coupling, name: str) -> None:
    """Give ``cell`` the buffer naming its ties (``stem+b``), none when it is tied to no other
    cell, so that a state_dict says which cells prune the same channels."""
    tied = ties(coupling, name)
    value = None
    if len(tied) > 1:
        value = torch.tensor(list("+".join(tied).encode("utf-8")), dtype=torch.uint8,
                             device=cell.mask.device)
    cell.register_buffer(KEY, value)


def _ties_text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.dim() != 1:
        return f"<not a coupling: {type(value).__name__}>"
    return bytes(value.detach().cpu().tolist()).decode("utf-8", "replace")


def check_load(cell: Any, state_dict: Mapping[str, Any], prefix: str,
               metadata: Mapping[str, Any]) -> None:
    """``Scope.check_load`` of Coupled: refuse a state whose coupling (the cells whose masks
    prune the same channels) is not the cell's now. A state_dict without the entry saved by
    an older version (or without its metadata, as safetensors keeps none) is taken as it is."""
    saved = _ties_text(state_dict.get(prefix + KEY))
    now = _ties_text(getattr(cell, KEY, None))
    if saved == now or (saved is None and (metadata.get("version") or 1) < SAVED_SINCE):
        return
    where = prefix[:-1] or "PruneCell"
    if saved is None:
        raise ValueError(f"{where}: the state was saved without a coupling, but this cell is "
                         f"coupled ({now}, scope={NAME!r}): its masks do not prune the same "
                         f"channels; load it into a model attached as it was saved (no "
                         f"{NAME} scope), or save it from a model coupled as {now}")
    raise ValueError(f"{where}: the state was saved coupled as {saved} (scope={NAME!r}), but "
                     f"this cell is {'coupled as ' + now if now else 'not coupled'}; load it "
                     f"into a model attached as it was saved (scope={NAME!r}, cells {saved})")


def rank_coupled(cells: Sequence[Any]) -> None:
    """Set the masks of ``cells`` (PruneCells of the Coupled scope), unit by unit: the groups
    of lowest summed score at the unit's common current threshold, in every producer."""
    couplings: Dict[int, Tuple[Coupling, Dict[str, Any]]] = {}
    for cell in cells:
        coupling = getattr(cell, "coupling", None)
        if coupling is None:
            raise ValueError(f"scope={NAME!r}: a PruneCell on {type(cell.cell).__name__} has "
                             f"no traced channel groups; attach with an example input "
                             f"(n2prune.attach(model, scope={NAME!r}, example=x, ...))")
        couplings.setdefault(id(coupling), (coupling, {}))[1][cell.coupled_as] = cell
    for coupling, by_name in couplings.values():
        absent = [name for name in coupling.cells if name not in by_name]
        if absent:
            raise ValueError(f"scope={NAME!r}: the cells ranked lack {', '.join(absent)}, "
                             f"coupled with {', '.join(sorted(by_name))}: give them all")
        if any(waiting(cell) for cell in by_name.values()):
            continue   # a criterion still lacks its statistics: ranked once they arrive
        keeps = {name: torch.ones(cell.dead_groups()[0].numel(), dtype=torch.bool)
                 for name, cell in by_name.items()}
        for unit in coupling.units:
            _rank_unit(unit, by_name, keeps)
        for name, cell in by_name.items():
            cell.apply_keep([keeps[name].to(cell.mask.device)], groups=True)


def _rank_unit(unit: Unit, cells: Mapping[str, Any], keeps: Dict[str, torch.Tensor]) -> None:
    thresholds = {name: float(cells[name].current_threshold) for name in unit.cells}
    if len(set(thresholds.values())) != 1:
        found = ", ".join(f"{name} {value:g}" for name, value in thresholds.items())
        raise ValueError(f"scope={NAME!r}: {', '.join(unit.cells)} prune the same channels "
                         f"but their current thresholds differ ({found}); give them one "
                         f"threshold and schedule")
    target = next(iter(thresholds.values()))
    scores = torch.zeros(unit.groups, dtype=torch.float64)
    dead = torch.ones(unit.groups, dtype=torch.bool)
    sticky = all(cells[name].sticky for name in unit.cells)
    for name in unit.cells:
        cell, rows, position = cells[name], unit.rows[name], unit.position[name]
        own = cell.group_scores()[0].detach().reshape(-1).double().cpu()
        scores.index_add_(0, position, own[rows])
        if sticky:
            alive = ~cell.dead_groups()[0].reshape(-1).cpu()[rows]
            dead[position[alive]] = False
    floor = max(float(cells[name].min_keep) for name in unit.cells)
    ranked = pruned_first([scores], [dead if sticky else None], target)
    keep = global_keep(ranked, target, [floor])[0]
    for name in unit.cells:
        keeps[name][unit.rows[name]] &= keep[unit.position[name]]


SCOPES.register(NAME)(Scope(NAME, rank_coupled, shared=True, bind=bind, per_cell=True,
                            check_load=check_load))
