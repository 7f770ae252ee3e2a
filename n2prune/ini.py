"""N2D2's INI network files: text -> sections, lazily evaluated values (spec §1).

``load(path)`` reads a file the way N2D2's IniParser does (continuation lines, comments,
quotes, ``[NAME] BASE...`` inheritance, ``[sec@file.tpl]`` templates) and returns an
:class:`IniFile`. Values stay raw until read; each read evaluates ``[S]K`` references, then
``${VAR}`` variables, then ``$(...)`` expressions, in the context of the section being read.
Every key remembers its file and line, so errors say where; keys never read are listed by
:meth:`Section.unread_keys` for the unknown-key check.

>>> ini = loads("$N=4\\n[a]\\nX=$(${N} * 2)\\n[b] a\\nY=[a]X")
>>> ini["b"]["X"], ini["b"]["Y"]
('8', '8')
"""

from __future__ import annotations

import difflib
import numbers
import os
import re
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from n2prune import expr
from n2prune.errors import ConfigError, ConfigWarning
from n2prune.params import REQUIRED
from n2prune.registry import did_you_mean
from n2prune.template import Template, parse_template
from n2prune.values import read_text

# Keys whose value goes through process-environment expansion after evaluation (§1.5).
PATH_KEYS = frozenset({"DataPath", "LabelPath", "CachePath", "LabelsMapping", "ROIFile",
                       "ROIDir", "ROIExtension", "AnchorJSON", "File"})
_WS = " \t\n\v\f\r"                     # C isspace
_SPECIAL = re.compile(r'["#;]')
_WORD_END = re.compile(r"[ \t\n\v\f\r]")
_BASE_SPLIT = re.compile(r"[ \t]+")
MAX_DEPTH = 64                          # nested references/variables (N2D2 would crash)
MAX_SUBSTITUTIONS = 10_000              # per value (N2D2 would loop forever)
MAX_VALUE_CHARS = 1_000_000

Origins = Callable[[int], Tuple[str, int]]


class _Entry:
    """One raw ``key=value`` line: where it was written and in which section."""

    __slots__ = ("value", "path", "line", "section", "via")

    def __init__(self, value: str, path: str, line: Optional[int], section: str,
                 via: Optional[str]):
        self.value, self.path, self.line, self.section, self.via = value, path, line, section, via


class _Data:
    """Storage of one section: raw entries (inherited included), computed values, read keys."""

    def __init__(self, name: str, path: str, header_line: Optional[int], index: int,
                 via: Optional[str] = None):
        self.name, self.path, self.header_line, self.index = name, path, header_line, index
        self.via = via
        self.entries: Dict[str, _Entry] = {}
        self.computed: Dict[str, str] = {}
        self.read: set = set()
        self.bases: List[str] = []
        self.used_as_base = False


class _EvalError(Exception):
    """An evaluation failure at the innermost key whose text caused it."""

    def __init__(self, reason: str, where: Tuple[_Data, str, _Entry]):
        super().__init__(reason)
        self.reason, self.where = reason, where


def load(path: str, environ: Optional[Mapping[str, str]] = None) -> "IniFile":
    """Read the INI file ``path``; syntax errors are reported together in one ConfigError.

    ``environ`` (default ``os.environ``) expands ``${VAR}`` in template paths and path keys.
    """
    try:
        with open(path, "rb") as stream:
            text = stream.read().decode("utf-8", "surrogateescape")
    except OSError as error:
        raise ConfigError(f"could not open INI file: {error.strerror}", path=path) from None
    return loads(text, path, environ)


def loads(text: str, path: str = "<string>",
          environ: Optional[Mapping[str, str]] = None) -> "IniFile":
    """Read INI ``text`` as if it were the file ``path`` (templates resolve next to it)."""
    ini = IniFile(path, os.environ if environ is None else environ)
    _Loader(ini).load_text(text)
    return ini


