"""Fuzzing the INI reader and builder (issue 8 item 8): mutated real files, each load bounded
in time and memory; only a located ConfigError may escape. A longer run:
``python tools/fuzz_ini.py --count 5000 --seed 1``."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from n2prune.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import fuzz_ini  # noqa: E402


def test_mutated_real_ini_files_give_only_located_config_errors():
    # 100 mutants of networks/*.ini, their templates and ../shared's files when present:
    # a few seconds. The tool sets a 4 GiB address-space limit and a 10 s alarm per mutant.
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz_ini.py"), "--count",
                             "100", "--seed", "0", "--json"], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["checked"] == 100
    assert report["failures"] == []


@pytest.mark.parametrize("raised, expected", [
    (KeyError("x"), "KeyError: \"'x'\""),
    (ConfigError("no place"), "unlocated ConfigError: 'no place'"),
    (ConfigError("no line", path="a.ini"), "unlocated ConfigError: 'a.ini: no line'"),
    (ConfigError("fine", path="a.ini", line=3), None),
])
def test_the_checker_reports_anything_but_a_located_config_error(monkeypatch, raised,
                                                                   expected):
    def load(path, max_elements):
        raise raised
    monkeypatch.setattr(fuzz_ini, "load_one", load)
    assert fuzz_ini.check(Path("a.ini"), 5.0, 100) == expected


def test_the_checker_bounds_time(monkeypatch):
    monkeypatch.setattr(fuzz_ini, "load_one", lambda path, max_elements: time.sleep(5))
    assert fuzz_ini.check(Path("a.ini"), 0.2, 100) == "took more than 0.2 s"


def test_mutations_are_reproducible_from_the_seed():
    import random
    text = "[sp]\nSizeX=28\nSizeY=28\n[conv1]\nInput=sp\nNbOutputs=16\n"
    first = [fuzz_ini.mutate(text, random.Random(7)) for _ in range(3)]
    assert first == [fuzz_ini.mutate(text, random.Random(7)) for _ in range(3)]
    assert all(mutant != text for mutant, _ in first)
