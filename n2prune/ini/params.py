"""Parameter tables: INI key <-> Python argument <-> reader <-> default, declared once.

A table is a tuple of ``Key``. From it we derive keyword arguments from an INI section
(``kwargs_from``), the INI text of a Python object's settings (``ini_lines``), and the list
of valid keys for "did you mean" errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from n2prune.registry import did_you_mean


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric parameter: ``[low, high]`` (``(low, ...`` when
    ``low_open``), integers only when ``integer``."""

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    low_open: bool = False

    def check(self, name: str, value: Any) -> Any:
        """``value`` as int/float; TypeError or ValueError naming ``name`` and the range."""
        kinds = (int, np.integer) if self.integer else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = "an integer" if self.integer else "a number"
            raise TypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
        if math.isnan(value) or value > self.high or value < self.low \
                or (self.low_open and value <= self.low):
            raise ValueError(f"{name}={value!r} is out of range; allowed: {self}")
        return int(value) if self.integer else float(value)

    def __str__(self) -> str:
        left = "(" if self.low_open or self.low == -math.inf else "["
        right = "]" if self.high != math.inf else ")"
        return f"{left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class Choice:
    """The valid values of a string parameter: ``names`` is a list, a callable returning one
    or a Registry, read at each check (a member registered later is valid)."""

    names: Any

    def valid(self) -> List[str]:
        if hasattr(self.names, "names"):
            return list(self.names.names())
        return list(self.names() if callable(self.names) else self.names)

    def check(self, name: str, value: Any) -> str:
        choices = self.valid()
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r} "
                            f"({type(value).__name__}); allowed: {', '.join(choices)}")
        if value not in choices:
            raise ValueError(f"{name}={value!r}: " + did_you_mean(value, choices, "value"))
        return value


@dataclass(frozen=True)
class Flag:
    """The valid values of a boolean parameter: True or False (0/1/yes/no in INI text)."""

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r} "
                            f"({type(value).__name__})")
        return bool(value)

    def __str__(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class Key:
    """One parameter: its INI spelling, its Python argument, how to read it, its default, and
    (optionally) its valid values ``valid`` (a Range or a Choice), checked by ``check``."""

    ini: str
    arg: str
    reader: Callable[..., Any]
    default: Any = REQUIRED
    doc: str = ""
    valid: Optional[Any] = None

    def check(self, value: Any) -> Any:
        """``value`` checked against ``valid`` (returned unchanged when there is none)."""
        return value if self.valid is None else self.valid.check(self.arg, value)


def kwargs_from(section: Any, keys: Sequence[Key], prefix: str = "") -> Dict[str, Any]:
    """Keyword arguments for the keys of ``keys`` present in ``section`` (prefixed keys).

    ``section`` is an ini Section or view: ``in``, ``get(key, reader, default)``. Keys that are
    absent and have a default are left out, so the Python default applies; a missing required
    key is a located ConfigError raised by ``section.get``.
    """
    kwargs: Dict[str, Any] = {}
    for key in keys:
        name = prefix + key.ini
        if name in section or key.default is REQUIRED:
            kwargs[key.arg] = section.get(name, key.reader, key.default)
    return kwargs


def unknown_key_message(name: str, keys: Iterable[Key], prefix: str = "") -> str:
    """'unknown parameter ...; did you mean ...' for a key that is not in the table."""
    valid: List[str] = [prefix + key.ini for key in keys]
    return did_you_mean(name, valid, "parameter")


def by_arg(keys: Sequence[Key]) -> Dict[str, Key]:
    return {key.arg: key for key in keys}


def check_prefixed(section: Any, keys: Sequence[Key], prefix: str, what: str) -> None:
    """Every ``prefix``-ed key of ``section`` must name a parameter of the table ``keys``:
    otherwise a located error 'unknown <what> parameter ...; did you mean ...'."""
    for full in section.prefixed(prefix):
        if not any(key.ini == full[len(prefix):] for key in keys):
            raise section.error(full, unknown_key_message(full, keys, prefix).replace(
                "unknown parameter", f"unknown {what} parameter", 1))