class IniFile:
    """A loaded INI file: sections in file order (global section ``""`` first)."""

    def __init__(self, path: str, environ: Mapping[str, str]):
        self.path = path
        self.environ = environ
        self.warnings: List[ConfigWarning] = []
        self._data: Dict[str, _Data] = {}
        self._order: List[_Data] = []
        self._wrappers: Dict[str, Section] = {}
        self._longest_name = 0
        self._add_data(_Data("", path, None, 0))

    def _add_data(self, data: _Data) -> None:
        self._longest_name = max(self._longest_name, len(data.name))
        data.index = len(self._order)
        self._data[data.name] = data
        self._order.append(data)

    def section_names(self) -> List[str]:
        """Section names in file order, template output in place; ``""`` (global) first."""
        return [data.name for data in self._order]

    def sections(self) -> List["Section"]:
        return [self[data.name] for data in self._order]

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self):
        return iter(self.section_names())

    def __getitem__(self, name: str) -> "Section":
        if name not in self._wrappers:
            data = self._data.get(name)
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
        layers = []
        for name in section_names:
            if name not in self._data:
                raise ConfigError(did_you_mean(name, self.section_names(), "section"),
                                  path=path_for_errors or self.path)
            layers.append(self._data[name])
        if context not in self._data:
            raise ConfigError(did_you_mean(context, self.section_names(), "section"),
                              path=path_for_errors or self.path)
        return Section(self, layers, self._data[context], own_read=set(),
                       path=path_for_errors)

    def unused_sections(self) -> List[str]:
        """Sections none of whose keys was read (N2D2's "Notice: Unused section").

        Unlike N2D2, a section used as a base by another one counts as used.
        """
        return [data.name for data in self._order
                if not data.read and not data.computed and not data.used_as_base]

    def _warn(self, warning: ConfigWarning) -> None:
        self.warnings.append(warning)
        warnings.warn(warning, stacklevel=3)

    # -- evaluation (§1.5) ----------------------------------------------------------------

    def _evaluate(self, data: _Data, key: str, entry: _Entry, context: _Data) -> str:
        """The fully evaluated value of ``entry`` (key ``key`` of ``data``) read in
        ``context``; raises _EvalError."""
        return self._value(data, key, entry, context, (), {})

    def _value(self, data: _Data, key: str, entry: _Entry, context: _Data,
               trail: Tuple, memo: Dict) -> str:
        frame = (id(data), key)
        if frame in memo:
            return memo[frame]
        where = (data, key, entry)
        if any(frame == seen for seen, _ in trail):
            chain = [label for seen, label in trail[[seen for seen, _ in trail].index(frame):]]
            raise _EvalError("circular reference: "
                             + " -> ".join(chain + [f"[{data.name}]{key}"]), where)
        if len(trail) >= MAX_DEPTH:
            raise _EvalError(f"references nested more than {MAX_DEPTH} deep", where)
        trail = trail + ((frame, f"[{data.name}]{key}"),)
        text = self._references(entry.value, context, trail, memo, where)
        text, complete = self._variables(text, context, trail, memo, where)
        if complete:
            text = self._expressions(text, where)
        memo[frame] = text
        return text

    def _references(self, text: str, context: _Data, trail, memo, where) -> str:
        """Step 1: ``[S]K`` (K ends at whitespace); an unknown S or a lone ``[`` is text."""
        position, steps = 0, 0
        while True:
            start = text.find("[", position)
            if start < 0:
                return text
            close = text.find("]", start + 1)
            if close < 0:
                return text  # N2D2 loops forever here; we keep the text literally
            # A name longer than any section's cannot match: skipping it keeps long values
            # full of '[' linear.
            target = (self._data.get(text[start + 1:close])
                      if close - start - 1 <= self._longest_name else None)
            if target is None:
                position = start + 1
                continue
            match = _WORD_END.search(text, close + 1)
            end = match.start() if match else len(text)
            value = self._reference(target, text[close + 1:end], context, trail, memo, where)
            text = text[:start] + value + text[end:]
            steps = self._count(steps, text, where)
            position = start  # N2D2 rescans the inserted text

    def _reference(self, target: _Data, key: str, context: _Data, trail, memo, where) -> str:
        if key in target.computed:
            return target.computed[key]
        entry = target.entries.get(key)
        if entry is None:
            hint = ""
            if key.startswith("_"):
                hint = " (computed values such as _NbOutputs exist only once that part of " \
                       "the network is built)"
            elif any(char in key for char in "*/+-)"):
                hint = " (a reference ends only at whitespace: write '[S]K * 2', not '[S]K*2')"
            raise _EvalError(f"property {key!r} not found in section [{target.name}]{hint}",
                             where)
        target.read.add(key)
        return self._value(target, key, entry, context, trail, memo)

    def _variables(self, text: str, context: _Data, trail, memo, where) -> Tuple[str, bool]:
        """Step 2: ``${NAME}``; unknown names stay, an unclosed ``${`` stops evaluation."""
        position, steps = 0, 0
        while True:
            start = text.find("${", position)
            if start < 0:
                return text, True
            end = text.find("}", start + 2)
            if end < 0:
                return text, False
            value = self._variable(text[start + 2:end], context, trail, memo)
            if value is None:
                position = end + 1
                continue
            text = text[:start] + value + text[end + 1:]
            steps = self._count(steps, text, where)
            position = start

    def _variable(self, name: str, context: _Data, trail, memo) -> Optional[str]:
        if name == "SECTION_NAME":
            return context.name
        if name == "PREV_SECTION_NAME":
            return self._previous_name(context)
        for data in (context, self._order[0]):
            entry = data.entries.get("$" + name)
            if entry is not None:
                return self._value(data, "$" + name, entry, context, trail, memo)
        return None

    def _previous_name(self, context: _Data) -> str:
        index = context.index
        if index <= 0:
            return ""
        previous = self._order[index - 1].name
        parent = context.entries.get("$PARENT_SECTION_NAME")
        if parent is not None and parent.value == previous and index >= 2:
            return self._order[index - 2].name  # a template's first section skips its includer
        return previous

    @staticmethod
    def _expressions(text: str, where) -> str:
        """Step 3: ``$(...)``, closed by naive parenthesis pairing."""
        position = 0
        while True:
            start = text.find("$(", position)
            if start < 0:
                return text
            opening, close = text.find("(", start + 2), text.find(")", start + 2)
            while 0 <= opening < close:
                opening, close = text.find("(", opening + 1), text.find(")", close + 1)
            if close < 0:
                return text
            inner = text[start + 2:close]
            try:
                result = expr.evaluate(inner)
            except ValueError as error:
                raise _EvalError(f"cannot evaluate $({inner}): {error}", where) from None
            text = text[:start] + result + text[close + 1:]
            position = start

    @staticmethod
    def _count(steps: int, text: str, where) -> int:
        if steps >= MAX_SUBSTITUTIONS or len(text) > MAX_VALUE_CHARS:
            raise _EvalError("too many substitutions (a reference or variable keeps "
                             "producing itself)", where)
        return steps + 1

    def _located(self, error: _EvalError, read: Tuple[_Data, str, _Entry],
                 note: str = "") -> ConfigError:
        """A ConfigError at the key whose text failed, naming the key being read."""
        data, key, entry = error.where
        reason = error.reason
        if (data, key) != read[:2]:
            outer = read[2]
            reason += f" (while reading [{read[0].name}] {read[1]} at {outer.path}:{outer.line})"
        return _key_error(reason + note, data, key, entry)


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[:limit - 3] + "..."


