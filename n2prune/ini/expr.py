"""A safe evaluator for N2D2's ``$(...)`` expressions (spec §1.5, step 3).

N2D2 runs ``python -c "print (EXPR)"``. We parse EXPR with :mod:`ast` and evaluate a small
arithmetic subset instead, so configuration text never reaches ``eval`` or a shell:
numbers, ``True``/``False``, ``+ - * / // % **``, unary ``+ - not``, comparisons (chained
too), ``and``/``or``, ``x if c else y`` and the functions ``int float round min max abs``.
The result is printed as Python 3's ``print`` would: ``str()`` of each value, several
top-level comma-separated values joined by one space.

>>> evaluate("int(64 * 0.5)"), evaluate("7/2"), evaluate("2**0.5"), evaluate("1e20")
('32', '3.5', '1.4142135623730951', '1e+20')
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable, Dict, Union

Number = Union[bool, int, float]

# Results are bounded so that an INI file cannot hang the loader or exhaust memory.
MAX_INT_BITS = 8192          # about 2,500 decimal digits
MAX_ROUND_DIGITS = 400

_BINARY: Dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: Dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
            ast.Mod: "%", ast.Pow: "**"}


def _round(value: Number, ndigits: Any = None) -> Number:
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS):
        raise ValueError(f"ndigits must be an integer within ±{MAX_ROUND_DIGITS}, "
                         f"got {ndigits!r}")
    return round(value) if ndigits is None else round(value, ndigits)


_FUNCTIONS: Dict[str, Callable[..., Number]] = {
    "int": int, "float": float, "round": _round, "min": min, "max": max, "abs": abs,
}
ALLOWED = ("numbers, True, False, + - * / // % **, unary + - not, comparisons, and, or, "
           "'x if c else y', " + ", ".join(f"{name}()" for name in _FUNCTIONS))


def evaluate(text: str) -> str:
    """The text N2D2's ``python -c "print (TEXT)"`` would print, without running Python.

    Raises ValueError naming what is not allowed, or why the evaluation failed.
    """
    if not text.strip():
        return ""  # print () prints an empty line
    try:
        tree = ast.parse(f"print({text}\n)", mode="eval")
    except SyntaxError as error:
        raise ValueError(f"invalid expression {text!r}: {error.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"expression {text[:40]!r}... is nested too deeply") from None
    call = tree.body
    if not isinstance(call, ast.Call) or call.keywords \
            or any(isinstance(arg, ast.Starred) for arg in call.args):
        raise ValueError(f"invalid expression {text!r}")
    try:
        values = [_eval(arg) for arg in call.args]
    except RecursionError:
        raise ValueError(f"expression {text[:40]!r}... is nested too deeply") from None
    return " ".join(format_value(value) for value in values)


def compute(text: str) -> Number:
    """The value of one expression (not formatted); ValueError as for :func:`evaluate`."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"invalid expression {text!r}: {error.msg}") from None
    try:
        return _eval(tree.body)
    except RecursionError:
        raise ValueError(f"expression {text[:40]!r}... is nested too deeply") from None


def format_value(value: Number) -> str:
    """Python's ``str()`` of a result: ``3``, ``3.5``, ``1e+20``, ``True``."""
    return str(value)


def _eval(node: ast.AST) -> Number:
    handler = _HANDLERS.get(type(node))
    if handler is None:
        raise ValueError(f"{_describe(node)} is not allowed in $(...) (allowed: {ALLOWED})")
    return handler(node)


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"attribute access '.{node.attr}'"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.Compare):
        return f"the comparison {type(node.ops[0]).__name__}"
    return f"a {type(node).__name__} expression"


def _constant(node: ast.Constant) -> Number:
    value = node.value
    if isinstance(value, (bool, int, float)):
        return _check(value)
    raise ValueError(f"{_describe(node)} is not allowed in $(...) (allowed: {ALLOWED})")


