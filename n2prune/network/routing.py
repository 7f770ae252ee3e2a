"""ConfigSection routing (spec §2.4, §3.1, §4.2): which keys go to the cell, its solvers, its
weight quantizer.

Cell parameters come from the ConfigSection(s); solver and quantizer parameters come with
prefixes (``Solvers.``, ``WeightsSolver.``, ``BiasSolver.``, ``ScaleSolver.``, ``QWeight.``)
from the ConfigSection, or from the cell section when the matching type key is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from n2prune.cells.kinds import kind_of, quantized_types
from n2prune.ini.params import check_prefixed, kwargs_from
from n2prune.quantizer import N2D2_ONLY, QUANTIZERS
from n2prune.registry import did_you_mean
from n2prune.solvers import SOLVERS
from n2prune.ini.values import read_text, read_word

# A cell type's solver roles and whether QWeight applies come from its kind
# (``n2prune.cells.kinds.CELL_KINDS``).


class ConfigView:
    """A ConfigSection view with the routed prefixes hidden from the cell's builder."""

    def __init__(self, view: Any, hidden: Sequence[str]):
        self._view, self._hidden = view, tuple(hidden)
        self.name, self.path = view.name, view.path

    def _visible(self, key: str) -> bool:
        return not key.startswith(self._hidden)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._visible(key) and key in self._view

    def keys(self) -> List[str]:
        return [key for key in self._view.keys() if self._visible(key)]

    def prefixed(self, prefix: str) -> List[str]:
        return [key for key in self.keys() if key.startswith(prefix)]

    def unread_keys(self) -> List[str]:
        return [key for key in self._view.unread_keys() if self._visible(key)]

    def __getitem__(self, key: str) -> str:
        return self._view[key]

    def get(self, key: str, *args, **kwargs):
        return self._view.get(key, *args, **kwargs)

    def __getattr__(self, name: str):  # error, warn, line_of, mark_read, set_computed
        return getattr(self._view, name)


def config_names(section: Any, model: str) -> List[str]:
    """The ConfigSection list of a cell: ``ConfigSection(<Model>)`` wins over the plain key."""
    for key in (f"ConfigSection({model})", "ConfigSection"):
        if key in section:
            text = section.get(key, read_text)
            return [name for name in text.split(",") if name != ""] if text else []
    return []


@dataclass
class SolverSpec:
    """How to build one solver at training time: its type and (view, prefix) layers, applied
    in order so later layers override earlier ones (§3.1)."""

    type: str
    layers: List[Tuple[Any, str]] = field(default_factory=list)

    def kwargs(self) -> Dict[str, Any]:
        keys = SOLVERS.get(self.type).KEYS
        merged: Dict[str, Any] = {}
        for view, prefix in self.layers:
            merged.update(kwargs_from(view, keys, prefix))
        return merged


def solver_specs(cell_type: str, section: Any, config: Any) -> Dict[str, SolverSpec]:
    """Solver type and parameter layers for each parameter of a cell (weight, bias)."""
    specs: Dict[str, SolverSpec] = {}
    for type_key, parameter in kind_of(cell_type).solver_roles:
        role_prefix = type_key + "."
        if type_key in section:
            spec = SolverSpec(_solver_type(section, type_key), [(section, role_prefix)])
        elif "Solvers" in section:
            spec = SolverSpec(_solver_type(section, "Solvers"), [(section, "Solvers.")])
        else:
            spec = SolverSpec("SGD")
        if config is not None:
            spec.layers += [(config, "Solvers."), (config, role_prefix)]
        for view, prefix in spec.layers:
            _check_solver_keys(view, prefix, spec.type)
        specs[parameter] = spec
    return specs


def _solver_type(section: Any, key: str) -> str:
    name = section.get(key, read_word)
    if name not in SOLVERS:
        raise section.error(key, did_you_mean(name, SOLVERS.names(), "solver"))
    return name


