"""A first run explains itself: where the data goes, unfinished pruning, Ctrl-C, --quiet,
file permissions, and -h naming every output file."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from n2prune.atomic import atomic_write_text
from n2prune.cli import TRAIN_EPILOG, train_main, train_parser
from n2prune.n2d2io.write import BN_FILES

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")


def _options(output, *extra):
    return ["-learn-epoch", "1", "-seed", "2", "--threads", "1", "--output", str(output),
            *extra]


def test_missing_mnist_says_n2d2_data_is_the_folder_above_mnist(tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setenv("N2D2_DATA", str(tmp_path / "data"))
    code = train_main([str(ROOT / "networks" / "lenet.ini"), *_options(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"not found in '{tmp_path / 'data' / 'mnist'}'" in err[0]
    assert "set DataPath= in [database] to the folder that holds the MNIST files, or the " \
           "N2D2_DATA environment variable to the folder that holds mnist/" in err[0]


def test_a_run_ending_before_its_pruning_targets_says_so_and_quiet_prints_the_result(
        tmp_path, capsys):
    assert train_main([DIGITS, *_options(tmp_path / "o", "--quiet")]) == 0
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err.splitlines()
    assert len(out) == 1 and re.fullmatch(r"Final recognition rate: \d+\.\d\d%", out[0])
    assert err == ["warning: pruning targets not reached: conv1 (threshold 0.45 of 0.75), conv2 "
                   "(threshold 0.45 of 0.75), fc1 (threshold 0.45 of 0.75), fc2 (threshold 0.45 "
                   "of 0.75); the run ended before its Gradual schedule did: learn longer "
                   "(more -learn-epoch) to reach them"]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["pruning_reached"] is False
    assert report["pruning_unfinished"]["fc1"] == [pytest.approx(0.45), 0.75]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == mode


def _produced(output: Path):
    return [p.relative_to(output) for p in output.rglob("*") if p.is_file()]


def test_help_names_every_file_a_run_writes(tmp_path, capsys):
    previous = os.umask(0o022)
    try:
        assert train_main([DIGITS, *_options(tmp_path / "o", "--quiet")]) == 0
        assert train_main([DIGITS, "-test", "--quiet", "--output", str(tmp_path / "t"),
                           "-w", str(tmp_path / "o" / "weights")]) == 0
    finally:
        os.umask(previous)
    text = train_parser().format_help()
    files = _produced(tmp_path / "o") + _produced(tmp_path / "t")
    assert {str(f) for f in files} >= {"report.json", "checkpoint.pt", ".lock",
                                       "test_report.json"}
    for path in files:
        assert stat.S_IMODE((tmp_path / ("t" if path.name == "test_report.json" else "o")
                             / path).stat().st_mode) == 0o644, path
        if path.parts[0] == "weights":  # conv1_weights.syntxt -> <cell>_weights.syntxt
            name = re.sub(r"^(conv|fc)\d", "<cell>", path.name)
            assert name in text, path
        else:
            assert re.search(rf"(^|\s){re.escape(str(path))}\s", text), path


@pytest.mark.parametrize("suffix", [s for s, _ in BN_FILES])
def test_help_names_the_batchnorm_files(suffix):
    assert f"<cell>_{suffix}.syntxt" in TRAIN_EPILOG


def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path):
    output = tmp_path / "o"
    command = [sys.executable, "-m", "n2prune", DIGITS, "-learn-epoch", "500", "-seed", "2",
               "--threads", "1", "--quiet", "--output", str(output)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (output / "checkpoint.pt").exists():
        assert process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == (
        f"interrupted: {output / 'checkpoint.pt'} holds the run up to its last log point; "
        f"run the same command with --resume to continue it")
    assert not list(output.rglob("*.tmp"))
