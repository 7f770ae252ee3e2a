"""Template inclusion ``[sec@file.tpl]`` in INI files (spec §1.2, §1.3, §1.9)."""

import os
import warnings

import pytest

from n2prune import ini
from n2prune.errors import ConfigError, ConfigWarning
from n2prune.ini import inifile
from n2prune.ini.inifile import load

BLOCK_TPL = """[{{SECTION_NAME}}_conv]
Input={{INPUT}}
Prev=${PREV_SECTION_NAME}
File={{SECTION_FILE_NAME}}
Parent=${PARENT_SECTION_NAME}
Filters={{NB}}
Name={{NAME}}
{% if PROJ exists %}
[{{SECTION_NAME}}_proj]
Input={{INPUT}}
{% set INPUT %}{{SECTION_NAME}}_proj{% endset %}
{% endif %}
[{{SECTION_NAME}}_sum]
Input={{SECTION_NAME}}_conv,{{INPUT}}
Bad=$(nope)
{% for i in range(LOOPS) %}
[{{SECTION_NAME}}_loop{{i}}]
Index={{i}}
{% endfor %}
"""

NET_INI = """$ALPHA=0.5
$N=2
[pool1]
Type=Pool
[blk@sub/block.ini.tpl]
INPUT=pool1
PROJ=1
NB=$(int(64 * ${ALPHA}))
NAME=${SECTION_NAME}
LOOPS=${N}
[after]
Prev=${PREV_SECTION_NAME}
"""


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def quiet_load(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        return load(str(path), **kwargs)


def load_error(path, **kwargs):
    with pytest.raises(ConfigError) as info:
        quiet_load(path, **kwargs)
    return str(info.value)


@pytest.fixture
def net(tmp_path, monkeypatch):
    """The spec's template example, loaded as 'net.ini' from its own folder."""
    write(tmp_path, "sub/block.ini.tpl", BLOCK_TPL)
    write(tmp_path, "net.ini", NET_INI)
    monkeypatch.chdir(tmp_path)
    return quiet_load("net.ini")


def test_generated_sections_come_in_place(net):
    assert net.section_names() == ["", "pool1", "blk", "blk_conv", "blk_proj", "blk_sum",
                                   "blk_loop0", "blk_loop1", "after"]


def test_first_generated_section_skips_its_includer(net):
    assert net["blk_conv"]["Prev"] == "pool1"
    assert net["after"]["Prev"] == "blk_loop1"


def test_section_file_name_and_parent(net):
    assert net["blk_conv"]["File"] == "./sub/block.ini.tpl"
    assert net["blk_conv"]["Parent"] == "blk"
    assert "$PARENT_SECTION_NAME" not in net["blk_conv"].unread_keys()


def test_parameters_are_evaluated_at_load_in_the_including_section(net):
    assert net["blk_conv"]["Filters"] == "32"
    assert net["blk_conv"]["Name"] == "blk"
    assert net["blk_sum"]["Input"] == "blk_conv,blk_proj"
    assert [net[f"blk_loop{i}"]["Index"] for i in range(2)] == ["0", "1"]
    assert net["blk"].unread_keys() == []


def test_generated_keys_point_at_the_template(net):
    conv = net["blk_conv"]
    assert (conv.path, conv.header_line, conv.line_of("Input")) == ("./sub/block.ini.tpl", 1, 2)
    assert net["blk_loop1"].line_of("Index") == 18
    message = str(pytest.raises(ConfigError, lambda: net["blk_sum"]["Bad"]).value)
    assert message.startswith("./sub/block.ini.tpl:15: [blk_sum] Bad=$(nope): cannot evaluate")
    assert message.endswith("(in template output of [blk] at net.ini:5)")


def test_template_path_is_relative_to_the_top_level_file(tmp_path):
    write(tmp_path, "models/inner.tpl", "[{{SECTION_NAME}}_x]\nK=1\n")
    write(tmp_path, "models/outer.tpl", "[{{SECTION_NAME}}_in@models/inner.tpl]\n")
    path = write(tmp_path, "net.ini", "[a@models/outer.tpl]\n")
    assert quiet_load(path).section_names() == ["", "a", "a_in", "a_in_x"]


def test_template_path_expands_the_environment(tmp_path):
    write(tmp_path, "models/t.tpl", "[{{SECTION_NAME}}_x]\n")
    path = write(tmp_path, "net.ini", "[a@${N2D2_MODELS}/t.tpl]\n")
    ini = quiet_load(path, environ={"N2D2_MODELS": str(tmp_path / "models")})
    assert ini.section_names() == ["", "a", "a_x"]


def test_unset_environment_variable_in_a_template_path(tmp_path):
    path = write(tmp_path, "net.ini", "[a]\n[b@${N2D2_MODELS}/t.tpl]\n")
    message = load_error(path, environ={})
    assert message.startswith(f"{path}:2: [b] could not open template file '/t.tpl'")
    assert message.endswith("(environment variable N2D2_MODELS is not set)")


def test_template_is_rendered_when_the_section_is_complete(tmp_path):
    write(tmp_path, "t.tpl", "[{{SECTION_NAME}}_x]\nK={{LATE}}\n")
    path = write(tmp_path, "net.ini", "[a@t.tpl]\nLATE=yes\n")
    assert quiet_load(path)["a_x"]["K"] == "yes"


def test_template_parameter_using_a_computed_value_fails_at_load(tmp_path):
    write(tmp_path, "t.tpl", "[{{SECTION_NAME}}_x]\n")
    path = write(tmp_path, "net.ini", "[sp]\nSizeX=1\n[a@t.tpl]\nSteps=[sp]_EpochSize\n")
    message = load_error(path)
    assert message.startswith(f"{path}:4: [a] Steps=[sp]_EpochSize: property '_EpochSize' not "
                              "found in section [sp]")
    assert "template parameters are evaluated when the file is loaded" in message


def test_reserved_parameter_names(tmp_path):
    write(tmp_path, "t.tpl", "[x]\n")
    path = write(tmp_path, "net.ini", "[a@t.tpl]\nK=1\nSECTION_NAME=b\n")
    assert load_error(path).startswith(f"{path}:3: [a] SECTION_NAME=b: template parameter "
                                       "SECTION_NAME already exists")


def test_render_error_is_located_in_the_template(tmp_path):
    write(tmp_path, "t.tpl", "[{{SECTION_NAME}}_x]\nK={{MISSING}}\n")
    path = write(tmp_path, "net.ini", "[a@t.tpl]\n")
    message = load_error(path)
    assert message.startswith(f"{tmp_path}/t.tpl:2: undefined variable name {{{{MISSING}}}}")
    assert message.endswith(f"\n{path}:1: included from here")


def test_syntax_errors_in_template_output_point_at_the_template(tmp_path):
    write(tmp_path, "t.tpl", "[{{SECTION_NAME}}_x]\n\nnovalue\n[a]\n")
    path = write(tmp_path, "net.ini", "[a@t.tpl]\n")
    lines = load_error(path).split("\n")
    assert lines[0].startswith(f"{tmp_path}/t.tpl:3: [a_x] missing value for property")
    assert lines[1] == f"{path}:1: included from here"
    assert lines[2].startswith(f"{tmp_path}/t.tpl:4: section [a] already exists "
                               f"(defined at {path}:1)")
    assert lines[3] == f"{path}:1: included from here"


def test_template_cycle_is_an_error(tmp_path):
    write(tmp_path, "t.tpl", "[{{SECTION_NAME}}_x@t.tpl]\n")
    path = write(tmp_path, "net.ini", "[a@t.tpl]\n")
    assert load_error(path) == (f"{tmp_path}/t.tpl:1: [a_x] template cycle: "
                                f"'{tmp_path}/t.tpl' includes itself\n"
                                f"{path}:1: included from here")


def test_an_include_cycle_names_the_ini_file_and_line_that_included_it(tmp_path):
    # issue 7 item 8: like a compiler, every includer is named, outermost last.
    write(tmp_path, "loop.ini.tpl", "x\n{% include inner.tpl %}\n")
    write(tmp_path, "inner.tpl", "{% include loop.ini.tpl %}\n")
    path = write(tmp_path, "cycle.ini", "[sp]\nSizeX=1\n\n[a@loop.ini.tpl]\n")
    assert load_error(path).split("\n") == [
        f"{tmp_path}/inner.tpl:1: template include cycle: 'loop.ini.tpl' includes itself "
        f"({tmp_path}/loop.ini.tpl -> {tmp_path}/inner.tpl -> {tmp_path}/loop.ini.tpl)",
        f"{tmp_path}/loop.ini.tpl:2: included from here",
        f"{path}:4: included from here"]


def test_a_template_rendering_error_names_every_includer(tmp_path):
    write(tmp_path, "outer.tpl", "{% include inner.tpl %}\n")
    write(tmp_path, "inner.tpl", "\n{% for i in range(1e99) %}{% endfor %}\n")
    path = write(tmp_path, "net.ini", "[a]\n[b@outer.tpl]\n")
    assert load_error(path).split("\n") == [
        f"{tmp_path}/inner.tpl:2: template rendering exceeds 2000000 steps "
        "(runaway for/block loop?)",
        f"{tmp_path}/outer.tpl:1: included from here",
        f"{path}:2: included from here"]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_an_ini_file_or_template_must_be_a_regular_file(tmp_path, special):
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)
    kind = "a character device" if special == "/dev/zero" else "a FIFO"
    with pytest.raises(ConfigError) as info:
        ini.load(special)
    assert str(info.value) == f"{special}: could not open INI file: not a regular file ({kind})"
    path = write(tmp_path, "net.ini", f"[a]\n[b@{special}]\n")
    assert load_error(path) == (f"{path}:2: [b] could not open template file {special!r}: "
                                f"not a regular file ({kind})")


