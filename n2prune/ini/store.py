"""Raw INI sections as read: each key's text and where it was written (spec §1.1-§1.2).

The storage shared by the INI reader (which fills it), the evaluator (which resolves ``[S]K``
and ``${VAR}`` against it) and :class:`n2prune.ini.inifile.Section` (which reads from it). Nothing
here evaluates a value.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from n2prune.errors import ConfigError


class Entry:
    """One raw ``key=value`` line: where it was written and in which section."""

    __slots__ = ("value", "path", "line", "section", "via")

    def __init__(self, value: str, path: str, line: Optional[int], section: str,
                 via: Optional[str]):
        self.value, self.path, self.line, self.section, self.via = value, path, line, section, via


class SectionData:
    """Storage of one section: raw entries (inherited included), computed values, read keys."""

    def __init__(self, name: str, path: str, header_line: Optional[int], index: int,
                 via: Optional[str] = None):
        self.name, self.path, self.header_line, self.index = name, path, header_line, index
        self.via = via
        self.entries: Dict[str, Entry] = {}
        self.computed: Dict[str, str] = {}
        self.read: set = set()
        self.bases: List[str] = []
        self.used_as_base = False


class SectionTable:
    """Sections by name and in file order; the global section ``""`` comes first."""

    def __init__(self, path: str):
        self.by_name: Dict[str, SectionData] = {}
        self.order: List[SectionData] = []
        self.longest_name = 0  # lets reference lookup skip brackets no section name fits
        self.add(SectionData("", path, None, 0))

    def add(self, data: SectionData) -> None:
        """Append ``data`` in file order (its index is set here)."""
        self.longest_name = max(self.longest_name, len(data.name))
        data.index = len(self.order)
        self.by_name[data.name] = data
        self.order.append(data)

    def names(self) -> List[str]:
        """Section names in file order."""
        return [data.name for data in self.order]


def short(value: str, limit: int = 60) -> str:
    """``value`` cut to ``limit`` characters for an error message."""
    return value if len(value) <= limit else value[:limit - 3] + "..."


def key_error(reason: str, data: SectionData, key: str, entry: Entry,
              value: Optional[str] = None) -> ConfigError:
    """A ConfigError at the line ``entry`` was written on, saying where it came from."""
    if entry.section != data.name:
        reason += f" (inherited from [{entry.section}])"
    if entry.via:
        reason += f" (in template output of {entry.via})"
    return ConfigError(reason, path=entry.path, line=entry.line, section=data.name, key=key,
                       value=short(entry.value if value is None else value))
