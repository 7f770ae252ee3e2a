"""N2D2's TemplateParser: the ``[sec@file.tpl]`` template language (spec §1.3).

``{{NAME}}`` substitutes a parameter; control statements are ``{% if VAR OP [VALUE] %}``
(``==``, ``!=``, ``exists``, ``not_exists``) ``{% else %}`` ``{% endif %}``,
``{% for I in range([START,] END) %}`` ``{% endfor %}``, ``{% block ARR %}`` ``{% endblock %}``,
``{% set VAR %}`` ``{% endset %}`` and ``{% include FILE %}``.

Rendering keeps, for every output line, the template file and line it came from, so the INI
reader can locate errors in generated sections. Errors are ConfigErrors located in the
template.

>>> t = parse_template("[{{N}}_a]\\n{% if P exists %}P={{P}}\\n{% endif %}", "t.tpl")
>>> t.render({"N": "blk", "P": "1"}).text
'[blk_a]\\nP=1\\n'
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from n2prune.errors import ConfigError

MAX_OUTPUT_CHARS = 20_000_000   # a runaway for/block loop fails instead of eating memory
_SPLIT_CONTROL = re.compile(r"[ (),]+")
_CPP_DOUBLE = re.compile(r"^[ \t\n\v\f\r]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_CPP_INT = re.compile(r"^[ \t\n\v\f\r]*[+-]?\d+$")
_KNOWN = "if, else, endif, for, endfor, block, endblock, set, endset, include"

Params = Dict[str, str]
Origin = Tuple[str, int]


@dataclass
class Rendered:
    """Rendered text, and for each of its lines the (template path, line) it came from."""

    text: str
    origins: List[Origin]

    def lines(self) -> List[str]:
        """The lines as ``std::getline`` reads them (no empty line after a final newline)."""
        lines = self.text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines


class _Output:
    """Rendered text as segments (text, path, line, literal) plus a size guard."""

    def __init__(self) -> None:
        self.segments: List[Tuple[str, str, int, bool]] = []
        self.size = 0

    def add(self, text: str, path: str, line: int, literal: bool) -> None:
        if text:
            self.size += len(text)
            if self.size > MAX_OUTPUT_CHARS:
                raise ConfigError(f"template output exceeds {MAX_OUTPUT_CHARS} characters "
                                  "(runaway for/block loop?)", path=path, line=line)
            self.segments.append((text, path, line, literal))

    def text(self) -> str:
        return "".join(segment[0] for segment in self.segments)

    def rendered(self) -> Rendered:
        """Join the segments; literal text advances its source line at each newline."""
        origins: List[Origin] = []
        at_line_start = True
        for text, path, line, literal in self.segments:
            pieces = text.split("\n")
            for number, piece in enumerate(pieces):
                if number > 0:
                    at_line_start = True
                if at_line_start and (piece or number < len(pieces) - 1):
                    origins.append((path, line + number if literal else line))
                    at_line_start = False
        text = self.text()
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        while len(origins) < lines:  # defensive: never index past the map
            origins.append(origins[-1] if origins else ("<template>", 1))
        return Rendered(text, origins)


@dataclass
class _Node:
    path: str
    line: int

    def render(self, out: _Output, params: Params) -> None:
        raise NotImplementedError


@dataclass
class _Code(_Node):
    """Literal text with ``{{NAME}}`` substitutions: pieces are (kind, text, line)."""

    pieces: List[Tuple[str, str, int]] = field(default_factory=list)

    def render(self, out: _Output, params: Params) -> None:
        for kind, text, line in self.pieces:
            if kind == "text":
                out.add(text, self.path, line, True)
            elif kind == "var":
                if text not in params:
                    raise ConfigError(f"undefined variable name {{{{{text}}}}}"
                                      f"{_known_names(params)}", path=self.path, line=line)
                out.add(params[text], self.path, line, False)
            else:
                raise ConfigError(text, path=self.path, line=line)


@dataclass
class _If(_Node):
    var: str = ""
    op: str = ""
    value: str = ""
    body: List[_Node] = field(default_factory=list)
    else_body: Optional[List[_Node]] = None

    def render(self, out: _Output, params: Params) -> None:
        if self._holds(self.op, params):
            _render_all(self.body, out, params)
        # N2D2 turns {% else %} into a second if with the opposite operator, tested after
        # the first branch ran (so a {% set %} there can change the outcome).
        if self.else_body is not None and self._holds(_OPPOSITE.get(self.op, ""), params):
            _render_all(self.else_body, out, params)

    def _holds(self, op: str, params: Params) -> bool:
        if op == "exists":
            return self.var in params
        if op == "not_exists":
            return self.var not in params
        if op not in ("==", "!="):
            raise ConfigError(f"unknown operator {self.op!r} in if statement "
                              "(known: ==, !=, exists, not_exists)", path=self.path,
                              line=self.line)
        if self.var not in params:
            raise ConfigError(f"undefined variable name {self.var!r} in if statement"
                              f"{_known_names(params)}", path=self.path, line=self.line)
        return (params[self.var] == self.value) == (op == "==")


_OPPOSITE = {"==": "!=", "!=": "==", "exists": "not_exists", "not_exists": "exists"}


@dataclass
class _For(_Node):
    var: str = ""
    start: str = ""
    stop: str = ""
    body: List[_Node] = field(default_factory=list)

    def render(self, out: _Output, params: Params) -> None:
        if self.var in params:
            raise ConfigError(f"for loop variable {self.var!r} already exists in this "
                              "context", path=self.path, line=self.line)
        start, stop = self._number(self.start, params), 0.0
        if self.stop:
            stop = self._number(self.stop, params)
        else:
            start, stop = 0.0, start
        value = start
        while value < stop:
            params[self.var] = cpp_double(value)
            _render_all(self.body, out, params)
            value += 1.0
        params.pop(self.var, None)

    def _number(self, word: str, params: Params) -> float:
        text = params.get(word, word)
        if not _CPP_DOUBLE.match(text):
            raise ConfigError(f"unreadable loop range value {text!r}", path=self.path,
                              line=self.line)
        return float(text)


@dataclass
class _Block(_Node):
    var: str = ""
    body: List[_Node] = field(default_factory=list)

    def render(self, out: _Output, params: Params) -> None:
        if self.var not in params:
            raise ConfigError(f"undefined variable name {self.var!r} in block statement"
                              f"{_known_names(params)}", path=self.path, line=self.line)
        text = params[self.var]
        if not _CPP_INT.match(text) or abs(int(text)) >= 2 ** 31:
            raise ConfigError(f"unreadable size value {text!r} for block variable "
                              f"{self.var!r}", path=self.path, line=self.line)
        for index in range(int(text)):
            prefix = f"{self.var}[{index}]"
            local = dict(params)  # a block iteration gets its own copy (N2D2 does too)
            local["#"] = str(index)
            for name, value in params.items():
                if name.startswith(prefix):
                    local[name[len(prefix):]] = value
            _render_all(self.body, out, local)


@dataclass
class _Set(_Node):
    var: str = ""
    body: List[_Node] = field(default_factory=list)

    def render(self, out: _Output, params: Params) -> None:
        inner = _Output()
        _render_all(self.body, inner, params)
        params[self.var] = inner.text()


def _render_all(nodes: Sequence[_Node], out: _Output, params: Params) -> None:
    for node in nodes:
        node.render(out, params)


def _known_names(params: Params) -> str:
    names = sorted(name for name in params if not name.startswith("$"))
    return f" (defined: {', '.join(names)})" if names else ""


def cpp_double(value: float) -> str:
    """A double as ``std::ostream << double`` prints it: ``0``, ``1``, ``2.5``, ``1e+06``."""
    return "%g" % value


@dataclass
class Template:
    """A parsed template: call :meth:`render` with its parameters."""

    path: str
    nodes: List[_Node]

    def render(self, params: Params) -> Rendered:
        """Render with a copy of ``params`` (for loops and set statements change it)."""
        out = _Output()
        _render_all(self.nodes, out, dict(params))
        return out.rendered()


def parse_template(text: str, path: str, opener: Optional[Callable[[str], str]] = None,
                   _stack: Tuple[str, ...] = ()) -> Template:
    """Parse template ``text`` read from ``path``.

    ``{% include FILE %}`` is resolved relative to the including template's directory (N2D2
    uses the process working directory; resolving next to the includer is the predictable,
    safer choice) and read with ``opener`` (default: read the file as UTF-8).
    """
    parser = _Parser(text, path, opener or _read_file, _stack + (_real(path),))
    nodes, end, closer = parser.section(0, None)
    return Template(path, nodes)


def render_file(path: str, params: Params) -> Rendered:
    """Read, parse and render the template file ``path``."""
    return parse_template(_read_file(path), path).render(params)


def _read_file(path: str) -> str:
    try:
        with open(path, "rb") as stream:
            return stream.read().decode("utf-8", "surrogateescape")
    except OSError as error:
        raise ConfigError(f"could not open template file: {error.strerror}",
                          path=path) from None


def _real(path: str) -> str:
    return os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)


class _Parser:
    """Recursive descent over ``{% ... %}`` statements, as N2D2's processSection."""

    def __init__(self, text: str, path: str, opener: Callable[[str], str],
                 stack: Tuple[str, ...]):
        self.text, self.path, self.opener, self.stack = text, path, opener, stack
        self.newlines = [index for index, char in enumerate(text) if char == "\n"]

    def line_at(self, position: int) -> int:
        return bisect.bisect_left(self.newlines, position) + 1

    def error(self, message: str, position: int) -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line_at(position))

    def section(self, start: int, opener: Optional[Tuple[str, int]]
                ) -> Tuple[List[_Node], int, str]:
        """Nodes up to the statement closing ``opener`` ("if", "for", ...); returns
        (nodes, position after the closer, closer word)."""
        nodes: List[_Node] = []
        position = start
        while True:
            begin = self.text.find("{%", position)
            if begin < 0:
                nodes.append(self.code(position, len(self.text)))
                if opener is not None:
                    word = "if" if opener[0] == "else" else opener[0]
                    raise self.error(f"missing end{word} for this {word} statement", opener[1])
                return nodes, len(self.text), ""
            nodes.append(self.code(position, begin))
            end = self.text.find("%}", begin + 2)
            if end < 0:
                raise self.error("unterminated control statement '{%' (no '%}')", begin)
            words = [word for word in _SPLIT_CONTROL.split(self.text[begin + 2:end]) if word]
            position = end + 2
            if not words:
                raise self.error("empty control statement {% %}", begin)
            closer = self.closes(words, begin, opener)
            if closer:
                return nodes, position, closer
            position = self.statement(words, begin, position, nodes)

    def closes(self, words: List[str], begin: int, opener: Optional[Tuple[str, int]]) -> str:
        """The word if this statement ends the current section, else ""."""
        word = words[0]
        expected = {"if": ("else", "endif"), "else": ("endif",), "for": ("endfor",),
                    "block": ("endblock",), "set": ("endset",)}
        if word not in ("else", "endif", "endfor", "endblock", "endset"):
            return ""
        if len(words) > 1:
            raise self.error(f"bad {word} statement: {' '.join(words)!r} "
                             f"(expected just {{% {word} %}})", begin)
        if opener is None or word not in expected[opener[0]]:
            inside = f"inside {opener[0]}" if opener else "outside any statement"
            if word == "else":
                raise self.error(f"else without if ({inside})", begin)
            raise self.error(f"{word} while not in {word[3:]} ({inside})", begin)
        return word

    def statement(self, words: List[str], begin: int, position: int,
                  nodes: List[_Node]) -> int:
        """Parse one opening statement into ``nodes``; returns the position after it."""
        word, line = words[0], self.line_at(begin)
        if word == "if":
            if len(words) not in (3, 4):
                raise self.error("bad if statement: expected {% if VAR OP [VALUE] %}", begin)
            node = _If(self.path, line, words[1], words[2], words[3] if len(words) == 4 else "")
            node.body, position, closer = self.section(position, ("if", begin))
            if closer == "else":
                node.else_body, position, _ = self.section(position, ("else", begin))
        elif word == "for":
            node = self.for_node(words, begin)
            node.body, position, _ = self.section(position, ("for", begin))
        elif word in ("block", "set"):
            if len(words) != 2:
                raise self.error(f"bad {word} statement: expected {{% {word} NAME %}}", begin)
            node = (_Block if word == "block" else _Set)(self.path, line, words[1])
            node.body, position, _ = self.section(position, (word, begin))
        elif word == "include":
            if len(words) != 2:
                raise self.error("bad include statement: expected {% include FILE %}", begin)
            nodes.extend(self.include(words[1], begin))
            return position
        else:
            raise self.error(f"unknown control statement {{% {' '.join(words)} %}} "
                             f"(known: {_KNOWN})", begin)
        nodes.append(node)
        return position

    def for_node(self, words: List[str], begin: int) -> _For:
        if len(words) < 5 or words[2] != "in" or words[3] != "range":
            raise self.error("bad for statement: expected "
                             "{% for I in range([START,] END) %}", begin)
        stop = words[5] if len(words) > 5 else ""
        return _For(self.path, self.line_at(begin), words[1], words[4], stop)

    def include(self, name: str, begin: int) -> List[_Node]:
        # N2D2 opens FILE relative to the process working directory; we resolve it next to
        # the including template, so a model folder works from anywhere.
        path = name if os.path.isabs(name) else os.path.join(os.path.dirname(self.path), name)
        if _real(path) in self.stack:
            raise self.error(f"template include cycle: {name!r} includes itself "
                             f"({' -> '.join(self.stack + (_real(path),))})", begin)
        try:
            text = self.opener(path)
        except ConfigError as error:
            raise self.error(f"could not open included template {path!r}: {error.reason}",
                             begin) from None
        return parse_template(text, path, self.opener, self.stack).nodes

    def code(self, start: int, end: int) -> _Code:
        """Literal text between control statements, split at ``{{NAME}}``."""
        node = _Code(self.path, self.line_at(start))
        position = start
        while position < end:
            begin = self.text.find("{{", position, end)
            if begin < 0:
                break
            node.pieces.append(("text", self.text[position:begin], self.line_at(position)))
            close = self.text.find("}}", begin + 2, end)
            if close < 0:
                snippet = self.text[begin:begin + 20]
                node.pieces.append(("error", f"missing closing braces '}}}}' near {snippet!r}",
                                    self.line_at(begin)))
                return node
            node.pieces.append(("var", self.text[begin + 2:close], self.line_at(begin)))
            position = close + 2
        node.pieces.append(("text", self.text[position:end], self.line_at(position)))
        return node