def test_an_oversized_ini_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(inifile, "MAX_INI_BYTES", 100)
    path = write(tmp_path, "net.ini", "[a]\n" + "; comment\n" * 20)
    with pytest.raises(ConfigError) as info:
        ini.load(path)
    assert str(info.value) == (f"{path}: could not open INI file: 204 bytes is more than the "
                               "limit of 100 bytes")


def test_lines_before_the_first_header_of_a_template_go_to_the_global_section(tmp_path):
    write(tmp_path, "t.tpl", "$FROM_TPL=1\n[{{SECTION_NAME}}_x]\n")
    path = write(tmp_path, "net.ini", "[a@t.tpl]\n")
    assert quiet_load(path)[""]["$FROM_TPL"] == "1"


def test_same_template_twice(tmp_path):
    write(tmp_path, "t.tpl", "[{{SECTION_NAME}}_x]\nP=${PREV_SECTION_NAME}\n")
    path = write(tmp_path, "net.ini", "[a@t.tpl]\n[b@t.tpl]\n")
    ini = quiet_load(path)
    assert ini.section_names() == ["", "a", "a_x", "b", "b_x"]
    assert (ini["a_x"]["P"], ini["b_x"]["P"]) == ("", "a_x")


def test_duplicate_template_section_is_not_expanded(tmp_path):
    write(tmp_path, "t.tpl", "[{{SECTION_NAME}}_x]\n")
    path = write(tmp_path, "net.ini", "[a@t.tpl]\n[a@t.tpl]\n")
    message = load_error(path)
    assert message == (f"{path}:2: section [a] already exists (defined at {path}:1); "
                       "a section cannot be reopened")
