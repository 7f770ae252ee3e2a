"""Reading INI text into sections, as N2D2's IniParser::load (spec §1.1-§1.3).

Lines are split as ``std::getline`` does, joined at a trailing backslash, cut at comments
outside quotes and stripped; ``[NAME] BASE...`` opens a section that copies its bases' raw
keys, and ``[NAME@file.tpl]`` renders a template with the section's keys (evaluated now) and
reads its output in place. Values stay raw; errors are collected and raised together.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from n2prune.errors import ConfigError, ConfigWarning
from n2prune.ini.evaluate import EvalError, evaluate, expand_env, located
from n2prune.ini.store import Entry, SectionData, SectionTable, key_error, short
from n2prune.ini.template import Budget, MAX_NESTING, Template, parse_template, read_template
from n2prune.ini.template_nodes import included_from

MAX_LISTED_ERRORS = 50
_WS = " \t\n\v\f\r"                     # C isspace
_SPECIAL = re.compile(r'["#;]')
_BASE_SPLIT = re.compile(r"[ \t]+")

Origins = Callable[[int], Tuple[str, int]]
Pending = Optional[Tuple[str, str, int, SectionData]]  # template name, path, line, section


def read_sections(table: SectionTable, text: str, path: str, environ: Mapping[str, str],
                  warn: Callable[[ConfigWarning], None]) -> None:
    """Add the sections of INI ``text`` (read from ``path``) to ``table``.

    Templates resolve next to ``path``, with ``${VAR}`` in their names taken from
    ``environ``; ``warn`` receives each ConfigWarning. Syntax errors are raised together in
    one ConfigError once the whole text is read.
    """
    _Reader(table, path, environ, warn).read_text(text)


def _getlines(text: str) -> List[str]:
    """Lines as ``std::getline`` yields them: split on LF only, no empty last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _joined(lines: List[str]) -> Iterator[Tuple[int, Optional[str]]]:
    """Lines joined at a trailing ``\\`` (a BOM dropped), as (index of the first, text);
    a continuation still open at the end yields (index of its first line, None)."""
    buffer: Optional[List[str]] = None
    first = 0
    for index, raw in enumerate(lines):
        if raw.startswith("\ufeff"):
            raw = raw[1:]
        if raw.endswith("\\"):
            if buffer is None:
                buffer, first = [], index
            buffer.append(raw[:-1])
        elif buffer is None:
            yield index, raw
        else:
            yield first, "".join(buffer) + raw
            buffer = None
    if buffer is not None:
        yield first, None


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


