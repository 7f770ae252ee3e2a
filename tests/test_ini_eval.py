"""INI value evaluation (spec §1.5) and the Section / view API."""

import time
import warnings

import numpy as np
import pytest

from n2prune.errors import ConfigError, ConfigWarning
from n2prune.ini.inifile import format_computed, loads
from n2prune.ini.values import read_enum, read_list, read_uint


def ini_of(text, path="net.ini", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        return loads(text, path, **kwargs)


def error_of(section, key):
    with pytest.raises(ConfigError) as info:
        section[key]
    return str(info.value)


# -- step 1: [S]K references ------------------------------------------------------------------

def test_reference_to_a_later_section_is_lazy():
    ini = ini_of("[a]\nK=[b]L\n[b]\nL=late\n")
    assert ini["a"]["K"] == "late"


def test_reference_is_fully_evaluated_recursively():
    ini = ini_of("$N=3\n[a]\nK=$(${N} * 2)\n[b]\nL=[a]K\n[c]\nM=[b]L and [a]K\n")
    assert ini["c"]["M"] == "6 and 6"


def test_reference_to_an_unknown_section_is_text():
    ini = ini_of("[a]\nK=[nosuch]X and [also not]\n")
    assert ini["a"]["K"] == "[nosuch]X and [also not]"


def test_bracket_without_closing_bracket_is_text():
    # N2D2 loops forever on this value.
    ini = ini_of("[a]\nA=a[b\nB=[a]A [x\n")
    assert (ini["a"]["A"], ini["a"]["B"]) == ("a[b", "a[b [x")


def test_long_values_full_of_brackets_stay_linear():
    ini = ini_of("[a]\nK=" + "[" * 100_000 + "q]x " + "${" * 50_000 + "}\n")
    start = time.perf_counter()
    assert len(ini["a"]["K"]) == 200_005
    assert time.perf_counter() - start < 5  # quadratic scanning would take minutes


def test_missing_referenced_key_is_an_error():
    ini = ini_of("[sp]\nSizeX=1\n[a]\nK=1\nL=[sp]SizeY\n")
    assert error_of(ini["a"], "L").startswith("net.ini:5: [a] L=[sp]SizeY: property 'SizeY' "
                                              "not found in section [sp]")


def test_inserted_reference_text_is_scanned_again():
    # N2D2 rescans from the same position: a value that evaluates to "[b]K" is resolved again.
    ini = ini_of("$S=b\n[b]\nK=final\n[a]\nX=[${S}]K\n[c]\nY=[a]X\n")
    assert ini["a"]["X"] == "[b]K"
    assert ini["c"]["Y"] == "final"


def test_reference_evaluates_in_the_reading_section():
    # Like N2D2's getPropertyValue, variables in a referenced value use the current section.
    ini = ini_of("$V=global\n[a]\n$V=a\nK=${V} ${SECTION_NAME}\n[b]\nL=[a]K\n")
    assert ini["a"]["K"] == "a a"
    assert ini["b"]["L"] == "global b"


def test_circular_references_are_an_error():
    ini = ini_of("[a]\nD=[a]E\nE=[b]D\n[b]\nD=x [a]D\n")
    assert error_of(ini["a"], "D").startswith(
        "net.ini:2: [a] D=[a]E: circular reference: [a]D -> [a]E -> [b]D -> [a]D")


def test_self_reproducing_value_is_stopped():
    ini = ini_of("[a]\n$L={\n$A=$${L}A}\nK=${A}\n")
    assert error_of(ini["a"], "K").startswith("net.ini:4: [a] K=${A}: too many substitutions")


# -- step 2: ${VAR} ---------------------------------------------------------------------------

def test_variables_come_from_the_section_then_the_global_one():
    ini = ini_of("$X=g\n$Y=gy\n[a]\n$X=local\nK=${X} ${Y}\n[b]\nK=${X}\n")
    assert (ini["a"]["K"], ini["b"]["K"]) == ("local gy", "g")


def test_variable_values_are_evaluated():
    ini = ini_of("$A=$(1 + 1)\n$B=[s]K\n[s]\nK=k\nV=${A}${B}\n")
    assert ini["s"]["V"] == "2k"


def test_section_name_and_previous_section_name():
    ini = ini_of("[first]\nP=${PREV_SECTION_NAME}\n[second]\nN=${SECTION_NAME}\n"
                 "P=${PREV_SECTION_NAME}\n")
    assert (ini["first"]["P"], ini["second"]["N"], ini["second"]["P"]) == ("", "second", "first")


def test_process_environment_is_not_used_for_ordinary_keys():
    ini = ini_of("[a]\nK=${HOME}/x\n", environ={"HOME": "/home/me"})
    assert ini["a"]["K"] == "${HOME}/x"


def test_path_keys_expand_the_environment():
    ini = ini_of("[database]\nDataPath=${N2D2_DATA}/mnist\nLabelPath=${UNSET}/l\n"
                 "Other=${N2D2_DATA}\n", environ={"N2D2_DATA": "/data"})
    db = ini["database"]
    assert (db["DataPath"], db["LabelPath"], db["Other"]) == ("/data/mnist", "/l", "${N2D2_DATA}")


def test_unclosed_variable_stops_evaluation():
    ini = ini_of("[a]\nK=$(1 + 1) ${X\n")
    assert ini["a"]["K"] == "$(1 + 1) ${X"


# -- step 3: $(...) ---------------------------------------------------------------------------

def test_several_expressions_in_one_value():
    ini = ini_of("[a]\nK=$(1 + 1) $(2 * 3)x$(7 // 2)\n")
    assert ini["a"]["K"] == "2 6x3"


def test_naive_parenthesis_pairing():
    ini = ini_of("[a]\nK=$((1 + 2) * (3 + 4)) (x)\nL=$(int(64 * 0.5))\n")
    assert (ini["a"]["K"], ini["a"]["L"]) == ("21 (x)", "32")


def test_unclosed_expression_is_left_as_is():
    ini = ini_of("[a]\nK=$(1 + 1) $(2 * (3\n")
    assert ini["a"]["K"] == "2 $(2 * (3"


def test_bad_expression_error_is_located():
    ini = ini_of("[a]\nK=1\nL=$(__import__('os'))\n")
    message = error_of(ini["a"], "L")
    assert message.startswith("net.ini:3: [a] L=$(__import__('os')): cannot evaluate "
                              "$(__import__('os')): the function '__import__' is not allowed")


def test_error_in_a_referenced_value_names_both_places():
    ini = ini_of("$BAD=$(1/0)\n[a]\nK=1\nL=x${BAD}\n")
    message = error_of(ini["a"], "L")
    assert message.startswith("net.ini:1: [] $BAD=$(1/0): cannot evaluate $(1/0): "
                              "division by zero")
    assert message.endswith("(while reading [a] L at net.ini:4)")


# -- computed properties ----------------------------------------------------------------------

def test_computed_values_are_visible_only_after_being_set():
    ini = ini_of("[sp]\nSizeX=8\n[common.config]\nSteps=$([sp]_EpochSize * 40)\n")
    message = error_of(ini["common.config"], "Steps")
    assert message.startswith("net.ini:4: [common.config] Steps=$([sp]_EpochSize * 40): "
                              "property '_EpochSize' not found in section [sp]")
    ini["sp"].set_computed("_EpochSize", 1000)
    assert ini["common.config"]["Steps"] == "40000"
    assert ini["sp"]["_EpochSize"] == "1000"
    assert "_EpochSize" in ini["sp"] and "_EpochSize" not in ini["sp"].keys()


def test_computed_float_formatting_is_cpp_showpoint():
    assert [format_computed(v) for v in (120.7081, 3.0, 0.5, 1e-7, 7, True)] == \
        ["120.708", "3.00000", "0.500000", "1.00000e-07", "7", "1"]


def test_computed_numpy_scalars_are_formatted_as_numbers():
    assert [format_computed(v) for v in (np.float32(0.25), np.int64(12), np.array(3.5))] == \
        ["0.250000", "12", "3.50000"]


def test_computed_value_overrides_a_written_one():
    ini = ini_of("[c]\n_NbOutputs=1\n[d]\nK=[c]_NbOutputs\n")
    ini["c"].set_computed("_NbOutputs", 64)
    assert ini["d"]["K"] == "64"


# -- ConfigSection views ----------------------------------------------------------------------

VIEW_INI = """$LR=0.1
[conv1]
$LR=0.5
Type=Conv
ConfigSection=common.config,local.config
[fc]
Type=Fc
[common.config]
WeightsSolver.LearningRate=${LR}
Name=${SECTION_NAME}
NoBias=1
[local.config]
NoBias=0
Bad=$(nope)
"""


def test_view_evaluates_in_the_cell_context():
    ini = ini_of(VIEW_INI)
    conv = ini.view(["common.config", "local.config"], "conv1")
    fc = ini.view(["common.config"], "fc")
    assert (conv["WeightsSolver.LearningRate"], conv["Name"]) == ("0.5", "conv1")
    assert (fc["WeightsSolver.LearningRate"], fc["Name"]) == ("0.1", "fc")


def test_view_merges_later_sections_over_earlier_ones():
    view = ini_of(VIEW_INI).view(["common.config", "local.config"], "conv1")
    assert view.keys() == ["WeightsSolver.LearningRate", "Name", "NoBias", "Bad"]
    assert view["NoBias"] == "0"
    assert view.line_of("NoBias") == 13


def test_view_errors_point_at_the_key_in_its_section():
    view = ini_of(VIEW_INI).view(["common.config", "local.config"], "conv1")
    message = error_of(view, "Bad")
    assert message.startswith("net.ini:14: [local.config] Bad=$(nope): cannot evaluate")
    assert "(read for [conv1])" in message
    assert str(view.error("NoBias", "bad")).startswith("net.ini:13: [local.config] NoBias=0: bad")


def test_view_missing_key_points_at_the_cell():
    view = ini_of(VIEW_INI).view(["common.config"], "conv1")
    with pytest.raises(ConfigError) as info:
        view.get("Epsilon", read_uint)
    assert str(info.value).startswith("net.ini:2: [conv1] missing required key 'Epsilon'")


def test_view_tracks_its_own_reads():
    ini = ini_of(VIEW_INI)
    first = ini.view(["common.config"], "conv1")
    second = ini.view(["common.config"], "fc")
    first["NoBias"]
    assert first.unread_keys() == ["WeightsSolver.LearningRate", "Name"]
    assert second.unread_keys() == ["WeightsSolver.LearningRate", "Name", "NoBias"]
    assert "common.config" not in ini.unused_sections()


def test_view_of_an_unknown_section():
    with pytest.raises(ConfigError, match=r"unknown section 'comon.config'; did you mean "
                                          r"'common.config'\?"):
        ini_of(VIEW_INI).view(["comon.config"], "conv1")


# -- Section API ------------------------------------------------------------------------------

API_INI = """[sp]
SizeX=24
SizeY=24
Mode=Max
Dims=3 3
Solvers.LearningRate=0.1
Solvers.Momentum=0.9
"""


def test_unknown_section_suggests_a_name():
    with pytest.raises(ConfigError) as info:
        ini_of(API_INI)["spp"]
    assert "unknown section 'spp'; did you mean 'sp'?" in str(info.value)


def test_missing_key_lists_the_nearest_keys():
    message = error_of(ini_of(API_INI)["sp"], "SizeZ")
    assert message.startswith("net.ini:1: [sp] no such key 'SizeZ'; did you mean ")
    assert "'SizeX'" in message and "'SizeY'" in message and "Mode" not in message


def test_typed_get_with_defaults_and_required():
    sp = ini_of(API_INI)["sp"]
    assert sp.get("SizeX", read_uint) == 24
    assert sp.get("Dims", read_list(read_uint)) == [3, 3]
    assert sp.get("Absent", read_uint, 7) == 7
    with pytest.raises(ConfigError) as info:
        sp.get("Absent", read_uint)
    assert str(info.value).startswith("net.ini:1: [sp] missing required key 'Absent'")


def test_reader_error_is_located_with_value_and_reason():
    sp = ini_of(API_INI)["sp"]
    with pytest.raises(ConfigError) as info:
        sp.get("Mode", read_enum(["Average", "Maxx"]))
    error = info.value
    assert (error.path, error.line, error.section, error.key, error.value) == \
        ("net.ini", 4, "sp", "Mode", "Max")
    assert str(error).startswith("net.ini:4: [sp] Mode=Max: unknown value 'Max'; did you mean")


def test_raw_line_of_header_line_prefixed_and_bases():
    ini = ini_of("[b]\nX=1\n[sp] b\nK=${X}\n")
    sp = ini["sp"]
    assert (sp.raw("K"), sp.line_of("K"), sp.line_of("X"), sp.line_of("Nope")) == \
        ("${X}", 4, 2, None)
    assert (sp.header_line, sp.bases, sp.path, sp.name) == (3, ["b"], "net.ini", "sp")
    assert ini_of(API_INI)["sp"].prefixed("Solvers.") == ["Solvers.LearningRate",
                                                          "Solvers.Momentum"]


def test_error_and_warn_are_located():
    ini = ini_of(API_INI)
    sp = ini["sp"]
    assert str(sp.error("Mode", "unknown pooling")) == "net.ini:4: [sp] Mode=Max: unknown pooling"
    assert str(sp.error(None, "no input")) == "net.ini:1: [sp] no input"
    with pytest.warns(ConfigWarning, match=r"net.ini:2: \[sp\] SizeX: ignored"):
        sp.warn("SizeX", "ignored")
    assert ini.warnings[-1].line == 2


def test_unread_keys_and_unused_sections():
    ini = ini_of("[used]\nA=1\nB=2\n[unused]\nC=3\n[base]\nD=4\n[child] base\n$V=1\n[empty]\n")
    ini["used"]["A"]
    ini["used"].mark_read("B")
    assert ini["used"].unread_keys() == []
    assert ini["unused"].unread_keys() == ["C"]
    assert ini.unused_sections() == ["", "unused", "empty"]


def test_references_count_as_reads():
    ini = ini_of("[a]\nK=1\n[b]\nL=[a]K\n")
    ini["b"]["L"]
    assert ini["a"].unread_keys() == []


def test_sections_and_membership():
    ini = ini_of(API_INI)
    assert "sp" in ini and "SP" not in ini
    assert [section.name for section in ini.sections()] == ["", "sp"]
    assert ini["sp"] is ini["sp"]


# -- bounded work (issue 8 item 4) ------------------------------------------------------------

def test_many_expressions_on_one_line_evaluate_in_order():
    values = " ".join(f"$({i}*2)" for i in range(5000))
    ini = ini_of(f"[a]\nK={values}$(1)x\n")
    assert ini["a"]["K"] == " ".join(str(i * 2) for i in range(5000)) + "1x"


def test_too_many_expressions_on_one_line_are_a_located_error():
    # 300k $(0) on one line did not finish (each replacement copied the whole line).
    ini = ini_of("[a]\nX=1\nK=" + "$(0)" * 300_000 + "\n")
    assert error_of(ini["a"], "K").startswith(
        "net.ini:3: [a] K=$(0)$(0)$(0)$(0)$(0)$(0)$(0)$(0)$(0)$(0)$(0)$(0)$(0)$(0)$...: "
        "too many substitutions (more than 10000, or 50000000 characters rescanned")


def test_rescanning_long_values_is_bounded_by_the_characters_copied():
    ini = ini_of("[a]\n$A=" + "y" * 99 + "\nK=" + "${A}" * 9000 + "\n")
    assert "too many substitutions" in error_of(ini["a"], "K")
    ini = ini_of("[a]\n$A=" + "y" * 99 + "\nK=" + "${A}" * 300 + "\n")
    assert ini["a"]["K"] == "y" * 99 * 300
