"""Registry: the one extension mechanism, a name -> member table keyed by INI spelling."""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Callable, Dict, Generic, Iterator, List, TypeVar

T = TypeVar("T")


FEW = 8      # a longer "known:" list is cut to its NEAREST members
NEAREST = 6


def did_you_mean(name: str, valid: List[str], what: str) -> str:
    """The standard 'unknown X' message: nearest valid spelling and the valid names (all of
    them up to ``FEW``, else the ``NEAREST`` to ``name`` and how many there are)."""
    same = [v for v in valid if v.lower() == str(name).lower()]
    close = same or difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if len(valid) <= FEW:
        return f"unknown {what} {name!r}{hint} (known: {', '.join(sorted(valid))})"
    nearest = close + difflib.get_close_matches(name, valid, n=NEAREST, cutoff=0.0)
    lowered = difflib.get_close_matches(name.lower(), [v.lower() for v in valid], n=NEAREST,
                                        cutoff=0.0)
    by_lower = {v.lower(): v for v in valid}
    for extra in (by_lower[v] for v in lowered):   # case slips count as near too
        if extra not in nearest:
            nearest.append(extra)
    nearest = list(dict.fromkeys(nearest))[:NEAREST]
    return (f"unknown {what} {name!r}{hint} (known, nearest first: {', '.join(nearest)}, ... "
            f"{len(valid)} in all)")


class Registry(Generic[T]):
    """A named family of pluggable members (fillers, cell types, solvers, ...).

    >>> FILLERS = Registry("pruning filler")
    >>> @FILLERS.register("Random")
    ... def random_filler(): ...
    >>> FILLERS.get("Random") is random_filler
    True
    """

    def __init__(self, what: str):
        self.what = what
        self._members: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Register a member under ``name`` (decorator). A class member that declares a
        ``name`` attribute by inheritance only gets its registered name: the name is written
        once, in the registration."""
        def decorator(member: T) -> T:
            if name in self._members:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            if isinstance(member, type) and hasattr(member, "name") \
                    and "name" not in vars(member):
                member.name = name
            self._members[name] = member
            return member
        return decorator

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its member (a plug-in withdrawn, a test cleaning up)."""
        if name not in self._members:
            raise ValueError(did_you_mean(str(name), self.names(), self.what))
        return self._members.pop(name)

    @contextmanager
    def registered(self, name: str, member: T) -> Iterator[T]:
        """Register ``member`` as ``name`` for the duration of a ``with`` block.

        >>> COLOURS = Registry("colour")
        >>> with COLOURS.registered("Red", 1):
        ...     "Red" in COLOURS
        True
        >>> "Red" in COLOURS
        False
        """
        self.register(name)(member)
        try:
            yield member
        finally:
            self.unregister(name)

    def get(self, name: str) -> T:
        """The member called ``name``; KeyError-free: raises ValueError with suggestions."""
        try:
            return self._members[name]
        except (KeyError, TypeError):
            raise ValueError(did_you_mean(str(name), self.names(), self.what)) from None

    def names(self) -> List[str]:
        """The member names, in registration order, as they are now (not a snapshot)."""
        return list(self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)