class _Reader:
    """Reads lines into a SectionTable as N2D2's IniParser::load does, collecting errors."""

    def __init__(self, table: SectionTable, path: str, environ: Mapping[str, str],
                 warn: Callable[[ConfigWarning], None]):
        self.table, self.path, self.environ, self.warn_sink = table, path, environ, warn
        self.errors: List[ConfigError] = []
        self.templates: Dict[str, Template] = {}
        self.stack: List[str] = []  # real paths of the templates being expanded
        self.includers: List[Tuple[str, int]] = []  # (path, line) of each [x@file.tpl]
        self.budget = Budget()  # shared by every template of the load
        self.base_dir = os.path.dirname(path) or "."

    def read_text(self, text: str) -> None:
        path = self.path
        self.parse(_getlines(text), lambda index: (path, index + 1), None, None)
        if self.errors:
            raise _combined(self.errors)

    def error(self, message: str, path: str, line: Optional[int], **fields) -> None:
        self.add(ConfigError(message, path=path, line=line, **fields))

    def add(self, error: ConfigError) -> None:
        """Record ``error``, adding "included from here" for each template includer."""
        for includer in reversed(self.includers):
            error = included_from(error, *includer)
        self.errors.append(error)

    def warn(self, message: str, path: str, line: Optional[int], **fields) -> None:
        self.warn_sink(ConfigWarning(message, path=path, line=line, **fields))

    def parse(self, lines: List[str], origins: Origins, parent: Optional[SectionData],
              via: Optional[str]) -> None:
        """Parse ``lines``; ``origins(i)`` is the (path, line) of line i. Like N2D2, lines
        before the first header go to the global section (also in template output)."""
        current = self.table.order[0]
        pending: Pending = None
        for at, raw in _joined(lines):
            path, line = origins(at)
            if raw is None:
                self.warn("the line continued with '\\' is still open at the end of the file "
                          "and is ignored (as N2D2 does)", path, line)
                continue
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
        if pending:
            self.template(*pending)

    def header(self, text: str, path: str, line: int, parent: Optional[SectionData],
               via: Optional[str]) -> Tuple[SectionData, Pending]:
        """``[NAME] BASE...`` -> (section data, pending template or None)."""
        close = text.index("]")
        name = text[1:close]
        bases = [base for base in _BASE_SPLIT.split(text[close + 1:]) if base]
        pieces = [piece for piece in name.split("@") if piece]
        template = None
        if len(pieces) == 2:
            name, template = pieces
        data = SectionData(name, path, line, -1, via)
        existing = self.table.by_name.get(name)
        if existing is not None:
            first = (f"at {existing.path}:{existing.header_line}" if existing.header_line
                     else "as the global section")
            self.error(f"section [{name}] already exists (defined {first}); a section cannot "
                       "be reopened", path, line)
        for base in bases:
            self.inherit(data, base, path, line)
        data.bases = bases
        if parent is not None:
            data.entries["$PARENT_SECTION_NAME"] = Entry(parent.name, path, line, name, via)
            data.read.add("$PARENT_SECTION_NAME")
        if existing is not None:
            return data, None  # keys go to a throwaway section; no template, no cascade
        self.table.add(data)
        return data, ((template, path, line, data) if template else None)

    def inherit(self, data: SectionData, base: str, path: str, line: int) -> None:
        """Copy the base's raw entries (a snapshot); the first listed base wins."""
        source = self.table.by_name.get(base)
        if source is None:
            close = difflib.get_close_matches(base, self.table.names(), n=1, cutoff=0.6)
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

    def property(self, current: SectionData, text: str, path: str, line: int,
                 via: Optional[str]) -> None:
        """``KEY=VALUE`` (one pair of enclosing quotes dropped) into ``current``."""
        equal = text.find("=")
        if equal < 0:
            self.error(f"missing value for property (no '='): {short(text)!r}", path, line,
                       section=current.name)
            return
        key, value = text[:equal].rstrip(_WS), text[equal + 1:].lstrip(_WS)
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        previous = current.entries.get(key)
        # N2D2 also warns when a section overrides an inherited key; that is what inheritance
        # is for (every ResNet block does it), so only a key repeated in one section warns.
        if previous is not None and previous.section == current.name:
            self.warn(f"overriding property (previous value was {short(previous.value)!r}, "
                      f"at {previous.path}:{previous.line})", path, line,
                      section=current.name, key=key)
        current.entries[key] = Entry(value, path, line, current.name, via)
        if key.startswith("$"):
            current.read.add(key)

    def template(self, name: str, path: str, line: int, data: SectionData) -> None:
        """Render template ``name`` with the section's evaluated keys and parse the output."""
        expanded, unset = expand_env(name, self.environ)
        resolved = expanded if os.path.isabs(expanded) else f"{self.base_dir}/{expanded}"
        real = os.path.realpath(resolved)
        if real in self.stack:
            self.error(f"template cycle: {resolved!r} includes itself", path, line,
                       section=data.name)
            return
        if len(self.stack) >= MAX_NESTING:
            self.error(f"templates nested more than {MAX_NESTING} deep", path, line,
                       section=data.name)
            return
        params = self.parameters(data, resolved)
        template = self.parsed(resolved, unset, path, line, data)
        if params is None or template is None:
            return
        self.includers.append((path, line))
        try:
            try:
                rendered = template.render(params, self.budget)
            except ConfigError as error:
                self.add(error)
                return
            via = f"[{data.name}] at {path}:{line}" + (f", {data.via}" if data.via else "")
            self.stack.append(real)
            try:
                self.parse(rendered.lines(), lambda index: rendered.origins[index], data, via)
            finally:
                self.stack.pop()
        finally:
            self.includers.pop()

    def parameters(self, data: SectionData, resolved: str) -> Optional[Dict[str, str]]:
        """Template parameters: every key of the section, evaluated now (at load time)."""
        params = {"SECTION_NAME": data.name, "SECTION_FILE_NAME": resolved}
        ok = True
        for key, entry in data.entries.items():
            if key in params:
                self.errors.append(key_error(f"template parameter {key} already exists (it is "
                                             "set by the template include)", data, key, entry))
                ok = False
                continue
            try:
                params[key] = evaluate(self.table, data, key, entry, data)
            except EvalError as error:
                self.errors.append(located(
                    error, (data, key, entry),
                    " (template parameters are evaluated when the file is loaded)"))
                ok = False
            data.read.add(key)
        return params if ok else None

    def parsed(self, resolved: str, unset: List[str], path: str, line: int,
               data: SectionData) -> Optional[Template]:
        """The parsed template file ``resolved`` (cached); None after an error."""
        if resolved in self.templates:
            return self.templates[resolved]
        try:
            text = read_template(resolved)
        except ConfigError as error:
            hint = "".join(f" (environment variable {var} is not set)" for var in unset)
            self.error(f"could not open template file {resolved!r}: {error.detail}{hint}", path, line, section=data.name)
            return None
        self.includers.append((path, line))
        try:
            template = parse_template(text, resolved, _stack=tuple(self.stack),
                                      budget=self.budget)
        except ConfigError as error:
            self.add(error)
            return None
        finally:
            self.includers.pop()
        self.templates[resolved] = template
        return template
