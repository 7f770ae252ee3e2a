"""Typed reading of INI values, following N2D2's stream rules (spec §1.4).

Each reader takes the evaluated text and returns a Python value, or raises ValueError with a
reason (the caller adds file, line, section and key). A read must consume the whole string.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, List, Optional, Sequence, Union

from n2prune.registry import did_you_mean

# Digits with optional ',' thousands groups of exactly three (the C++ locale N2D2 installs).
_GROUPED = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
_INT_RE = re.compile(rf"^\s*([+-]?)({_GROUPED})$")
_FLOAT_RE = re.compile(rf"^\s*[+-]?(?:{_GROUPED}(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")

INT_MAX = 2 ** 63 - 1   # int64: what torch sizes and N2D2's widest integers hold
INT_MIN = -INT_MAX

Warn = Optional[Callable[[str], None]]


def _integral_float(text: str, type_name: str, warn: Warn) -> int:
    """Accept '3000.0' for an integer key (Python 2 era `$(a / b)`), with a warning."""
    try:
        value = read_float(text)
    except ValueError:
        value = None
    if value is None or math.isinf(value) or value != int(value):
        raise ValueError(f"{type_name} expected, but {text!r} was provided")
    if warn is not None:
        warn(f"integral float {text!r} read as the {type_name} {int(value)} "
             f"(wrap the expression in int(...) to silence this)")
    return int(value)


def read_int(text: str, warn: Warn = None) -> int:
    """A signed integer: '7', ' 7', '+5', '-3', '1,000'; within int64, as torch needs."""
    match = _INT_RE.match(text)
    if not match:
        value = _integral_float(text, "integer", warn)
    else:
        value = int(match.group(1) + match.group(2).replace(",", ""))
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"integer {text.strip()!r} is out of range (at most {INT_MAX} in "
                         "magnitude)")
    return value


def read_uint(text: str, warn: Warn = None) -> int:
    """An unsigned integer; a negative number is an error of its own."""
    if text.strip().startswith("-"):
        raise ValueError(f"trying to read a negative number {text!r} into an unsigned value")
    return read_int(text, warn)


def read_float(text: str, warn: Warn = None) -> float:
    """A float: '0.5', '.5', '1e-3', '1,000.5'; not '1.0f', '0x10', 'inf'."""
    if not _FLOAT_RE.match(text):
        raise ValueError(f"number expected, but {text!r} was provided")
    return float(text.replace(",", ""))


def read_bool(text: str, warn: Warn = None) -> bool:
    """Only '0' and '1', as N2D2 reads them ('true' is an error)."""
    if text.strip() in ("0", "1"):
        return text.strip() == "1"
    raise ValueError(f"boolean expected (0 or 1), but {text!r} was provided")


def read_word(text: str, warn: Warn = None) -> str:
    """A string parameter: one whitespace-free word (N2D2's parameter objects)."""
    words = text.split()
    if len(words) > 1:
        raise ValueError(f"a single word expected, but {text!r} was provided")
    return words[0] if words else ""


def read_text(text: str, warn: Warn = None) -> str:
    """The raw evaluated text, spaces included."""
    return text


def read_list(item: Callable[..., object]) -> Callable[..., list]:
    """A reader of whitespace-separated lists whose items use ``item``."""
    def reader(text: str, warn: Warn = None) -> List[object]:
        return [item(word, warn) for word in text.split()]
    reader.__name__ = f"list_of_{item.__name__}"
    return reader


Names = Union[Sequence[str], Callable[[], Sequence[str]], Any]


def read_enum(names: Names, what: Optional[str] = None) -> Callable[..., str]:
    """A reader accepting exactly one of ``names`` (case-sensitive).

    ``names`` is a fixed list, a Registry or a callable returning the names: a Registry or a
    callable is read at each call, so a member registered after import is accepted.
    ``what`` names the value in errors (default: the registry's ``what``, else "value").

    >>> from n2prune.registry import Registry
    >>> COLOURS = Registry("colour")
    >>> read_colour = read_enum(COLOURS)
    >>> _ = COLOURS.register("Red")(1)
    >>> read_colour("Red")
    'Red'
    """

    if hasattr(names, "names") and callable(names.names):
        current, what = names.names, what or getattr(names, "what", None)
    elif callable(names):
        current = names
    else:
        fixed = list(names)

        def current() -> List[str]:
            return fixed

    def reader(text: str, warn: Warn = None) -> str:
        valid = list(current())
        if text in valid:
            return text
        raise ValueError(did_you_mean(text, valid, what or "value"))
    return reader
