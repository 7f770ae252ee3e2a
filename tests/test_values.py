import re

import pytest

from n2prune.ini.values import read_bool, read_float, read_int, read_list, read_uint, read_word


@pytest.mark.parametrize("text,value", [("7", 7), (" 7", 7), ("+5", 5), ("1,000", 1000),
                                        ("1,000,000", 1000000)])
def test_uint_accepts_n2d2_stream_forms(text, value):
    assert read_uint(text) == value


@pytest.mark.parametrize("text", ["0x10", "12,34", "abc", "", "5 6"])
def test_uint_rejects_what_the_stream_cannot_consume(text):
    with pytest.raises(ValueError):
        read_uint(text)


def test_uint_negative_has_its_own_message():
    with pytest.raises(ValueError, match="negative"):
        read_uint("-1")


def test_integral_float_is_accepted_with_a_warning_and_fraction_is_not():
    said = []
    assert read_uint("3000.0", said.append) == 3000
    assert "3000.0" in said[0]
    with pytest.raises(ValueError):
        read_uint("3000.5")


@pytest.mark.parametrize("text,value", [("0.5", 0.5), (".5", 0.5), ("1e-3", 1e-3),
                                        ("1e3", 1000.0), ("1,000.5", 1000.5), ("-2", -2.0)])
def test_float(text, value):
    assert read_float(text) == value


@pytest.mark.parametrize("text", ["1.0f", "0x10", "inf", "nan", "1..2"])
def test_float_rejects(text):
    with pytest.raises(ValueError):
        read_float(text)


def test_bool_is_only_0_or_1():
    assert read_bool("1") is True and read_bool("0") is False
    for text in ("true", "false", "2"):
        with pytest.raises(ValueError):
            read_bool(text)


def test_int_negative_and_lists_and_words():
    assert read_int("-3") == -3
    assert read_list(read_uint)("5  3") == [5, 3]
    assert read_word("SGD") == "SGD"
    with pytest.raises(ValueError):
        read_word("two words")


@pytest.mark.parametrize("text, reason", [
    ("99999999999999999999999", "integer '99999999999999999999999' is out of range"),
    ("-9223372036854775808", "integer '-9223372036854775808' is out of range"),
    ("1e999", "integer expected, but '1e999' was provided"),
    ("1e30", "integer '1e30' is out of range"),
])
def test_integers_past_int64_or_infinite_are_value_errors(text, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        read_int(text, lambda message: None)
    assert read_int("9223372036854775807") == 2 ** 63 - 1
