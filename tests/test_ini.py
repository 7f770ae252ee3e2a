"""INI reading (spec §1.1-§1.2, §1.9): lines, comments, quotes, sections, inheritance, errors."""

import warnings

import pytest

from n2prune.errors import ConfigError, ConfigWarning
from n2prune.ini.inifile import load, loads
from n2prune.ini.values import read_bool, read_float, read_uint

SPEC_1_9 = r"""$SIZE=24
$ALPHA=0.5
GlobalKey=glob ; inline comment
[sp]
SizeX=${SIZE}
SizeY=$(${SIZE} * 2)
Quoted="a ; not comment # nor this"
Quoted2=  "  spaced  "  ; trailing comment
Hash=#FF0000
NoSpaceRef=$([sp]SizeX*2)
SpaceRef=$([sp]SizeX * 2)
Int=$(int(64 * ${ALPHA}))
Unknown=${NOPE}/x
Thousands=1,000
BoolTrue=true
Dup=1
Dup=2
Cont=1 2 \
3 4
ContNoSpace=1 2\
3 4
Prev=${PREV_SECTION_NAME}
GlobRef=[]GlobalKey
[base1]
A=base1A
B=base1B
$LOCAL=fromBase1
[base2]
A=base2A
C=base2C
[child] base1 base2
B=childB
D=${LOCAL}
E=[base2]C [base1]A
Prev=${PREV_SECTION_NAME}
[child2]base1
X=[${ZZ}]A
$ZZ=base1
"""


