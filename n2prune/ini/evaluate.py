"""Lazy evaluation of an INI value, as N2D2's getPropertyValue (spec §1.5).

A raw value goes through three steps, in the context of the section being read:
``[S]K`` references, then ``${VAR}`` variables, then ``$(...)`` expressions. References and
variables evaluate their target the same way (recursively, memoised per read, with cycles
and runaway growth reported). Failures raise :class:`EvalError` at the innermost key whose
text caused them; :func:`located` turns one into a ConfigError.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

from n2prune.ini import expr
from n2prune.errors import ConfigError
from n2prune.ini.store import Entry, SectionData, SectionTable, key_error, short

MAX_DEPTH = 64                          # nested references/variables (N2D2 would crash)
# Per value read. The stock N2D2 files use a handful of substitutions per value; these bounds
# keep the worst value under about a second (N2D2 itself would loop forever or crash).
MAX_SUBSTITUTIONS = 10_000              # [S]K, ${VAR} and $(...) replaced, each kind
MAX_VALUE_CHARS = 1_000_000             # length of the text being evaluated
MAX_COPIED_CHARS = 50_000_000           # characters copied by [S]K / ${VAR} rescans
_WORD_END = re.compile(r"[ \t\n\v\f\r]")  # C isspace: a reference's key ends at one

Where = Tuple[SectionData, str, Entry]


class EvalError(Exception):
    """An evaluation failure at the innermost key whose text caused it."""

    def __init__(self, reason: str, where: Where):
        super().__init__(reason)
        self.reason, self.where = reason, where


def evaluate(table: SectionTable, data: SectionData, key: str, entry: Entry,
             context: SectionData) -> str:
    """The fully evaluated value of ``entry`` (key ``key`` of ``data``) read in
    ``context``; raises EvalError."""
    return _value(table, data, key, entry, context, (), {})


def located(error: EvalError, read: Where, note: str = "") -> ConfigError:
    """A ConfigError at the key whose text failed, naming the key being read."""
    data, key, entry = error.where
    reason = error.reason
    if (data, key) != read[:2]:
        outer = read[2]
        reason += f" (while reading [{read[0].name}] {read[1]} at {outer.path}:{outer.line})"
    return key_error(reason + note, data, key, entry)


def expand_env(text: str, environ: Mapping[str, str]) -> Tuple[str, List[str]]:
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


def _value(table: SectionTable, data: SectionData, key: str, entry: Entry,
           context: SectionData, trail: Tuple, memo: Dict) -> str:
    frame = (id(data), key)
    if frame in memo:
        return memo[frame]
    where = (data, key, entry)
    if any(frame == seen for seen, _ in trail):
        chain = [label for seen, label in trail[[seen for seen, _ in trail].index(frame):]]
        raise EvalError("circular reference: "
                        + " -> ".join(chain + [f"[{data.name}]{key}"]), where)
    if len(trail) >= MAX_DEPTH:
        raise EvalError(f"references nested more than {MAX_DEPTH} deep", where)
    trail = trail + ((frame, f"[{data.name}]{key}"),)
    text = _references(table, entry.value, context, trail, memo, where)
    text, complete = _variables(table, text, context, trail, memo, where)
    if complete:
        text = _expressions(text, where)
    memo[frame] = text
    return text


def _references(table: SectionTable, text: str, context: SectionData, trail, memo,
                where) -> str:
    """Step 1: ``[S]K`` (K ends at whitespace); an unknown S or a lone ``[`` is text."""
    position, work = 0, [0, 0]
    while True:
        start = text.find("[", position)
        if start < 0:
            return text
        close = text.find("]", start + 1)
        if close < 0:
            return text  # N2D2 loops forever here; we keep the text literally
        # A name longer than any section's cannot match: skipping it keeps long values
        # full of '[' linear.
        target = (table.by_name.get(text[start + 1:close])
                  if close - start - 1 <= table.longest_name else None)
        if target is None:
            position = start + 1
            continue
        match = _WORD_END.search(text, close + 1)
        end = match.start() if match else len(text)
        value = _reference(table, target, text[close + 1:end], context, trail, memo, where)
        text = text[:start] + value + text[end:]
        _count(work, text, where)
        position = start  # N2D2 rescans the inserted text


def _reference(table: SectionTable, target: SectionData, key: str, context: SectionData,
               trail, memo, where) -> str:
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
        raise EvalError(f"property {key!r} not found in section [{target.name}]{hint}", where)
    target.read.add(key)
    return _value(table, target, key, entry, context, trail, memo)


def _variables(table: SectionTable, text: str, context: SectionData, trail, memo,
               where) -> Tuple[str, bool]:
    """Step 2: ``${NAME}``; unknown names stay, an unclosed ``${`` stops evaluation."""
    position, work = 0, [0, 0]
    while True:
        start = text.find("${", position)
        if start < 0:
            return text, True
        end = text.find("}", start + 2)
        if end < 0:
            return text, False
        value = _variable(table, text[start + 2:end], context, trail, memo)
        if value is None:
            position = end + 1
            continue
        text = text[:start] + value + text[end + 1:]
        _count(work, text, where)
        position = start


def _variable(table: SectionTable, name: str, context: SectionData, trail,
              memo) -> Optional[str]:
    if name == "SECTION_NAME":
        return context.name
    if name == "PREV_SECTION_NAME":
        return _previous_name(table, context)
    for data in (context, table.order[0]):
        entry = data.entries.get("$" + name)
        if entry is not None:
            return _value(table, data, "$" + name, entry, context, trail, memo)
    return None


def _previous_name(table: SectionTable, context: SectionData) -> str:
    index = context.index
    if index <= 0:
        return ""
    previous = table.order[index - 1].name
    parent = context.entries.get("$PARENT_SECTION_NAME")
    if parent is not None and parent.value == previous and index >= 2:
        return table.order[index - 2].name  # a template's first section skips its includer
    return previous


def _expressions(text: str, where: Where) -> str:
    """Step 3: ``$(...)``, closed by naive parenthesis pairing.

    N2D2 rescans from the start of each result; a result is a number or a boolean and never
    holds ``$(``, so scanning on after it is the same, and linear: pieces are joined once.
    """
    pieces: List[str] = []
    position, work = 0, [0, 0]
    while True:
        start = text.find("$(", position)
        if start < 0:
            break
        opening, close = text.find("(", start + 2), text.find(")", start + 2)
        while 0 <= opening < close:
            opening, close = text.find("(", opening + 1), text.find(")", close + 1)
        if close < 0:
            break
        inner = text[start + 2:close]
        _count(work, inner, where)
        try:
            result = expr.evaluate(inner)
        except ValueError as error:
            raise EvalError(f"cannot evaluate $({short(inner)}): {error}", where) from None
        pieces += (text[position:start], result)
        position = close + 1
    pieces.append(text[position:])
    return "".join(pieces)


def _count(work: List[int], text: str, where: Where) -> None:
    """Charge one substitution producing ``text`` to ``work`` ([substitutions, chars])."""
    work[0] += 1
    work[1] += len(text)
    if work[0] > MAX_SUBSTITUTIONS or len(text) > MAX_VALUE_CHARS \
            or work[1] > MAX_COPIED_CHARS:
        raise EvalError(f"too many substitutions (more than {MAX_SUBSTITUTIONS}, or "
                        f"{MAX_COPIED_CHARS} characters rescanned: a reference or variable "
                        "that keeps producing itself, or a value too long to evaluate)", where)