def _key_error(reason: str, data: _Data, key: str, entry: _Entry,
               value: Optional[str] = None) -> ConfigError:
    if entry.section != data.name:
        reason += f" (inherited from [{entry.section}])"
    if entry.via:
        reason += f" (in template output of {entry.via})"
    return ConfigError(reason, path=entry.path, line=entry.line, section=data.name, key=key,
                       value=_short(entry.value if value is None else value))


def _expand_env(text: str, environ: Mapping[str, str]) -> Tuple[str, List[str]]:
    """N2D2's Utils::expandEnvVars: ``${VAR}`` -> environment value or ""; (text, unset)."""
    unset: List[str] = []
    position = 0
    while True:
        start = text.find("${", position)
        if start < 0:
            return text, unset
        end = text.find("}", start + 2)
        if end < 0:
            return text, unset
        name = text[start + 2:end]
        value = environ.get(name)
        if value is None:
            unset.append(name)
            value = ""
        text = text[:start] + value + text[end + 1:]
        position = start + len(value)


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

    def __init__(self, ini: IniFile, layers: List[_Data], context: _Data,
                 own_read: Optional[set] = None, path: Optional[str] = None):
        self._ini, self._layers, self._context = ini, layers, context
        self._is_view = own_read is not None
        self._read = own_read if own_read is not None else context.read
        self.name = context.name
        self.path = path or context.path
        self.header_line = context.header_line
        self.bases = [] if self._is_view else list(context.bases)
        self.sources = [data.name for data in layers]  # the merged sections

    def __repr__(self) -> str:
        if self._is_view:
            return f"<view of {self.sources} for [{self.name}]>"
        return f"<Section [{self.name}] {self.path}:{self.header_line} ({len(self.keys())} keys)>"

    def _find(self, key: str) -> Optional[Tuple[_Data, Optional[_Entry]]]:
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
            text = self._ini._evaluate(data, key, entry, self._context)
        except _EvalError as error:
            note = f" (read for [{self.name}])" if self._is_view else ""
            raise self._ini._located(error, (data, key, entry), note) from None
        if key in PATH_KEYS:
            text = _expand_env(text, self._ini.environ)[0]
        return text

    def get(self, key: str, reader: Callable[..., Any] = read_text, default: Any = REQUIRED):
        """The value read by ``reader`` (an n2prune.values reader), or ``default`` when the
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
        close = difflib.get_close_matches(key, self.keys(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(name) for name in close)}?" if close else ""
        return self._error_at(None, f"{what} {key!r}{hint}")

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
        return _key_error(message, data, key, entry, value)


# -- loading (§1.1-§1.3) ------------------------------------------------------------------

MAX_LISTED_ERRORS = 50


def _getlines(text: str) -> List[str]:
    """Lines as ``std::getline`` yields them: split on LF only, no empty last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _strip_comment(line: str) -> Optional[str]:
    """Cut at the first ``;`` or ``#`` outside double quotes; None for an unclosed quote."""
    position = 0
    while True:
        match = _SPECIAL.search(line, position)
        if match is None:
            return line
        if match.group() != '"':
            return line[:match.start()]
        close = line.find('"', match.start() + 1)
        if close < 0:
            return None
        position = close + 1


