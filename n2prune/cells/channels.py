"""How each cell type's output channels relate to its input channels: the channel rules a
:class:`~n2prune.cells.kinds.CellKind` carries, used by ``n2prune.compact.groups``.

A rule ``rule(graph, name, cell, in_atoms) -> out_atoms`` makes the output atoms of cell
``name`` in a channel graph (``new``, ``follow``, ``union``, ``fix``) and ties them to its
input atoms; a cell type without a rule fixes its inputs and its outputs (:func:`fix_all`),
which is always safe.
"""

from __future__ import annotations

from typing import List

from torch import nn


def fix_all(graph, name: str, cell: nn.Module, in_atoms: List[int]) -> List[int]:
    """No channel can be removed: inputs and outputs fixed (the rule of an unknown kind)."""
    graph.fix(in_atoms)
    out = graph.new(name, _nb_outputs(cell, len(in_atoms)))
    graph.fix(out)
    return out


def _nb_outputs(cell: nn.Module, default: int) -> int:
    return int(getattr(cell, "nb_outputs", default))


def conv_rule(graph, name, cell, in_atoms):
    """A Conv cell: new channels from its weights, tied to its inputs when grouped."""
    return conv_atoms(graph, name, in_atoms, cell.nb_inputs, cell.nb_outputs,
                      int(getattr(cell, "groups", 1)))


def conv_atoms(graph, name: str, in_atoms, nb_inputs: int, nb_outputs: int, groups: int):
    """The output channel atoms of a (grouped, depthwise) convolution, coupled to its inputs."""
    if groups == 1:
        return graph.new(name, nb_outputs, produced=True)
    per_in, per_out = nb_inputs // groups, nb_outputs // groups
    if per_in == 1:  # depthwise (with a channel multiplier): a group is one input channel
        out = graph.new(name, nb_outputs)
        for g in range(groups):
            for a in out[g * per_out:(g + 1) * per_out]:
                graph.union(a, in_atoms[g])
        return out
    # grouped: the j-th channel of every group goes together, so groups stay equal
    for j in range(per_in):
        for g in range(1, groups):
            graph.union(in_atoms[j], in_atoms[g * per_in + j])
    out = graph.new(name, nb_outputs, produced=True)
    for j in range(per_out):
        for g in range(1, groups):
            graph.union(out[j], out[g * per_out + j])
    return out


def fc_rule(graph, name, cell, in_atoms):
    """An Fc cell: new channels from its weights; its inputs are free."""
    return graph.new(name, cell.nb_outputs, produced=True)


def pass_through_rule(graph, name, cell, in_atoms):
    """A cell whose output channel c is its input channel c (BatchNorm, Padding, ...)."""
    if _nb_outputs(cell, len(in_atoms)) != len(in_atoms):
        return fix_all(graph, name, cell, in_atoms)
    return graph.follow(name, in_atoms)


def pool_rule(graph, name, cell, in_atoms):
    """A Pool cell: pass-through with a one-to-one map, fixed otherwise."""
    if getattr(cell, "mode", None) == "identity":
        return graph.follow(name, in_atoms)
    return fix_all(graph, name, cell, in_atoms)  # outputs mix channels (max/mean across)


def elemwise_rule(graph, name, cell, in_atoms):
    """An ElemWise cell: channel c of every input and of the output go together."""
    parents = graph.inputs_of[name]
    width = len(graph.atoms[parents[0]])
    out = graph.new(name, width)
    for parent in parents:
        for a, b in zip(out, graph.atoms[parent]):
            graph.union(a, b)
    return out
