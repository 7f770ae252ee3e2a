"""Parsing the template language: ``{% ... %}`` statements into nodes (spec §1.3).

A recursive descent, as N2D2's processSection, with ``{% include FILE %}`` parsed in place.
Nesting (statements and includes together) is bounded by ``MAX_NESTING`` and the statements
parsed by the load's :class:`Budget`, so a deep or exponentially including file fails with a
located ConfigError instead of a RecursionError or a hang.
"""

from __future__ import annotations

import bisect
import os
import re
from typing import Callable, Dict, List, Optional, Tuple

from n2prune.errors import ConfigError
from n2prune.ini.template_nodes import (MAX_NESTING, Block, Budget, Code, For, If, Include,
                                        Node, Set, included_from)

_SPLIT_CONTROL = re.compile(r"[ (),]+")
_KNOWN = "if, else, endif, for, endfor, block, endblock, set, endset, include"
_EXPECTED = {"if": ("else", "endif"), "else": ("endif",), "for": ("endfor",),
             "block": ("endblock",), "set": ("endset",)}


def real_path(path: str) -> str:
    """The path a cycle check compares (symbolic links resolved when the file exists)."""
    return os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)


Parsed = Dict[str, Tuple[List[Node], int]]  # real path -> (nodes, nesting height)


class Parser:
    """Parses one template text; ``opener`` reads included files, ``stack`` holds the real
    paths being parsed (for cycles), ``depth`` the nesting of the includer.

    An included file is parsed once per parse and shared (an :class:`Include` node, not a
    copy), so a file including another one twice at each of 40 levels stays small; rendering
    it still charges every node to the budget.
    """

    def __init__(self, text: str, path: str, opener: Callable[[str], str],
                 stack: Tuple[str, ...], budget: Budget, depth: int = 0,
                 parsed: Optional[Parsed] = None):
        self.text, self.path, self.opener, self.stack = text, path, opener, stack
        self.budget, self.depth, self.start_depth, self.deepest = budget, depth, depth, depth
        self.parsed: Parsed = {} if parsed is None else parsed
        self.newlines = [index for index, char in enumerate(text) if char == "\n"]

    def parse(self) -> List[Node]:
        """The nodes of the whole text."""
        self.budget.text(len(self.text), self.path, 1)
        return self.section(0, None)[0]

    def line_at(self, position: int) -> int:
        return bisect.bisect_left(self.newlines, position) + 1

    def error(self, message: str, position: int) -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line_at(position))

    def section(self, start: int, opener: Optional[Tuple[str, int]]
                ) -> Tuple[List[Node], int, str]:
        """Nodes up to the statement closing ``opener`` ("if", "for", ...); returns
        (nodes, position after the closer, closer word)."""
        nodes: List[Node] = []
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
            self.budget.step(self.path, self.line_at(begin))
            closer = self.closes(words, begin, opener)
            if closer:
                return nodes, position, closer
            position = self.statement(words, begin, position, nodes)

    def closes(self, words: List[str], begin: int, opener: Optional[Tuple[str, int]]) -> str:
        """The word if this statement ends the current section, else ""."""
        word = words[0]
        if word not in ("else", "endif", "endfor", "endblock", "endset"):
            return ""
        if len(words) > 1:
            raise self.error(f"bad {word} statement: {' '.join(words)!r} "
                             f"(expected just {{% {word} %}})", begin)
        if opener is None or word not in _EXPECTED[opener[0]]:
            inside = f"inside {opener[0]}" if opener else "outside any statement"
            if word == "else":
                raise self.error(f"else without if ({inside})", begin)
            raise self.error(f"{word} while not in {word[3:]} ({inside})", begin)
        return word

    def nested(self, position: int, opener: Tuple[str, int]) -> Tuple[List[Node], int, str]:
        """The body of a statement, one nesting level deeper."""
        if self.depth >= MAX_NESTING:
            raise self.error(f"statements nested more than {MAX_NESTING} deep", opener[1])
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        try:
            return self.section(position, opener)
        finally:
            self.depth -= 1

    def statement(self, words: List[str], begin: int, position: int,
                  nodes: List[Node]) -> int:
        """Parse one opening statement into ``nodes``; returns the position after it."""
        word, line = words[0], self.line_at(begin)
        node: Node
        if word == "if":
            if len(words) not in (3, 4):
                raise self.error("bad if statement: expected {% if VAR OP [VALUE] %}", begin)
            node = If(self.path, line, words[1], words[2], words[3] if len(words) == 4 else "")
            node.body, position, closer = self.nested(position, ("if", begin))
            if closer == "else":
                node.else_body, position, _ = self.nested(position, ("else", begin))
        elif word == "for":
            node = self.for_node(words, begin)
            node.body, position, _ = self.nested(position, ("for", begin))
        elif word in ("block", "set"):
            if len(words) != 2:
                raise self.error(f"bad {word} statement: expected {{% {word} NAME %}}", begin)
            node = (Block if word == "block" else Set)(self.path, line, words[1])
            node.body, position, _ = self.nested(position, (word, begin))
        elif word == "include":
            if len(words) != 2:
                raise self.error("bad include statement: expected {% include FILE %}", begin)
            node = self.include(words[1], begin)
        else:
            raise self.error(f"unknown control statement {{% {' '.join(words)} %}} "
                             f"(known: {_KNOWN})", begin)
        nodes.append(node)
        return position

    def for_node(self, words: List[str], begin: int) -> For:
        if len(words) < 5 or words[2] != "in" or words[3] != "range":
            raise self.error("bad for statement: expected "
                             "{% for I in range([START,] END) %}", begin)
        stop = words[5] if len(words) > 5 else ""
        return For(self.path, self.line_at(begin), words[1], words[4], stop)

    def include(self, name: str, begin: int) -> Include:
        # N2D2 opens FILE relative to the process working directory; we resolve it next to
        # the including template, so a model folder works from anywhere.
        path = name if os.path.isabs(name) else os.path.join(os.path.dirname(self.path), name)
        real = real_path(path)
        if real in self.stack:
            raise self.error(f"template include cycle: {name!r} includes itself "
                             f"({' -> '.join(self.stack + (real,))})", begin)
        if real not in self.parsed:
            self.parsed[real] = self.parse_included(path, real, begin)
        nodes, height = self.parsed[real]
        if self.depth + 1 + height > MAX_NESTING:
            raise self.error(f"includes and statements nested more than {MAX_NESTING} deep",
                             begin)
        self.deepest = max(self.deepest, self.depth + 1 + height)
        return Include(self.path, self.line_at(begin), nodes)

    def parse_included(self, path: str, real: str, begin: int) -> Tuple[List[Node], int]:
        """The nodes of included file ``path`` and how deep they nest."""
        try:
            text = self.opener(path)
        except ConfigError as error:
            raise self.error(f"could not open included template {path!r}: {error.reason}",
                             begin) from None
        parser = Parser(text, path, self.opener, self.stack + (real,), self.budget,
                        self.depth + 1, self.parsed)
        try:
            nodes = parser.parse()
        except ConfigError as error:
            raise included_from(error, self.path, self.line_at(begin)) from None
        return nodes, parser.deepest - parser.start_depth

    def code(self, start: int, end: int) -> Code:
        """Literal text between control statements, split at ``{{NAME}}``."""
        node = Code(self.path, self.line_at(start))
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

