"""--import MODULE and the n2prune.plugins entry points, in every command: an INI naming a
user's criterion works from the command line; a failing import is one located line."""

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from n2prune import plugins
from n2prune.cli import compact_main, info_main, train_main
from n2prune.prune.criteria import CRITERIA

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = """from n2prune import register_criterion

@register_criterion("{name}")
def score(weight, stats):
    return weight.detach().abs() * 2
"""
BROKEN = """import math

x = math.pi
y = undefined_name + 1
"""
COMMANDS = {"info": lambda ini, *more: info_main([str(ini), *more]),
            "compact": lambda ini, *more: compact_main([str(ini), "--no-onnx", "--output",
                                                        str(Path(ini).parent / "out"), *more]),
            "train": lambda ini, *more: train_main([str(ini), "-learn", "64", "-log", "64",
                                                    "--quiet", "--output",
                                                    str(Path(ini).parent / "run"), *more])}


@pytest.fixture
def user_ini(tmp_path, monkeypatch, request):
    """digits.ini with a criterion of the user's, in tmp_path beside the module defining it."""
    name = f"UserScore{abs(hash(request.node.name)) % 10**8}"
    module = f"user_scores_{abs(hash(request.node.name)) % 10**8}"
    (tmp_path / f"{module}.py").write_text(PLUGIN.format(name=name))
    text = (ROOT / "networks" / "digits.ini").read_text()
    ini = tmp_path / "net.ini"
    ini.write_text(text.replace("QWeight.PruningFiller=IterNonStruct",
                                f"QWeight.PruningFiller={name}"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield ini, module, name
    sys.modules.pop(module, None)
    if name in CRITERIA:
        CRITERIA.unregister(name)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_import_makes_a_user_criterion_usable_from_the_command_line(command, user_ini, capsys):
    ini, module, name = user_ini
    assert COMMANDS[command](ini) == 2   # without it, the INI names an unknown filler
    assert name in capsys.readouterr().err
    assert COMMANDS[command](ini, "--import", module) == 0, capsys.readouterr().err
    assert name in CRITERIA


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_failing_import_is_one_located_line(command, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_plugin.py").write_text(BROKEN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "broken_plugin", raising=False)
    ini = ROOT / "networks" / "digits.ini"
    assert COMMANDS[command](ini, "--import", "broken_plugin") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --import broken_plugin: {tmp_path / 'broken_plugin.py'}:4: "
                   f"NameError: name 'undefined_name' is not defined"]


def test_a_missing_module_names_where_it_was_looked_for(capsys):
    assert info_main([str(ROOT / "networks" / "digits.ini"), "--import", "no_such_mod"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --import no_such_mod: no module 'no_such_mod' on the Python path (the current "
        "folder, PYTHONPATH, installed packages)")


def test_entry_points_of_the_group_are_loaded_by_every_command(user_ini, monkeypatch):
    ini, module, name = user_ini
    sys.path.insert(0, str(ini.parent))
    point = EntryPoint(name="mine", value=module, group=plugins.GROUP)
    monkeypatch.setattr(plugins, "entry_points",
                        lambda group: [point] if group == plugins.GROUP else [])
    assert info_main([str(ini)]) == 0
    assert name in CRITERIA


def test_a_failing_entry_point_names_it(monkeypatch, tmp_path):
    (tmp_path / "bad_entry.py").write_text("raise RuntimeError('no licence')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bad_entry", raising=False)
    point = EntryPoint(name="bad", value="bad_entry", group=plugins.GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [point])
    with pytest.raises(ValueError, match=r"^entry point bad = bad_entry \(n2prune\.plugins\): "
                                         r".*bad_entry\.py:1: RuntimeError: no licence$"):
        plugins.load_plugins()
