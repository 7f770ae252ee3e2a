"""Property tests (hypothesis) for the INI value evaluators and readers (issue 8 item 8)."""

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from n2prune.ini import expr  # noqa: E402
from n2prune.ini.evaluate import EvalError, _expressions  # noqa: E402
from n2prune.ini.template import cpp_double, parse_template  # noqa: E402
from n2prune.ini.values import INT_MAX, read_float, read_int  # noqa: E402

FAST = settings(max_examples=200, deadline=None)
WHERE = (None, "K", None)


def quadratic_expressions(text: str) -> str:
    """The evaluation as N2D2 writes it (and n2prune did before): rescan from each result."""
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
        text = text[:start] + expr.evaluate(text[start + 2:close]) + text[close + 1:]
        position = start


def outcome(function, text):
    try:
        return function(text)
    except (EvalError, ValueError):
        return "error"


@FAST
@given(st.text(alphabet="$()0123 +*-x", max_size=40))
def test_linear_expression_pass_equals_n2d2s_rescanning(text):
    assert outcome(lambda t: _expressions(t, WHERE), text) == \
        outcome(quadratic_expressions, text)


def arithmetic(depth: int = 3):
    """(text, value) of integer expressions with + - * and parentheses."""
    leaf = st.integers(-50, 50).map(lambda n: (f"({n})" if n < 0 else str(n), n))
    if depth == 0:
        return leaf
    sub = arithmetic(depth - 1)
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    node = st.tuples(sub, st.sampled_from(sorted(ops)), sub).map(
        lambda t: (f"({t[0][0]} {t[1]} {t[2][0]})", ops[t[1]](t[0][1], t[2][1])))
    return st.one_of(leaf, node)


@FAST
@given(arithmetic())
def test_integer_arithmetic_evaluates_like_python(pair):
    text, value = pair
    assert expr.evaluate(text) == str(value)


@FAST
@given(st.text(max_size=30))
def test_the_evaluator_only_ever_raises_value_error(text):
    try:
        assert isinstance(expr.evaluate(text), str)
    except ValueError:
        pass


@FAST
@given(st.integers(-INT_MAX, INT_MAX))
def test_read_int_round_trips_plain_and_grouped_int64(number):
    assert read_int(str(number)) == number
    assert read_int(f"{number:,}") == number


@FAST
@given(st.integers(INT_MAX + 1, 10 ** 40))
def test_read_int_refuses_past_int64(number):
    with pytest.raises(ValueError, match="out of range"):
        read_int(str(number))
    with pytest.raises(ValueError, match="out of range"):
        read_int(str(-number))


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_read_float_round_trips_finite_floats(number):
    assert read_float(repr(number)) == number


@FAST
@given(st.integers(0, 30), st.integers(0, 30))
def test_for_range_renders_every_index_once(start, stop):
    text = parse_template("{% for i in range(S, E) %}{{i}},{% endfor %}", "t.tpl").render(
        {"S": str(start), "E": str(stop)}).text
    assert text == "".join(f"{cpp_double(float(i))}," for i in range(start, stop))
