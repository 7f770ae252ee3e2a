"""The template language's nodes and their rendering, under a work budget (spec §1.3).

A parsed template is a list of nodes (literal text with ``{{NAME}}``, if, for, block, set).
Rendering writes text segments with their (template path, line) to an :class:`_Output` and
charges a :class:`Budget` shared by a whole load, so a loop that produces no text still ends:
every node rendered and every loop iteration is a step, every character produced (``{% set %}``
bodies included) counts, and both are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from n2prune.errors import ConfigError

# The bounds of one load (all templates it renders together). The stock N2D2 ResNet-18 uses
# 44 steps and 5,400 characters; these leave room for networks 10,000 times larger while a
# runaway loop fails within about a second (2M steps ~ 1 s of pure-Python rendering here).
MAX_STEPS = 2_000_000          # nodes rendered + loop iterations (+ parameters copied per block)
MAX_OUTPUT_CHARS = 20_000_000  # characters produced, {% set %} bodies included
MAX_NESTING = 100              # statements inside statements, include depth included

_CPP_DOUBLE = re.compile(r"^[ \t\n\v\f\r]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_CPP_INT = re.compile(r"^[ \t\n\v\f\r]*[+-]?\d+$")

Params = Dict[str, str]
Origin = Tuple[str, int]


class Budget:
    """The work one load may spend on templates: steps and characters."""

    def __init__(self, max_steps: Optional[int] = None, max_chars: Optional[int] = None):
        self.steps, self.chars = 0, 0
        self.max_steps = MAX_STEPS if max_steps is None else max_steps
        self.max_chars = MAX_OUTPUT_CHARS if max_chars is None else max_chars

    def step(self, path: str, line: int, count: int = 1) -> None:
        """Charge ``count`` steps to the statement at ``path:line``."""
        self.steps += count
        if self.steps > self.max_steps:
            raise ConfigError(f"template rendering exceeds {self.max_steps} steps (runaway "
                              "for/block loop?)", path=path, line=line)

    def text(self, size: int, path: str, line: int) -> None:
        """Charge ``size`` characters produced by the text at ``path:line``."""
        self.chars += size
        if self.chars > self.max_chars:
            raise ConfigError(f"template output exceeds {self.max_chars} characters "
                              "(runaway for/block loop or growing set?)", path=path, line=line)


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
    """Rendered text as segments (text, path, line, literal), charged to ``budget``."""

    def __init__(self, budget: Budget) -> None:
        self.segments: List[Tuple[str, str, int, bool]] = []
        self.budget = budget

    def add(self, text: str, path: str, line: int, literal: bool) -> None:
        if text:
            self.budget.text(len(text), path, line)
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
class Node:
    """A statement or text of a template, at ``path:line``."""

    path: str
    line: int

    def render(self, out: _Output, params: Params) -> None:
        raise NotImplementedError


@dataclass
class Code(Node):
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
class If(Node):
    """``{% if VAR OP [VALUE] %} ... [{% else %} ...] {% endif %}``."""

    var: str = ""
    op: str = ""
    value: str = ""
    body: List[Node] = field(default_factory=list)
    else_body: Optional[List[Node]] = None

    def render(self, out: _Output, params: Params) -> None:
        if self._holds(self.op, params):
            render_all(self.body, out, params)
        # N2D2 turns {% else %} into a second if with the opposite operator, tested after
        # the first branch ran (so a {% set %} there can change the outcome).
        if self.else_body is not None and self._holds(_OPPOSITE.get(self.op, ""), params):
            render_all(self.else_body, out, params)

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
class For(Node):
    """``{% for I in range([START,] END) %}``: doubles, as N2D2 counts (``+= 1.0``)."""

    var: str = ""
    start: str = ""
    stop: str = ""
    body: List[Node] = field(default_factory=list)

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
            # Each iteration is charged, so an empty body or a value stuck at 2**53 ends too.
            out.budget.step(self.path, self.line)
            params[self.var] = cpp_double(value)
            render_all(self.body, out, params)
            value += 1.0
        params.pop(self.var, None)

    def _number(self, word: str, params: Params) -> float:
        text = params.get(word, word)
        if not _CPP_DOUBLE.match(text):
            raise ConfigError(f"unreadable loop range value {text!r}", path=self.path,
                              line=self.line)
        return float(text)  # "1e999" is inf: the step budget ends such a loop


@dataclass
class Block(Node):
    """``{% block ARR %}``: one pass per index, with ``ARR[i]KEY`` visible as ``KEY``."""

    var: str = ""
    body: List[Node] = field(default_factory=list)

    def render(self, out: _Output, params: Params) -> None:
        if self.var not in params:
            raise ConfigError(f"undefined variable name {self.var!r} in block statement"
                              f"{_known_names(params)}", path=self.path, line=self.line)
        text = params[self.var]
        if not _CPP_INT.match(text) or abs(int(text)) >= 2 ** 31:
            raise ConfigError(f"unreadable size value {text!r} for block variable "
                              f"{self.var!r}", path=self.path, line=self.line)
        for index in range(int(text)):
            # An iteration copies and scans every parameter: charge that work too.
            out.budget.step(self.path, self.line, 1 + len(params))
            prefix = f"{self.var}[{index}]"
            local = dict(params)  # a block iteration gets its own copy (N2D2 does too)
            local["#"] = str(index)
            for name, value in params.items():
                if name.startswith(prefix):
                    local[name[len(prefix):]] = value
            render_all(self.body, out, local)


@dataclass
class Set(Node):
    """``{% set VAR %}BODY{% endset %}``: VAR becomes the rendered body."""

    var: str = ""
    body: List[Node] = field(default_factory=list)

    def render(self, out: _Output, params: Params) -> None:
        inner = _Output(out.budget)
        render_all(self.body, inner, params)
        params[self.var] = inner.text()


@dataclass
class Include(Node):
    """``{% include FILE %}``: the included file's nodes (shared, parsed once)."""

    body: List[Node] = field(default_factory=list)

    def render(self, out: _Output, params: Params) -> None:
        try:
            render_all(self.body, out, params)
        except ConfigError as error:
            raise included_from(error, self.path, self.line) from None


def included_from(error: ConfigError, path: str, line: Optional[int]) -> ConfigError:
    """``error`` with a compiler-style ``path:line: included from here`` line added."""
    note = f"{path}:{line}: included from here" if line is not None else \
        f"{path}: included from here"
    located = ConfigError(f"{error.reason}\n{note}", path=error.path, line=error.line,
                          section=error.section, key=error.key, value=error.value)
    located.include_chain = getattr(error, "include_chain", []) + [(path, line)]
    return located


def render_all(nodes: Sequence[Node], out: _Output, params: Params) -> None:
    """Render ``nodes`` in order, one step each."""
    for node in nodes:
        out.budget.step(node.path, node.line)
        node.render(out, params)


def _known_names(params: Params) -> str:
    names = sorted(name for name in params if not name.startswith("$"))
    return f" (defined: {', '.join(names)})" if names else ""


def cpp_double(value: float) -> str:
    """A double as ``std::ostream << double`` prints it: ``0``, ``1``, ``2.5``, ``1e+06``."""
    return "%g" % value
