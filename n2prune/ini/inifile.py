"""N2D2's INI network files: text -> sections, lazily evaluated values (spec §1).

``load(path)`` reads a file the way N2D2's IniParser does (continuation lines, comments,
quotes, ``[NAME] BASE...`` inheritance, ``[sec@file.tpl]`` templates) and returns an
:class:`IniFile`. Values stay raw until read; each read evaluates ``[S]K`` references, then
``${VAR}`` variables, then ``$(...)`` expressions, in the context of the section being read.
Every key remembers its file and line, so errors say where; keys never read are listed by
:meth:`Section.unread_keys` for the unknown-key check.

This module is the public face; the work is done by :mod:`n2prune.ini.reader` (text ->
sections), :mod:`n2prune.ini.evaluate` (one value's evaluation) and :mod:`n2prune.ini.store`
(the raw sections both share).

>>> ini = loads("$N=4\\n[a]\\nX=$(${N} * 2)\\n[b] a\\nY=[a]X")
>>> ini["b"]["X"], ini["b"]["Y"]
('8', '8')
"""

from __future__ import annotations

import difflib
import numbers
import os
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from n2prune.errors import ConfigError, ConfigWarning
from n2prune.ini.files import MAX_INI_BYTES, read_text_file
from n2prune.ini.evaluate import EvalError, evaluate, expand_env, located
from n2prune.ini.reader import read_sections
from n2prune.ini.store import Entry, SectionData, SectionTable, key_error
from n2prune.ini.params import REQUIRED
from n2prune.registry import did_you_mean
from n2prune.ini.values import read_text

# Keys whose value goes through process-environment expansion after evaluation (§1.5).
PATH_KEYS = frozenset({"DataPath", "LabelPath", "CachePath", "LabelsMapping", "ROIFile",
                       "ROIDir", "ROIExtension", "AnchorJSON", "File"})


def load(path: str, environ: Optional[Mapping[str, str]] = None) -> "IniFile":
    """Read the INI file ``path``; syntax errors are reported together in one ConfigError.

    ``environ`` (default ``os.environ``) expands ``${VAR}`` in template paths and path keys.
    """
    return loads(read_text_file(path, "INI file", MAX_INI_BYTES), path, environ)


def loads(text: str, path: str = "<string>",
          environ: Optional[Mapping[str, str]] = None) -> "IniFile":
    """Read INI ``text`` as if it were the file ``path`` (templates resolve next to it)."""
    ini = IniFile(path, os.environ if environ is None else environ)
    read_sections(ini._table, text, path, ini.environ, ini._warn)
    return ini


class IniFile:
    """A loaded INI file: sections in file order (global section ``""`` first)."""

    def __init__(self, path: str, environ: Mapping[str, str]):
        self.path = path
        self.environ = environ
        self.warnings: List[ConfigWarning] = []
        self._table = SectionTable(path)
        self._wrappers: Dict[str, Section] = {}

    def __getstate__(self) -> Dict[str, object]:
        """Pickled (``torch.save(net)``) without its environment, whatever mapping it was
        (``os.environ``, a copy of it, a recording view): no variable of the saving process
        leaks into the file, and the loading process's ``os.environ`` is used."""
        state = dict(self.__dict__)
        state["environ"] = None
        return state

    def __setstate__(self, state: Dict[str, object]) -> None:
        self.__dict__.update(state)
        if self.environ is None:
            self.environ = os.environ

    def section_names(self) -> List[str]:
        """Section names in file order, template output in place; ``""`` (global) first."""
        return self._table.names()

    def sections(self) -> List["Section"]:
        return [self[data.name] for data in self._table.order]

    def __contains__(self, name: object) -> bool:
        return name in self._table.by_name

    def __iter__(self):
        return iter(self.section_names())

    def __getitem__(self, name: str) -> "Section":
        if name not in self._wrappers:
            data = self._table.by_name.get(name)
            if data is None:
                raise ConfigError(did_you_mean(name, self.section_names(), "section"),
                                  path=self.path)
            self._wrappers[name] = Section(self, [data], data)
        return self._wrappers[name]

    def view(self, section_names: Sequence[str], context: str,
             path_for_errors: Optional[str] = None) -> "Section":
        """The keys of ``section_names`` merged (later ones override earlier ones), read in
        the context of section ``context`` (N2D2's ConfigSection: ``${SECTION_NAME}`` and
        ``${VAR}`` resolve in the cell's section, then the global one).

        Errors about keys point at the line in the section the key came from; errors not
        tied to a key point at the context section's header, in ``path_for_errors`` if given.
        """
        by_name = self._table.by_name
        layers = []
        for name in section_names:
            if name not in by_name:
                raise ConfigError(did_you_mean(name, self.section_names(), "section"),
                                  path=path_for_errors or self.path)
            layers.append(by_name[name])
        if context not in by_name:
            raise ConfigError(did_you_mean(context, self.section_names(), "section"),
                              path=path_for_errors or self.path)
        return Section(self, layers, by_name[context], own_read=set(),
                       path=path_for_errors)

    def unused_sections(self) -> List[str]:
        """Sections none of whose keys was read (N2D2's "Notice: Unused section").

        Unlike N2D2, a section used as a base by another one counts as used.
        """
        return [data.name for data in self._table.order
                if not data.read and not data.computed and not data.used_as_base]

    def _warn(self, warning: ConfigWarning) -> None:
        self.warnings.append(warning)
        warnings.warn(warning, stacklevel=3)