def _name(node: ast.Name) -> Number:
    if node.id == "True":
        return True
    if node.id == "False":
        return False
    raise ValueError(f"{_describe(node)} is not allowed in $(...) (allowed: {ALLOWED})")


def _binary(node: ast.BinOp) -> Number:
    function = _BINARY.get(type(node.op))
    if function is None:
        raise ValueError(f"{_describe(node)} is not allowed in $(...) (allowed: {ALLOWED})")
    left, right = _eval(node.left), _eval(node.right)
    if isinstance(node.op, ast.Pow):
        _check_power(left, right)
    elif isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise ValueError(f"result too large ({left} * {right})")
    try:
        return _check(function(left, right))
    except ZeroDivisionError:
        raise ValueError(f"division by zero ({_SYMBOLS[type(node.op)]} 0)") from None
    except OverflowError:
        raise ValueError(f"result too large ({left!r} {_SYMBOLS[type(node.op)]} {right!r})") \
            from None
    except TypeError as error:
        raise ValueError(f"{_SYMBOLS[type(node.op)]}: {error}") from None


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse ``9**9**9`` before computing it: integer results are bounded in size."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise ValueError(f"result too large ({base} ** {exponent} has more than "
                             f"{MAX_INT_BITS} bits)")


def _check(value: Any) -> Number:
    if isinstance(value, complex):
        raise ValueError("complex results are not allowed in $(...)")
    if isinstance(value, int) and not isinstance(value, bool) \
            and value.bit_length() > MAX_INT_BITS:
        raise ValueError(f"result too large (more than {MAX_INT_BITS} bits)")
    return value


def _unary(node: ast.UnaryOp) -> Number:
    operand = _eval(node.operand)
    if isinstance(node.op, ast.Not):
        return not operand
    if isinstance(node.op, ast.USub):
        return -operand
    if isinstance(node.op, ast.UAdd):
        return +operand
    raise ValueError(f"{_describe(node)} is not allowed in $(...) (allowed: {ALLOWED})")


def _compare(node: ast.Compare) -> bool:
    left = _eval(node.left)
    for op, right_node in zip(node.ops, node.comparators):
        function = _COMPARE.get(type(op))
        if function is None:
            raise ValueError(f"the comparison {type(op).__name__} is not allowed in $(...) "
                             f"(allowed: {ALLOWED})")
        right = _eval(right_node)
        if not function(left, right):
            return False
        left = right
    return True


def _boolean(node: ast.BoolOp) -> Number:
    # Python semantics: return the deciding operand, evaluate lazily.
    value: Number = False
    for operand in node.values:
        value = _eval(operand)
        if isinstance(node.op, ast.And) and not value:
            return value
        if isinstance(node.op, ast.Or) and value:
            return value
    return value


def _if(node: ast.IfExp) -> Number:
    return _eval(node.body) if _eval(node.test) else _eval(node.orelse)


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        what = (f"the function {node.func.id!r}" if isinstance(node.func, ast.Name)
                else _describe(node.func))
        raise ValueError(f"{what} is not allowed in $(...) (allowed: {ALLOWED})")
    if node.keywords:
        raise ValueError(f"keyword arguments are not allowed in $(...) ({node.func.id}())")
    if any(isinstance(arg, ast.Starred) for arg in node.args):
        raise ValueError(f"argument unpacking is not allowed in $(...) ({node.func.id}())")
    args = [_eval(arg) for arg in node.args]
    try:
        return _check(_FUNCTIONS[node.func.id](*args))
    except (TypeError, OverflowError) as error:
        raise ValueError(f"{node.func.id}(): {error}") from None
    except ValueError as error:
        raise ValueError(f"{node.func.id}(): {error}") from None


_HANDLERS: Dict[type, Callable[[Any], Number]] = {
    ast.Constant: _constant, ast.Name: _name, ast.BinOp: _binary, ast.UnaryOp: _unary,
    ast.Compare: _compare, ast.BoolOp: _boolean, ast.IfExp: _if, ast.Call: _call,
}
