"""Public names resolve as documented, -seed 0 means the same in every command, and long
"known:" lists are cut to the nearest few."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from n2prune.cli import compact_main, info_main
from n2prune.network import build
from n2prune.registry import Registry, did_you_mean

DIGITS = str(Path(__file__).resolve().parent.parent / "networks" / "digits.ini")


def test_documented_modules_resolve_after_import_n2prune():
    code = ("import n2prune; n2prune.strategies.GlobalMagWeight; "
            "n2prune.compact.costs.cost_report; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.fixture
def seeds(monkeypatch):
    used = []
    real = build.load_network

    def recording(path, *args, seed=0, **kwargs):
        if str(path) == DIGITS:   # not the compacted INI read back
            used.append(seed)
        return real(path, *args, seed=seed, **kwargs)
    monkeypatch.setattr(build, "load_network", recording)
    return used


@pytest.mark.parametrize("main, more", [(info_main, []), (compact_main, ["--no-onnx"])])
def test_seed_0_picks_a_seed_from_the_clock_in_every_command(main, more, seeds, tmp_path,
                                                              capsys):
    assert main([DIGITS, "-seed", "0", *more, *(["--output", str(tmp_path / "o")]
                                              if main is compact_main else [])]) == 0
    err = capsys.readouterr().err
    picked = re.search(r"seed (\d+) \(picked from the clock: -seed \1 repeats this\)", err)
    assert picked and seeds == [int(picked.group(1))] and seeds[0] > 0


@pytest.mark.parametrize("main", [info_main, compact_main])
def test_the_default_seed_is_fixed_and_silent(main, seeds, tmp_path, capsys):
    extra = ["--no-onnx", "--output", str(tmp_path / "o")] if main is compact_main else []
    assert main([DIGITS, *extra]) == 0 and main([DIGITS, "-seed", "5", *extra,
                                                 *(["--overwrite"] if extra else [])]) == 0
    assert seeds == [1, 5] and "picked from the clock" not in capsys.readouterr().err


def test_known_lists_are_cut_to_the_nearest_few():
    short = did_you_mean("Fcc", ["Fc", "Conv", "Pool"], "cell type")
    assert short == "unknown cell type 'Fcc'; did you mean 'Fc'? (known: Conv, Fc, Pool)"
    names = [f"Filler{i:02d}" for i in range(30)] + ["Magnitude", "magnitudes"]
    long = did_you_mean("Magnitud", names, "filler")
    listed = long.split("nearest first: ")[1].split(", ... ")[0].split(", ")
    assert long.startswith("unknown filler 'Magnitud'; did you mean 'Magnitude'?")
    assert listed[:2] == ["Magnitude", "magnitudes"] and len(listed) == 6
    assert long.endswith(", ... 32 in all)")


def test_a_registry_error_uses_the_cut_list():
    family = Registry("toy")
    for i in range(20):
        family.register(f"Toy{i}")(i)
    with pytest.raises(ValueError, match=r"did you mean 'Toy1'\? \(known, nearest first: "
                                         r"Toy1, .*20 in all\)$"):
        family.get("toy1")
