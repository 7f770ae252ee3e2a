"""N2D2's template language (spec §1.3): substitution, control statements, errors, lines."""

import os

import pytest

from n2prune.errors import ConfigError
from n2prune.ini import template, template_nodes
from n2prune.ini.template import Budget, cpp_double, parse_template, render_file


def render(text, params=None, path="t.tpl"):
    return parse_template(text, path).render(params or {}).text


def render_error(text, params=None, path="t.tpl"):
    with pytest.raises(ConfigError) as info:
        render(text, params, path)
    return str(info.value)


def test_substitution_is_verbatim():
    assert render("[{{S}}_a]\nIn={{IN}}\n", {"S": "blk", "IN": "pool1"}) == "[blk_a]\nIn=pool1\n"


def test_substitution_name_is_not_trimmed():
    message = render_error("x\n{{ S }}", {"S": "1"})
    assert message.startswith("t.tpl:2: undefined variable name {{ S }}")
    assert "(defined: S)" in message


def test_missing_closing_braces():
    assert render_error("x\n\n{{S", {"S": "1"}).startswith("t.tpl:3: missing closing braces")


def test_missing_closing_braces_in_a_branch_not_taken_is_not_an_error():
    assert render("{% if A exists %}{{S{% endif %}ok") == "ok"


def test_if_exists_and_not_exists():
    text = "{% if P exists %}yes{% endif %}{% if P not_exists %}no{% endif %}"
    assert render(text, {"P": ""}) == "yes"
    assert render(text) == "no"


def test_if_equal_is_a_plain_string_comparison():
    text = "{% if NB == 16 %}eq{% else %}ne{% endif %}"
    assert render(text, {"NB": "16"}) == "eq"
    assert render(text, {"NB": "16.0"}) == "ne"
    assert render("{% if NB != 16 %}ne{% endif %}", {"NB": "1"}) == "ne"


def test_if_equal_with_an_empty_value():
    assert render("{% if A == %}empty{% endif %}", {"A": ""}) == "empty"


def test_if_on_undefined_variable_is_an_error():
    assert render_error("\n{% if X == 1 %}{% endif %}").startswith(
        "t.tpl:2: undefined variable name 'X' in if statement")


def test_if_unknown_operator():
    assert "unknown operator '~' in if statement" in render_error("{% if A ~ 1 %}{% endif %}",
                                                                   {"A": "1"})


def test_else_is_tested_again_after_the_first_branch():
    # N2D2 turns {% else %} into a second if with the opposite operator.
    text = "{% if A == 1 %}{% set A %}2{% endset %}one{% else %}other{% endif %}"
    assert render(text, {"A": "1"}) == "oneother"


def test_control_words_split_on_parentheses_and_commas():
    assert render("{% for i in range(1,3) %}{{i}} {% endfor %}") == "1 2 "
    assert render("{%for i in range(2)%}{{i}}{%endfor%}") == "01"


def test_for_reads_bounds_from_parameters_and_prints_like_cpp():
    assert render("{% for i in range(N) %}<{{i}}>{% endfor %}", {"N": "2.5"}) == "<0><1><2>"
    assert render("{% for i in range(S, E) %}{{i}},{% endfor %}",
                  {"S": "0.5", "E": "2"}) == "0.5,1.5,"


def test_for_variable_is_removed_after_the_loop():
    message = render_error("{% for i in range(1) %}{% endfor %}{{i}}")
    assert "undefined variable name {{i}}" in message


def test_for_variable_must_not_exist():
    assert "for loop variable 'i' already exists" in render_error(
        "{% for i in range(1) %}{% endfor %}", {"i": "0"})


def test_for_unreadable_bound():
    assert render_error("\n{% for i in range(Z) %}{% endfor %}", {"Z": "2x"}).startswith(
        "t.tpl:2: unreadable loop range value '2x'")


def test_block_iterates_with_index_and_suffixes():
    params = {"B": "2", "B[0].x": "zero", "B[1].x": "one"}
    assert render("{% block B %}{{#}}={{.x}};{% endblock %}", params) == "0=zero;1=one;"


def test_block_needs_an_integer_count():
    assert "unreadable size value '2.0' for block variable 'B'" in render_error(
        "{% block B %}{% endblock %}", {"B": "2.0"})
    assert "undefined variable name 'B' in block statement" in render_error(
        "{% block B %}{% endblock %}")