def format_computed(value: Any) -> str:
    """A computed property as N2D2 writes it: integers plainly, floats with showpoint and
    6 significant digits (``120.708``, ``3.00000``)."""
    if hasattr(value, "item") and not isinstance(value, (str, numbers.Number)):
        value = value.item()  # a 0-d tensor or array
    if isinstance(value, numbers.Integral):  # bool included: C++ prints 1 / 0
        return str(int(value))
    if isinstance(value, numbers.Real):
        return "%#.6g" % float(value)
    return str(value)


class Section:
    """One section, or a merged view of several (see :meth:`IniFile.view`)."""

    def __init__(self, ini: IniFile, layers: List[SectionData], context: SectionData,
                 own_read: Optional[set] = None, path: Optional[str] = None):
        self._ini, self._layers, self._context = ini, layers, context
        self._table = ini._table
        self._is_view = own_read is not None
        self._read = own_read if own_read is not None else context.read
        self.name = context.name
        self.path = path or context.path
        self.header_line = context.header_line
        self.bases = [] if self._is_view else list(context.bases)
        self.sources = [data.name for data in layers]  # the merged sections
        # Keys the code looked up (present or not) and cell parameters it knows of: the
        # spellings a misspelt key is compared with ("did you mean").
        self.asked: set = set()
        self.parameter_names: set = set()

    def __repr__(self) -> str:
        if self._is_view:
            return f"<view of {self.sources} for [{self.name}]>"
        return f"<Section [{self.name}] {self.path}:{self.header_line} ({len(self.keys())} keys)>"

    def _find(self, key: str) -> Optional[Tuple[SectionData, Optional[Entry]]]:
        self.asked.add(key)
        for data in reversed(self._layers):
            if key in data.computed:
                return data, None
            entry = data.entries.get(key)
            if entry is not None:
                return data, entry
        return None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._find(key) is not None

    def keys(self) -> List[str]:
        """Raw keys in file order, inherited included (computed values are not listed)."""
        if len(self._layers) == 1:
            return list(self._layers[0].entries)
        merged: Dict[str, None] = {}
        for data in self._layers:
            merged.update(dict.fromkeys(data.entries))
        return list(merged)

    def __getitem__(self, key: str) -> str:
        """The evaluated value; marks the key read."""
        found = self._find(key)
        if found is None:
            raise self._missing(key, "no such key")
        data, entry = found
        self._mark(key)
        if entry is None:
            return data.computed[key]
        try:
            text = evaluate(self._table, data, key, entry, self._context)
        except EvalError as error:
            note = f" (read for [{self.name}])" if self._is_view else ""
            raise located(error, (data, key, entry), note) from None
        if key in PATH_KEYS:
            text = expand_env(text, self._ini.environ)[0]
        return text

    def get(self, key: str, reader: Callable[..., Any] = read_text, default: Any = REQUIRED):
        """The value read by ``reader`` (an n2prune.ini.values reader), or ``default`` when the
        key is absent; errors and reader warnings are located at the key's line."""
        if key not in self:
            if default is REQUIRED:
                raise self._missing(key, "missing required key")
            return default
        text = self[key]
        try:
            return reader(text, lambda message: self.warn(key, message))
        except ValueError as error:
            raise self._error_at(key, str(error), text) from None

    def raw(self, key: str) -> str:
        """The unevaluated text of ``key``."""
        found = self._find(key)
        if found is None:
            raise self._missing(key, "no such key")
        data, entry = found
        return data.computed[key] if entry is None else entry.value

    def line_of(self, key: str) -> Optional[int]:
        found = self._find(key)
        return found[1].line if found and found[1] is not None else None

    def error(self, key: Optional[str], message: str) -> ConfigError:
        """A ConfigError located at ``key`` (or at the section header)."""
        return self._error_at(key, message)

    def warn(self, key: Optional[str], message: str) -> None:
        """Emit a ConfigWarning located at ``key`` (or at the section header)."""
        error = self._error_at(key, message)
        self._ini._warn(ConfigWarning(error.reason, path=error.path, line=error.line,
                                      section=error.section, key=error.key))

    def set_computed(self, key: str, value: Any) -> None:
        """Store a computed property (``_NbOutputs``, ``_EpochSize``...), visible to later reads."""
        self._context.computed[key] = format_computed(value)

    def mark_read(self, *keys: str) -> None:
        """Count ``keys`` as read without evaluating them."""
        for key in keys:
            if key in self:
                self._mark(key)

    def note_parameters(self, names: Iterable[str]) -> None:
        """Record ``names`` as parameters the code knows for this section (read elsewhere,
        e.g. from a ConfigSection), for :meth:`unknown_key` and the leftover checks."""
        self.parameter_names.update(names)

    def unknown_key(self, key: str, what: str = "key", where: str = "") -> ConfigError:
        """"unknown <what> 'K'; did you mean ...?" at ``key``'s line; the suggestion is the
        closest key the code asked for (and did not find) or a known parameter name."""
        candidates = [name for name in self.asked | self.parameter_names if name not in self]
        close = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return self._error_at(key, f"unknown {what} {key!r}{where}{hint}")

    def unread_keys(self) -> List[str]:
        """Keys never read (variables ``$X`` count as read), in file order."""
        return [key for key in self.keys() if key not in self._read and not key.startswith("$")]

    def prefixed(self, prefix: str) -> List[str]:
        return [key for key in self.keys() if key.startswith(prefix)]

    def _mark(self, key: str) -> None:
        self._read.add(key)
        if self._is_view:
            for data in self._layers:
                if key in data.entries:
                    data.read.add(key)

    def _missing(self, key: str, what: str) -> ConfigError:
        # A present key nobody asked for that looks like a typo of the required one is its
        # misspelling: point at it (NbOutput=16 -> "unknown key 'NbOutput'; did you mean
        # 'NbOutputs'?"). A one-letter substitution (SizeY for SizeX) is another key.
        stray = self._misspelling_of(key) if what == "missing required key" else None
        if stray is not None:
            return self._error_at(stray, f"unknown key {stray!r}; did you mean {key!r}? "
                                         f"({what} {key!r})")
        close = difflib.get_close_matches(key, self.keys(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(name) for name in close)}?" if close else ""
        return self._error_at(None, f"{what} {key!r}{hint}")

    def _misspelling_of(self, key: str) -> Optional[str]:
        strays = [name for name in self.keys() if name not in self._read
                  and name not in self.asked and not name.startswith("$")]
        for stray in difflib.get_close_matches(key, strays, n=3, cutoff=0.8):
            if len(stray) != len(key) or sorted(stray.lower()) == sorted(key.lower()):
                return stray  # a letter dropped, added or swapped, or another case
        return None

    def _error_at(self, key: Optional[str], message: str,
                  value: Optional[str] = None) -> ConfigError:
        found = self._find(key) if key is not None else None
        if found is None or found[1] is None:
            if key is not None and found is not None:
                message = f"{key}: {message}"
            reason = message + (f" (in template output of {self._context.via})"
                                if self._context.via else "")
            if self._is_view:
                reason += f" (reading {', '.join(self.sources)} for [{self.name}])"
            return ConfigError(reason, path=self.path, line=self.header_line, section=self.name)
        data, entry = found
        if self._is_view and data is not self._context:
            message += f" (read for [{self.name}])"
        return key_error(message, data, key, entry, value)