def quiet_loads(text, path="net.ini", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        return loads(text, path, **kwargs)


def recorded_loads(text, path="net.ini"):
    """(ini, [warning texts emitted through warnings.warn])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ini = loads(text, path)
    return ini, [str(item.message) for item in caught]


def load_error(text, path="net.ini"):
    with pytest.raises(ConfigError) as info:
        quiet_loads(text, path)
    return str(info.value)


@pytest.fixture(scope="module")
def spec_ini():
    return quiet_loads(SPEC_1_9, "spec.ini")


# -- §1.9 vectors, one test each -----------------------------------------------------------

def test_spec_sizes(spec_ini):
    assert spec_ini["sp"].get("SizeX", read_uint) == 24
    assert spec_ini["sp"]["SizeY"] == "48"


def test_spec_quoted_values_keep_comment_characters_and_spaces(spec_ini):
    assert spec_ini["sp"]["Quoted"] == "a ; not comment # nor this"
    assert spec_ini["sp"]["Quoted2"] == "  spaced  "


def test_spec_hash_starts_a_comment(spec_ini):
    assert spec_ini["sp"]["Hash"] == ""


def test_spec_reference_ends_at_whitespace(spec_ini):
    with pytest.raises(ConfigError) as info:
        spec_ini["sp"]["NoSpaceRef"]
    assert str(info.value).startswith("spec.ini:10: [sp] NoSpaceRef=$([sp]SizeX*2): "
                                      "property 'SizeX*2)' not found in section [sp]")
    assert spec_ini["sp"]["SpaceRef"] == "48"


def test_spec_int_expression(spec_ini):
    assert spec_ini["sp"]["Int"] == "32"


def test_spec_unknown_variable_stays(spec_ini):
    assert spec_ini["sp"]["Unknown"] == "${NOPE}/x"


def test_spec_thousands_separator(spec_ini):
    assert spec_ini["sp"].get("Thousands", read_uint) == 1000


def test_spec_bool_true_is_unreadable(spec_ini):
    with pytest.raises(ConfigError) as info:
        spec_ini["sp"].get("BoolTrue", read_bool)
    assert str(info.value).startswith("spec.ini:15: [sp] BoolTrue=true: boolean expected")


def test_spec_duplicate_key_later_wins_with_warning():
    ini, emitted = recorded_loads(SPEC_1_9, "spec.ini")
    assert ini["sp"]["Dup"] == "2"
    expected = "spec.ini:17: [sp] Dup: overriding property (previous value was '1', at spec.ini:16)"
    assert emitted[0] == expected
    assert str(ini.warnings[0]) == expected
    assert (ini.warnings[0].line, ini.warnings[0].section) == (17, "sp")


def test_spec_continuations(spec_ini):
    assert spec_ini["sp"]["Cont"] == "1 2 3 4"
    assert spec_ini["sp"]["ContNoSpace"] == "1 23 4"
    assert spec_ini["sp"].line_of("Cont") == 18


def test_spec_prev_section_of_first_section_is_global(spec_ini):
    assert spec_ini["sp"]["Prev"] == ""


def test_spec_global_reference(spec_ini):
    assert spec_ini["sp"]["GlobRef"] == "glob"


def test_spec_inheritance(spec_ini):
    child = spec_ini["child"]
    assert [child[key] for key in "ABCDE"] == ["base1A", "childB", "base2C", "fromBase1",
                                               "base2C base1A"]
    assert child["Prev"] == "base2"


def test_overriding_an_inherited_key_is_silent_unlike_a_repeated_key():
    emitted = recorded_loads(SPEC_1_9, "spec.ini")[1]
    assert not any("[child] B" in warning for warning in emitted)  # N2D2 warns; we do not
    assert any(warning.startswith("spec.ini:17: [sp] Dup: overriding") for warning in emitted)


def test_spec_references_are_never_built_from_variables(spec_ini):
    assert spec_ini["child2"]["X"] == "[base1]A"


def test_spec_unsigned_and_double_reads():
    ini = quiet_loads("[s]\nA=-1\nB=5.0\nC=1e3\nD=0x10\nE=$(64*0.5)\n")
    with pytest.raises(ConfigError, match="net.ini:2: .*negative number"):
        ini["s"].get("A", read_uint)
    with pytest.raises(ConfigError, match="net.ini:5: \\[s\\] D=0x10: "):
        ini["s"].get("D", read_uint)
    assert ini["s"].get("C", read_float) == 1000.0


def test_reader_warnings_are_located():
    # n2prune accepts an integral float for an integer key (README of n2d2-models), warning.
    ini = quiet_loads("[s]\nA=1\nE=$(64*0.5)\n")
    with pytest.warns(ConfigWarning, match=r"net.ini:3: \[s\] E: integral float '32.0'"):
        assert ini["s"].get("E", read_uint) == 32
    assert str(ini.warnings[-1]).startswith("net.ini:3: [s] E: integral float")


# -- §1.1 line reading ------------------------------------------------------------------------

def test_bom_is_removed_on_every_line():
    ini = quiet_loads("\ufeff[a]\n\ufeffK=1\nL=x\\\n\ufeffy\n")
    assert ini.section_names() == ["", "a"]
    assert (ini["a"]["K"], ini["a"]["L"]) == ("1", "xy")


def test_bom_from_a_file_on_disk(tmp_path):
    path = tmp_path / "bom.ini"
    path.write_bytes(b"\xef\xbb\xbf[a]\nK=1\n")
    assert load(str(path))["a"]["K"] == "1"


def test_crlf_line_is_not_continued():
    message = load_error("[a]\r\nM=1 0 \\\r\n1 1\r\n")
    assert message.startswith("net.ini:3: [a] missing value for property (no '='): '1 1'")


def test_crlf_values_are_trimmed():
    assert quiet_loads("[a]\r\nK = v \r\n")["a"]["K"] == "v"


def test_space_after_backslash_is_not_a_continuation():
    assert load_error("[a]\nM=1 \\ \n2\n").startswith("net.ini:3: [a] missing value")


def test_backslash_on_a_comment_line_swallows_the_next_line():
    ini = quiet_loads("[a]\n; comment \\\nK=1\nL=2\n")
    assert ini["a"].keys() == ["L"]


def test_comment_inside_a_continuation_loses_the_following_rows():
    ini = quiet_loads("[a]\nM=1 0 ; c \\\n0 1\nN=2\n")
    assert ini["a"]["M"] == "1 0"
    assert ini["a"].keys() == ["M", "N"]


def test_empty_line_ends_a_continuation():
    ini = quiet_loads("[a]\nK=1 \\\n\nL=2\n")
    assert (ini["a"]["K"], ini["a"]["L"]) == ("1", "2")


def test_continuation_open_at_end_of_file_is_dropped_with_a_warning():
    ini, emitted = recorded_loads("[a]\nK=1\nL=2\\\n")
    assert ini["a"].keys() == ["K"]
    assert emitted == ["net.ini:3: the line continued with '\\' is still open at the end of the "
                       "file and is ignored (as N2D2 does)"]


def test_only_lf_ends_a_line():
    ini = quiet_loads("[a]\nK=1\x0b2\x0c3\n")  # str.splitlines would split here
    assert ini["a"]["K"] == "1\x0b2\x0c3"


def test_comments_cut_headers_and_values():
    ini = quiet_loads("[a] ; the a section\nK=1 # one\nL=x;y\n# K=2\n")
    assert ini.section_names() == ["", "a"]
    assert (ini["a"]["K"], ini["a"]["L"]) == ("1", "x")
    assert ini["a"].bases == []


def test_unclosed_quote_is_an_error():
    message = load_error("[a]\nK=1\nQ=\"abc\n")
    assert message.startswith("net.ini:3: malformed line: unclosed '\"' (in section [a])")


def test_quotes_are_removed_only_at_both_ends():
    ini = quiet_loads('[a]\nA="x"\nB="x" y "z"\nC=x "y"\nD=""\nE="a"b"c"\n')
    a = ini["a"]
    assert [a[key] for key in "ABCDE"] == ["x", 'x" y "z', 'x "y"', "", 'a"b"c']


def test_quoted_value_keeps_inner_spaces():
    assert quiet_loads('[a]\nQ=  "  x  "  ; c\n')["a"]["Q"] == "  x  "


def test_key_and_value_trimming_and_odd_keys():
    ini = quiet_loads("[a]\n  Key With Space  =  v w  \n=empty\nK=a=b\n")
    assert ini["a"].keys() == ["Key With Space", "", "K"]
    assert (ini["a"]["Key With Space"], ini["a"][""], ini["a"]["K"]) == ("v w", "empty", "a=b")


def test_missing_equal_sign_is_an_error():
    message = load_error("[a]\nK=1\nJustText\n")
    assert message.startswith("net.ini:3: [a] missing value for property (no '='): "
                              "'JustText'")


def test_keys_and_sections_are_case_sensitive():
    ini = quiet_loads("[a]\nK=1\nk=2\n[A]\nK=3\n")
    assert (ini["a"]["K"], ini["a"]["k"], ini["A"]["K"]) == ("1", "2", "3")


def test_variables_count_as_read():
    ini = quiet_loads("[a]\n$V=1\nK=2\nL=3\n")
    ini["a"]["K"]
    assert ini["a"].unread_keys() == ["L"]


def test_global_section_comes_first():
    ini = quiet_loads("G=1\n[a]\nK=2\n")
    assert ini.section_names() == ["", "a"]
    assert ini[""]["G"] == "1"
    assert ini[""].header_line is None


# -- §1.2 sections and inheritance ------------------------------------------------------------

def test_section_name_is_not_trimmed():
    ini = quiet_loads("[ a ]\nK=1\n")
    assert ini.section_names() == ["", " a "]
    assert "a" not in ini


def test_base_without_space_and_with_tabs():
    ini = quiet_loads("[b]\nK=1\n[c]\nL=2\n[x]b\n[y]\tb \t c\n")
    assert (ini["x"]["K"], ini["x"].bases) == ("1", ["b"])
    assert (ini["y"]["L"], ini["y"].bases) == ("2", ["b", "c"])


def test_inheritance_is_a_snapshot():
    ini = quiet_loads("[b]\nK=1\n[c] b\n[b2]\n")
    assert ini["c"].keys() == ["K"]
    ini = quiet_loads("[b]\nK=1\n[c] b\nL=2\n")
    assert "L" not in ini["b"]


def test_inherited_values_evaluate_in_the_child():
    ini = quiet_loads("[b]\nName=${SECTION_NAME}\nV=${X}\n$X=base\n[c] b\n$X=child\n")
    assert (ini["b"]["Name"], ini["b"]["V"]) == ("b", "base")
    assert (ini["c"]["Name"], ini["c"]["V"]) == ("c", "child")


def test_inherited_key_error_names_the_base():
    ini = quiet_loads("[b]\nK=$(nope)\n[c] b\n")
    with pytest.raises(ConfigError) as info:
        ini["c"]["K"]
    assert str(info.value).startswith("net.ini:2: [c] K=$(nope): cannot evaluate $(nope)")
    assert "(inherited from [b])" in str(info.value)


def test_missing_base_is_an_error():
    message = load_error("[conv_def]\nK=1\n[c] conv_deff\n[d] later\n[later]\n")
    assert message.startswith("net.ini:3: inherited section [conv_deff] does not exist for "
                              "section [c]")
    assert "did you mean [conv_def]?" in message
    assert "\nnet.ini:4: inherited section [later] does not exist" in message


def test_duplicate_section_is_an_error():
    message = load_error("[a]\nK=1\n[b]\n[a]\nL=2\n")
    assert message.startswith("net.ini:4: section [a] already exists (defined at net.ini:1)")


def test_empty_section_name_is_the_global_section():
    assert load_error("G=1\n[]\n").startswith("net.ini:2: section [] already exists "
                                             "(defined as the global section)")


def test_at_signs_that_are_not_a_template_make_plain_sections():
    ini = quiet_loads("[a@b@c]\nK=1\n[@x]\nL=2\n[y@]\n")
    assert ini.section_names() == ["", "a@b@c", "@x", "y@"]


def test_all_syntax_errors_are_reported_together():
    message = load_error("[a]\nQ=\"x\nnovalue\n[a]\n[b] zz\n")
    lines = message.split("\n")
    assert lines[0].startswith("net.ini:2: malformed line")
    assert lines[1].startswith("net.ini:3: [a] missing value for property")
    assert lines[2].startswith("net.ini:4: section [a] already exists")
    assert lines[3].startswith("net.ini:5: inherited section [zz] does not exist")
    with pytest.raises(ConfigError) as info:
        quiet_loads("[a]\nQ=\"x\nnovalue\n")
    assert (info.value.path, info.value.line, len(info.value.errors)) == ("net.ini", 2, 2)


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "missing.ini"))
    assert str(info.value).startswith(f"{tmp_path / 'missing.ini'}: could not open INI file")
