"""What the rest of n2prune knows about a cell type beyond its builder: ``CELL_KINDS``, one
:class:`CellKind` per INI ``Type=``.

A kind carries its behaviour, so a new cell type is its builder in ``CELLS`` plus one kind
here, and no other table changes: the solvers its parameters get and whether ``QWeight=``
applies (network routing), whether N2D2 rejects unknown keys in its section (key checks),
how its channels follow its inputs and how it loses channels (compaction), how many
multiply-accumulates it costs (``compact.costs``), how its parameters read as N2D2's weight
files (``n2d2io``), what becomes of it when removed channels leave a constant (compaction).
A type without a kind gets :data:`PLAIN`: no solver, no quantizer, fixed channels, no cost,
no weight files.

>>> from n2prune.cells.fc import Fc
>>> class ToyFc(Fc): ...
>>> with CELL_KINDS.registered("ToyFc", CellKind(cell_class=ToyFc, solver_roles=WEIGHT_ROLES,
...                                              quantized=True, macs=fc_macs)):
...     kind_of("ToyFc").quantized
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn

from n2prune.cells import shrinkers
from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.channels import (conv_rule, elemwise_rule, fc_rule, pass_through_rule,
                                    pool_rule)
from n2prune.cells.conv import Conv
from n2prune.cells.deconv import Deconv
from n2prune.cells.fc import Fc
from n2prune.cells.layouts import (BATCHNORM_COLUMNS, CONV_LAYOUT, DECONV_LAYOUT, FC_LAYOUT,
                                   ColumnFile, WeightLayout)
from n2prune.cells.shifted import Shifted, ShiftedConv, ShiftedFc
from n2prune.registry import Registry

# (type key, parameter): the INI key naming the solver of a parameter, e.g. WeightsSolver
SolverRole = Tuple[str, str]
WEIGHT_ROLES: Tuple[SolverRole, ...] = (("WeightsSolver", "weight"), ("BiasSolver", "bias"))
# macs(module, inputs, output, weight) -> (dense, nonzero) multiply-accumulates of one pass
MacCounter = Callable[[nn.Module, Sequence[torch.Tensor], torch.Tensor, torch.Tensor],
                      Tuple[int, int]]


@dataclass(frozen=True)
class CellKind:
    """The behaviour of one INI cell type outside its builder.

    ``cell_class``: the module class the builder makes (subclasses share the kind unless
    they have their own), for code that starts from a module (costs);
    ``solver_roles``: ``(type key, parameter)`` pairs, e.g. ``("WeightsSolver", "weight")``,
    which also route the ``<type key>.`` prefixed keys of a ConfigSection to that solver;
    ``quantized``: ``QWeight=`` accepted (a PruneCell on the weight);
    ``checked``: N2D2 rejects unknown keys in the section (spec §1.6);
    ``channel_rule``: see :mod:`n2prune.cells.channels` (None: channels fixed);
    ``shrinker``: see :mod:`n2prune.cells.shrinkers` (None: nothing sliced);
    ``macs``: a :data:`MacCounter` (None: the cell costs no multiply-accumulates);
    ``layout``: its weight as N2D2 kernels, a :class:`~n2prune.cells.layouts.WeightLayout`
    (weight files ``_weights``, ``_biases``, ``_masks``; None: no weight files);
    ``columns``: per-channel parameter files for a cell without a ``layout`` (BatchNorm's
    scales, biases, means, variances), :class:`~n2prune.cells.layouts.ColumnFile` s;
    ``shifted``: the :class:`~n2prune.cells.shifted.Shifted` class compaction turns the cell
    into when removed input channels leave a constant map (None: it reads no removable
    channel with a weight);
    ``absorb_input_offset``: ``f(cell, offset)`` makes the cell (in eval mode) compute what it
    computed when ``offset`` (one value per input channel) is added to its input, e.g.
    BatchNorm's running mean (None: it cannot).
    """

    cell_class: Optional[type] = None
    solver_roles: Tuple[SolverRole, ...] = ()
    quantized: bool = False
    checked: bool = False
    channel_rule: Optional[Callable] = None
    shrinker: Optional[Callable] = None
    macs: Optional[MacCounter] = None
    layout: Optional[WeightLayout] = None
    columns: Tuple[ColumnFile, ...] = ()
    shifted: Optional[type] = None
    absorb_input_offset: Optional[Callable[[nn.Module, torch.Tensor], None]] = None

    def __post_init__(self) -> None:
        for role in self.solver_roles:
            if not (isinstance(role, tuple) and len(role) == 2
                    and all(isinstance(part, str) and part for part in role)):
                raise TypeError(f"CellKind: solver_roles holds (type key, parameter) pairs of "
                                f"names, e.g. ('WeightsSolver', 'weight'), got {role!r}")
        if self.quantized and not self.solver_roles:
            raise ValueError("CellKind: quantized=True needs a weight, hence solver_roles")
        if self.cell_class is not None and not isinstance(self.cell_class, type):
            raise TypeError(f"CellKind: cell_class must be a class, got {self.cell_class!r}")
        if self.layout is not None and not isinstance(self.layout, WeightLayout):
            raise TypeError(f"CellKind: layout must be a WeightLayout (n2prune.cells.layouts), "
                            f"got {self.layout!r}")
        if self.layout is not None and self.columns:
            raise ValueError("CellKind: a kind has a weight layout or column files, not both")
        if not all(isinstance(column, ColumnFile) for column in self.columns):
            raise TypeError(f"CellKind: columns holds ColumnFile objects "
                            f"(n2prune.cells.layouts), got {self.columns!r}")
        if self.shifted is not None and not (isinstance(self.shifted, type)
                                             and issubclass(self.shifted, Shifted)):
            raise TypeError(f"CellKind: shifted must be a Shifted subclass "
                            f"(n2prune.cells.shifted), got {self.shifted!r}")


CELL_KINDS: Registry = Registry("cell kind")
PLAIN = CellKind()


def kind_of(cell_type: str) -> CellKind:
    """The kind of INI type ``cell_type`` (:data:`PLAIN` when none is registered)."""
    return CELL_KINDS.get(cell_type) if cell_type in CELL_KINDS else PLAIN


def kind_of_module(module: nn.Module) -> Optional[CellKind]:
    """The kind whose ``cell_class`` is the nearest class of ``module`` (None if none is)."""
    by_class = {CELL_KINDS.get(name).cell_class: CELL_KINDS.get(name) for name in CELL_KINDS}
    return next((by_class[cls] for cls in type(module).__mro__ if cls in by_class), None)


def quantized_types() -> list:
    """The INI types that accept ``QWeight=``, as registered now."""
    return [name for name in CELL_KINDS if CELL_KINDS.get(name).quantized]


def role_prefixes() -> Tuple[str, ...]:
    """Every ``<solver type key>.`` prefix the registered kinds route."""
    return tuple(dict.fromkeys(key + "." for name in CELL_KINDS
                               for key, _ in CELL_KINDS.get(name).solver_roles))


# ----------------------------------------------------------------------------- costs
def _counts(weight: torch.Tensor, positions: int, dense_weights: Optional[int] = None):
    dense = weight.numel() if dense_weights is None else dense_weights
    return dense * positions, int((weight != 0).sum()) * positions


def fc_macs(module, inputs, output, weight) -> Tuple[int, int]:
    """A fully connected layer: every weight once per position (``[..., T, C]`` inputs)."""
    return _counts(weight, output.numel() // max(1, output.shape[-1]))


def conv_macs(module, inputs, output, weight) -> Tuple[int, int]:
    """A convolution: connected kernel weights once per output position."""
    connection = getattr(module, "connection", None)
    kept = None if connection is None else int(connection.expand_as(weight).sum())
    return _counts(weight, output[0, 0].numel(), kept)


def deconv_macs(module, inputs, output, weight) -> Tuple[int, int]:
    """A transposed convolution: every weight once per input position."""
    return _counts(weight, inputs[0][0, 0].numel())


def subtract_from_running_mean(cell: nn.Module, offset: torch.Tensor) -> None:
    """A BatchNorm's ``absorb_input_offset``: in eval mode, ``x + offset`` normalised with
    ``running_mean + offset`` is ``x`` normalised with ``running_mean``."""
    with torch.no_grad():
        cell.running_mean.sub_(offset)


# ----------------------------------------------------------------------------- built-ins
CELL_KINDS.register("Conv")(CellKind(Conv, WEIGHT_ROLES, quantized=True, checked=True,
                                     channel_rule=conv_rule, shrinker=shrinkers.shrink_conv,
                                     macs=conv_macs, layout=CONV_LAYOUT, shifted=ShiftedConv))
CELL_KINDS.register("Fc")(CellKind(Fc, WEIGHT_ROLES, quantized=True, channel_rule=fc_rule,
                                   shrinker=shrinkers.shrink_fc, macs=fc_macs, layout=FC_LAYOUT,
                                   shifted=ShiftedFc))
CELL_KINDS.register("Deconv")(CellKind(Deconv, WEIGHT_ROLES, checked=True, macs=deconv_macs,
                                       layout=DECONV_LAYOUT))
CELL_KINDS.register("BatchNorm")(CellKind(
    BatchNorm, (("ScaleSolver", "weight"), ("BiasSolver", "bias")), checked=True,
    channel_rule=pass_through_rule, shrinker=shrinkers.shrink_batchnorm,
    columns=BATCHNORM_COLUMNS, absorb_input_offset=subtract_from_running_mean))
CELL_KINDS.register("Unpool")(CellKind(checked=True))
for _type in ("Padding", "Dropout", "Activation"):
    CELL_KINDS.register(_type)(CellKind(channel_rule=pass_through_rule,
                                        shrinker=shrinkers.shrink_count))
CELL_KINDS.register("Pool")(CellKind(channel_rule=pool_rule, shrinker=shrinkers.shrink_pool))
CELL_KINDS.register("ElemWise")(CellKind(channel_rule=elemwise_rule,
                                         shrinker=shrinkers.shrink_elemwise))