def _check_solver_keys(view: Any, prefix: str, solver_type: str) -> None:
    check_prefixed(view, SOLVERS.get(solver_type).KEYS, prefix, f"{solver_type} solver")
    view.mark_read(*view.prefixed(prefix))  # evaluated at training time (after _EpochSize)


def routed_prefixes(cell_type: str) -> List[str]:
    """The ConfigSection key prefixes that go to the solvers and quantizer of ``cell_type``,
    hidden from its builder."""
    kind = kind_of(cell_type)
    prefixes = ["Solvers."] + [key + "." for key, _ in kind.solver_roles]
    if kind.quantized:
        prefixes += ["QWeight.", "QWeightSolver."]
    return prefixes if kind.solver_roles else []


def weight_quantizer(cell_type: str, section: Any, config: Any,
                     seed: int) -> Optional[Any]:
    """The PruneCell a ``QWeight=Prune`` cell section asks for (None without QWeight)."""
    if config is not None:
        for key in ("QWeight", "QAct"):
            if key in config:
                raise config.error(key, f"{key}= must be written in the cell section "
                                        f"[{section.name}], not in a ConfigSection (N2D2: "
                                        f"Unknown parameter)")
    if "QAct" in section:
        name = section.get("QAct", read_word)
        raise section.error("QAct", f"activation quantizer {name!r} is not supported yet "
                                    f"(n2prune supports QWeight=Prune)")
    if "QWeight" not in section:
        if config is not None and config.prefixed("QWeight."):
            key = config.prefixed("QWeight.")[0]
            raise config.error(key, f"QWeight.* parameters need QWeight=Prune in the cell "
                                    f"section [{section.name}]")
        return None
    name = section.get("QWeight", read_word)
    if not kind_of(cell_type).quantized:
        names = quantized_types()
        listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise section.error("QWeight", f"QWeight is read by {listed} cells only, not "
                                       f"{cell_type}")
    if name in N2D2_ONLY and name not in QUANTIZERS:
        raise section.error("QWeight", f"weight quantizer {name!r} is not supported yet "
                                       f"(n2prune supports {', '.join(QUANTIZERS.names())})")
    if name not in QUANTIZERS:
        raise section.error("QWeight", did_you_mean(name, QUANTIZERS.names() + list(N2D2_ONLY),
                                                    "weight quantizer"))
    layers = [(section, "QWeight.")] + ([(config, "QWeight.")] if config is not None else [])
    if config is not None and config.prefixed("QWeightSolver."):
        key = config.prefixed("QWeightSolver.")[0]
        raise config.error(key, "a Prune quantizer has no trainable parameter: N2D2 fails with "
                                "'Unknown parameter' here (write QWeightSolver.* in the cell "
                                "section, where it is accepted and unused)")
    section.mark_read(*section.prefixed("QWeightSolver"))
    return _quantizer(name, section, layers, seed)


def _quantizer(name: str, section: Any, layers, seed: int) -> Any:
    """Build the quantizer ``name`` from the ``QWeight.`` keys of ``layers``; its table
    (``ini_keys()``) is read now, so a member registered after import has its keys."""
    factory = QUANTIZERS.get(name)
    keys = factory.ini_keys()
    kwargs: Dict[str, Any] = {}
    where: Dict[str, Tuple[Any, str]] = {}
    for view, prefix in layers:
        check_prefixed(view, keys, prefix, name)
        for full in view.prefixed(prefix):
            where[next(k.arg for k in keys if k.ini == full[len(prefix):])] = (view, full)
        kwargs.update(kwargs_from(view, keys, prefix))
    try:
        return factory(seed=seed, **kwargs)
    except (TypeError, ValueError) as exc:
        arg = getattr(exc, "arg", None)  # PruneCell names the argument to blame
        if arg is None:  # a quantizer that does not: guess from the message
            arg = next((name for name in where if f"{name}=" in str(exc)
                        or f" {name} " in str(exc)), None)
        reason = str(exc).replace(f"{factory.__name__}: ", "")
        view, full = where.get(arg, (section, "QWeight"))
        raise view.error(full, reason) from None