def _combined(errors: List[ConfigError]) -> ConfigError:
    """One ConfigError listing every load error as ``path:line: ...``, first one first."""
    first = errors[0]
    if len(errors) == 1:
        first.errors = errors
        return first
    head = ConfigError(first.reason, section=first.section, key=first.key,
                       value=first.value).args[0]
    lines = [head] + [str(error) for error in errors[1:MAX_LISTED_ERRORS]]
    if len(errors) > MAX_LISTED_ERRORS:
        lines.append(f"... and {len(errors) - MAX_LISTED_ERRORS} more errors")
    combined = ConfigError("\n".join(lines), path=first.path, line=first.line)
    combined.errors = errors
    return combined


class _Loader:
    """Reads lines into an IniFile as N2D2's IniParser::load does, collecting errors."""

    def __init__(self, ini: IniFile):
        self.ini = ini
        self.errors: List[ConfigError] = []
        self.templates: Dict[str, Template] = {}
        self.stack: List[str] = []  # real paths of the templates being expanded
        self.base_dir = os.path.dirname(ini.path) or "."

    def load_text(self, text: str) -> None:
        path = self.ini.path
        self.parse(_getlines(text), lambda index: (path, index + 1), None, None)
        if self.errors:
            raise _combined(self.errors)

    def error(self, message: str, path: str, line: Optional[int], **fields) -> None:
        self.errors.append(ConfigError(message, path=path, line=line, **fields))

    def parse(self, lines: List[str], origins: Origins, parent: Optional[_Data],
              via: Optional[str]) -> None:
        """Parse ``lines``; ``origins(i)`` is the (path, line) of line i. Like N2D2, lines
        before the first header go to the global section (also in template output)."""
        current = self.ini._order[0]
        pending = None
        buffer: Optional[List[str]] = None
        first = 0
        for index, raw in enumerate(lines):
            if raw.startswith("\ufeff"):
                raw = raw[1:]
            if raw.endswith("\\"):
                if buffer is None:
                    buffer, first = [], index
                buffer.append(raw[:-1])
                continue
            at = index
            if buffer is not None:
                raw, at, buffer = "".join(buffer) + raw, first, None
            path, line = origins(at)
            text = _strip_comment(raw)
            if text is None:
                self.error(f"malformed line: unclosed '\"' (in section [{current.name}])",
                           path, line)
                continue
            text = text.strip(_WS)
            if not text:
                continue
            if text[0] == "[" and "]" in text:
                if pending:
                    self.template(*pending)
                current, pending = self.header(text, path, line, parent, via)
            else:
                self.property(current, text, path, line, via)
        if buffer is not None:
            self.warn("the line continued with '\\' is still open at the end of the file "
                      "and is ignored (as N2D2 does)", *origins(first))
        if pending:
            self.template(*pending)

    def warn(self, message: str, path: str, line: Optional[int], **fields) -> None:
        self.ini._warn(ConfigWarning(message, path=path, line=line, **fields))

    def header(self, text: str, path: str, line: int, parent: Optional[_Data],
               via: Optional[str]):
        """``[NAME] BASE...`` -> (section data, pending template or None)."""
        close = text.index("]")
        name = text[1:close]
        bases = [base for base in _BASE_SPLIT.split(text[close + 1:]) if base]
        pieces = [piece for piece in name.split("@") if piece]
        template = None
        if len(pieces) == 2:
            name, template = pieces
        data = _Data(name, path, line, -1, via)
        existing = self.ini._data.get(name)
        if existing is not None:
            first = (f"at {existing.path}:{existing.header_line}" if existing.header_line
                     else "as the global section")
            self.error(f"section [{name}] already exists (defined {first}); a section cannot "
                       "be reopened", path, line)
        for base in bases:
            self.inherit(data, base, path, line)
        data.bases = bases
        if parent is not None:
            data.entries["$PARENT_SECTION_NAME"] = _Entry(parent.name, path, line, name, via)
            data.read.add("$PARENT_SECTION_NAME")
        if existing is not None:
            return data, None  # keys go to a throwaway section; no template, no cascade
        self.ini._add_data(data)
        return data, ((template, path, line, data) if template else None)

    def inherit(self, data: _Data, base: str, path: str, line: int) -> None:
        """Copy the base's raw entries (a snapshot); the first listed base wins."""
        source = self.ini._data.get(base)
        if source is None:
            close = difflib.get_close_matches(base, self.ini.section_names(), n=1, cutoff=0.6)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            self.error(f"inherited section [{base}] does not exist for section [{data.name}] "
                       f"(a base must be defined earlier in the file){hint}", path, line)
            return
        source.used_as_base = True
        for key, entry in source.entries.items():
            if key not in data.entries:
                data.entries[key] = entry
                if key.startswith("$"):
                    data.read.add(key)

    def property(self, current: _Data, text: str, path: str, line: int,
                 via: Optional[str]) -> None:
        equal = text.find("=")
        if equal < 0:
            self.error(f"missing value for property (no '='): {_short(text)!r}", path, line,
                       section=current.name)
            return
        key, value = text[:equal].rstrip(_WS), text[equal + 1:].lstrip(_WS)
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        previous = current.entries.get(key)
        if previous is not None:
            origin = (f"inherited from [{previous.section}]" if previous.section != current.name
                      else f"at {previous.path}:{previous.line}")
            self.warn(f"overriding property (previous value was {_short(previous.value)!r}, "
                      f"{origin})", path, line, section=current.name, key=key)
        current.entries[key] = _Entry(value, path, line, current.name, via)
        if key.startswith("$"):
            current.read.add(key)

    def template(self, name: str, path: str, line: int, data: _Data) -> None:
        """Render template ``name`` with the section's evaluated keys and parse the output."""
        expanded, unset = _expand_env(name, self.ini.environ)
        resolved = expanded if os.path.isabs(expanded) else f"{self.base_dir}/{expanded}"
        real = os.path.realpath(resolved)
        if real in self.stack:
            self.error(f"template cycle: {resolved!r} includes itself", path, line,
                       section=data.name)
            return
        params = self.parameters(data, resolved)
        template = self.parsed(resolved, unset, path, line, data)
        if params is None or template is None:
            return
        note = f" (template included by [{data.name}] at {path}:{line})"
        try:
            rendered = template.render(params)
        except ConfigError as error:
            self.errors.append(ConfigError(error.reason + note, path=error.path,
                                           line=error.line))
            return
        via = f"[{data.name}] at {path}:{line}" + (f", {data.via}" if data.via else "")
        self.stack.append(real)
        try:
            self.parse(rendered.lines(), lambda index: rendered.origins[index], data, via)
        finally:
            self.stack.pop()

    def parameters(self, data: _Data, resolved: str) -> Optional[Dict[str, str]]:
        """Template parameters: every key of the section, evaluated now (at load time)."""
        params = {"SECTION_NAME": data.name, "SECTION_FILE_NAME": resolved}
        ok = True
        for key, entry in data.entries.items():
            if key in params:
                self.errors.append(_key_error(f"template parameter {key} already exists (it is "
                                              "set by the template include)", data, key, entry))
                ok = False
                continue
            try:
                params[key] = self.ini._evaluate(data, key, entry, data)
            except _EvalError as error:
                self.errors.append(self.ini._located(
                    error, (data, key, entry),
                    " (template parameters are evaluated when the file is loaded)"))
                ok = False
            data.read.add(key)
        return params if ok else None

    def parsed(self, resolved: str, unset: List[str], path: str, line: int,
               data: _Data) -> Optional[Template]:
        if resolved in self.templates:
            return self.templates[resolved]
        try:
            with open(resolved, "rb") as stream:
                text = stream.read().decode("utf-8", "surrogateescape")
        except OSError as error:
            hint = "".join(f" (environment variable {var} is not set)" for var in unset)
            self.error(f"could not open template file {resolved!r}: {error.strerror}{hint}",
                       path, line, section=data.name)
            return None
        try:
            template = parse_template(text, resolved, _stack=tuple(self.stack))
        except ConfigError as error:
            self.errors.append(ConfigError(
                f"{error.reason} (template included by [{data.name}] at {path}:{line})",
                path=error.path, line=error.line))
            return None
        self.templates[resolved] = template
        return template