def test_set_is_visible_after_endif():
    text = ("{% if P exists %}{% set IN %}{{S}}_proj{% endset %}{% endif %}In={{IN}}")
    assert render(text, {"S": "b", "IN": "x", "P": "1"}) == "In=b_proj"
    assert render(text, {"S": "b", "IN": "x"}) == "In=x"


def test_set_inside_a_block_stays_in_the_iteration():
    text = "{% block B %}{% set V %}{{#}}{% endset %}{% endblock %}{{V}}"
    assert render(text, {"B": "1", "V": "outer"}) == "outer"


@pytest.mark.parametrize("text, message", [
    ("x\n\n{% frobnicate %}", "t.tpl:3: unknown control statement {% frobnicate %}"),
    ("x\n{% if A exists %}\nb", "t.tpl:2: missing endif for this if statement"),
    ("{% if A exists %}{% else %}", "t.tpl:1: missing endif for this if statement"),
    ("{% for i in range(2) %}", "t.tpl:1: missing endfor"),
    ("{% block B %}", "t.tpl:1: missing endblock"),
    ("{% set B %}", "t.tpl:1: missing endset"),
    ("x\n{% endif %}", "t.tpl:2: endif while not in if (outside any statement)"),
    ("{% for i in range(2) %}{% endif %}", "t.tpl:1: endif while not in if (inside for)"),
    ("{% else %}", "t.tpl:1: else without if"),
    ("a\n{% if A exists", "t.tpl:2: unterminated control statement"),
    ("{% %}", "t.tpl:1: empty control statement"),
    ("{% if A %}{% endif %}", "t.tpl:1: bad if statement"),
    ("{% for i of range(2) %}{% endfor %}", "t.tpl:1: bad for statement"),
    ("{% set A B %}{% endset %}", "t.tpl:1: bad set statement"),
    ("{% if A exists %}{% endif now %}", "t.tpl:1: bad endif statement"),
])
def test_syntax_errors_are_located(text, message):
    with pytest.raises(ConfigError) as info:
        parse_template(text, "t.tpl")
    assert str(info.value).startswith(message)


def test_control_words_do_not_split_on_tabs():
    # Only space ( ) and , separate words, as in N2D2: 'exists\t' is an unknown operator.
    assert "unknown operator" in render_error("{% if A exists\t%}{% endif %}", {"A": "1"})


def test_include_is_relative_to_the_including_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part.tpl").write_text("[{{S}}_part]\n")
    (tmp_path / "main.tpl").write_text("{% if S exists %}{% include sub/part.tpl %}{% endif %}")
    assert render_file(str(tmp_path / "main.tpl"), {"S": "x"}).text == "[x_part]\n"


def test_include_cycle_is_an_error(tmp_path):
    (tmp_path / "a.tpl").write_text("a\n{% include b.tpl %}")
    (tmp_path / "b.tpl").write_text("{% include a.tpl %}")
    with pytest.raises(ConfigError) as info:
        render_file(str(tmp_path / "a.tpl"), {})
    assert "template include cycle" in str(info.value)
    assert str(info.value).startswith(f"{tmp_path / 'b.tpl'}:1:")


def test_include_of_a_missing_file(tmp_path):
    (tmp_path / "a.tpl").write_text("\n{% include nope.tpl %}")
    with pytest.raises(ConfigError) as info:
        render_file(str(tmp_path / "a.tpl"), {})
    assert str(info.value).startswith(f"{tmp_path / 'a.tpl'}:2: could not open included "
                                      "template")


def test_included_file_must_be_balanced(tmp_path):
    (tmp_path / "part.tpl").write_text("{% endif %}")
    (tmp_path / "a.tpl").write_text("{% if A exists %}{% include part.tpl %}{% endif %}")
    with pytest.raises(ConfigError) as info:
        render_file(str(tmp_path / "a.tpl"), {"A": "1"})
    assert str(info.value).startswith(f"{tmp_path / 'part.tpl'}:1: endif while not in if")


