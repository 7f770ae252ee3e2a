"""Parameter tables: INI key <-> Python argument <-> reader <-> default, declared once.

A table is a tuple of ``Key``. From it we derive keyword arguments from an INI section
(``kwargs_from``), the INI text of a Python object's settings (``ini_lines``), and the list
of valid keys for "did you mean" errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Sequence

from n2prune.registry import did_you_mean


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Key:
    """One parameter: its INI spelling, its Python argument, how to read it, its default."""

    ini: str
    arg: str
    reader: Callable[..., Any]
    default: Any = REQUIRED
    doc: str = ""


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
