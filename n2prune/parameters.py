"""Declaring a plug-in's parameters: ``n2prune.parameter(...)`` gives the entry of a member's
parameter table (``params=`` of ``register_criterion``, of a pattern, schedule or budget), so
that ``QWeight.<ini>=`` in INI and ``PruneCell(<arg>=...)`` in Python both reach it, checked.

>>> import n2prune
>>> alpha = n2prune.parameter("MyAlpha", "alpha", 0.5, low=0.0, high=1.0, doc="mixing weight")
>>> alpha.ini, alpha.arg, alpha.default, alpha.check(0.25)
('MyAlpha', 'alpha', 0.5, 0.25)
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from n2prune.ini.params import Choice, Flag, Key, Range
from n2prune.ini.values import read_bool, read_enum, read_float, read_int, read_word

_READERS = {float: read_float, int: read_int, bool: read_bool, str: read_word}


def parameter(ini: str, arg: str, default: Any, *, kind: Optional[type] = None,
              low: Optional[float] = None, high: Optional[float] = None,
              choices: Optional[Sequence[str]] = None, doc: str = "") -> Key:
    """One parameter: INI spelling ``ini`` (written after ``QWeight.``), Python argument
    ``arg``, ``default``; ``kind`` (float, int, bool or str; default: the default's type),
    ``low`` / ``high`` bounds for numbers, ``choices`` for words; ``doc`` for help texts."""
    kind = kind or (type(default) if default is not None else float)
    if kind not in _READERS:
        raise TypeError(f"parameter {ini!r}: kind={kind!r}; allowed: float, int, bool, str")
    if not ini.isidentifier() or not arg.isidentifier():
        raise ValueError(f"parameter {ini!r} / {arg!r}: INI name and argument must be "
                         f"identifiers")
    if kind is bool:
        return Key(ini, arg, read_bool, default, doc, Flag())
    if kind is str:
        if choices is None:
            return Key(ini, arg, read_word, default, doc)
        return Key(ini, arg, read_enum(list(choices)), default, doc, Choice(list(choices)))
    bounds = Range(-math.inf if low is None else low, math.inf if high is None else high,
                   integer=kind is int)
    return Key(ini, arg, _READERS[kind], default, doc, bounds)