def test_output_lines_map_back_to_template_lines():
    text = ("[{{S}}_a]\nK=1\n{% if P exists %}\n[{{S}}_p]\n{% endif %}\n"
            "{% for i in range(2) %}\n[{{S}}_{{i}}]\nI={{i}}\n{% endfor %}\n")
    rendered = parse_template(text, "t.tpl").render({"S": "b", "P": "1"})
    lines = rendered.lines()
    by_text = {line: origin for line, origin in zip(lines, rendered.origins)}
    assert len(rendered.origins) == len(lines)
    assert by_text["[b_a]"] == ("t.tpl", 1)
    assert by_text["K=1"] == ("t.tpl", 2)
    assert by_text["[b_p]"] == ("t.tpl", 4)
    assert by_text["[b_1]"] == ("t.tpl", 7)
    assert by_text["I=1"] == ("t.tpl", 8)


def test_runaway_loop_is_stopped():
    message = render_error("{% for i in range(1e12) %}" + "x" * 100 + "{% endfor %}")
    assert message.startswith("t.tpl:1: template output exceeds 20000000 characters")


@pytest.mark.parametrize("text, params", [
    ("{% for i in range(1000000000) %}{% endfor %}", {}),
    ("{% for i in range(S, E) %}{% endfor %}", {"S": "9007199254740992", "E": "1e300"}),
    ("{% for i in range(1e999) %}{% endfor %}", {}),
    ("{% block N %}{% endblock %}", {"N": "2147483647"}),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {}),
    ("{% for i in range(1e12) %}{% set X %}{% endset %}{% endfor %}", {}),
], ids=["empty-for", "float-stuck-at-2**53", "inf-range", "huge-block", "nested", "set-loop"])
def test_loops_that_produce_no_text_are_bounded_by_steps(text, params, monkeypatch):
    monkeypatch.setattr(template_nodes, "MAX_STEPS", 100_000)  # the default takes ~1 s
    message = render_error("\n" + text, params)
    assert message.startswith("t.tpl:2: template rendering exceeds 100000 steps")


def test_a_set_that_grows_quadratically_is_bounded_by_characters():
    text = "{% set X %}x{% endset %}{% for i in range(1e9) %}{% set X %}{{X}}{{X}}" \
           "{% endset %}{% endfor %}"
    assert "template output exceeds 20000000 characters" in render_error(text)


def test_the_budget_is_shared_by_parsing_and_rendering():
    budget = Budget(max_steps=11)
    template = parse_template("{% for i in range(3) %}{{i}}{% endfor %}", "t.tpl",
                              budget=budget)
    assert template.render({}, budget).text == "012"
    # parsing: for, endfor; rendering: text, for, text, then 3 x (iteration + its text)
    assert budget.steps == 11
    with pytest.raises(ConfigError, match="exceeds 11 steps"):
        template.render({}, budget)


def test_deep_nesting_is_a_located_error_not_a_recursion_error():
    text = "x\n" + "{% if A exists %}" * 5000 + "{% endif %}" * 5000
    assert render_error(text).startswith("t.tpl:2: statements nested more than 100 deep")


def test_exponential_includes_are_bounded(tmp_path):
    # f0 includes f1 twice, f1 includes f2 twice...: 2**40 copies without a bound.
    for level in range(40):
        (tmp_path / f"f{level}.tpl").write_text(f"{{% include f{level + 1}.tpl %}}" * 2)
    (tmp_path / "f40.tpl").write_text("x")
    with pytest.raises(ConfigError) as info:
        render_file(str(tmp_path / "f0.tpl"), {})
    assert "exceeds 2000000 steps" in str(info.value)
    assert str(info.value).endswith(f"{tmp_path}/f0.tpl:1: included from here")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "too-large"])
def test_only_regular_files_of_bounded_size_are_read(tmp_path, kind, monkeypatch):
    path = str(tmp_path / "t.tpl")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path = "/dev/zero"
    elif kind == "directory":
        os.mkdir(path)
    else:
        monkeypatch.setattr(template, "MAX_TEMPLATE_BYTES", 10)
        with open(path, "w") as stream:
            stream.write("x" * 11)
    with pytest.raises(ConfigError) as info:
        render_file(path, {})
    reason = {"fifo": "not a regular file (a FIFO)",
              "dev-zero": "not a regular file (a character device)",
              "directory": "not a regular file (a directory)",
              "too-large": "11 bytes is more than the limit of 10 bytes"}[kind]
    assert str(info.value) == f"{path}: could not open template file: {reason}"


def test_cpp_double_printing():
    assert [cpp_double(x) for x in (0.0, 1.0, 2.5, 1e6, 1234567.0)] == \
        ["0", "1", "2.5", "1e+06", "1.23457e+06"]
