"""--resume continues only the run that wrote the checkpoint: same INI, templates, included
files, environment variables read, and options that change results; a run killed before its
first checkpoint starts afresh; no temporary file survives."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

from n2prune.cli import train_main
from n2prune.train.identity import RecordingEnviron, differences, run_identity

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "networks" / "digits.ini"

FC_TEMPLATE = """; fc1 of digits.ini, its body in an included file
[{{SECTION_NAME}}_fc]
Input={{INPUT}}
{% include fcbody.inc %}
"""
FC_BODY = """Type=Fc
NbOutputs=64
ActivationFunction=Rectifier
WeightsFiller=HeFiller
ConfigSection=common.config
QWeight=Prune
"""


def _network(folder: Path) -> Path:
    """digits.ini with fc1 from ${N2P_TPL}/fc.tpl, which includes fcbody.inc."""
    folder.mkdir()
    (folder / "tpl").mkdir()
    (folder / "tpl" / "fc.tpl").write_text(FC_TEMPLATE)
    (folder / "tpl" / "fcbody.inc").write_text(FC_BODY)
    text = DIGITS.read_text()
    start, end = text.index("[fc1]"), text.index("[fc2]")
    text = text[:start] + "[fc1@${N2P_TPL}/fc.tpl]\nINPUT=pool2\n\n" + text[end:]
    text = text.replace("[fc2]\nInput=fc1\n", "[fc2]\nInput=fc1_fc\n")
    (folder / "net.ini").write_text(text)
    return folder / "net.ini"


@pytest.fixture(scope="module")
def learnt(tmp_path_factory):
    """One finished 1-epoch run of the templated network, copied by each test."""
    base = tmp_path_factory.mktemp("learnt")
    ini = _network(base / "net")
    assert _train([str(ini), *_options(base / "run")], _env(base / "net")) == 0
    return base


def _train(argv, env) -> int:
    with mock.patch.dict("os.environ", env):
        return train_main(argv)


def _env(net: Path) -> dict:
    return {"N2P_TPL": "tpl"}  # relative to the INI file's folder


def _options(output: Path, *extra):
    return ["-learn-epoch", "1", "-seed", "4", "--threads", "1", "--quiet", "--output",
            str(output), *extra]


def _copy(learnt: Path, tmp_path: Path):
    shutil.copytree(learnt / "net", tmp_path / "net")
    shutil.copytree(learnt / "run", tmp_path / "run")
    return tmp_path / "net", tmp_path / "run"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("change,words", [
    (lambda net, env, opts: _edit(net / "tpl" / "fcbody.inc", "NbOutputs=64", "NbOutputs=48"),
     "fcbody.inc changed"),
    (lambda net, env, opts: _edit(net / "tpl" / "fc.tpl", "; fc1 of", "; the fc1 of"),
     "fc.tpl changed"),
    (lambda net, env, opts: _edit(net / "net.ini", "Learn=0.7", "Learn=0.6"),
     "net.ini changed"),
    (lambda net, env, opts: env.update(N2P_TPL="./tpl"),
     "environment variable N2P_TPL was"),
    (lambda net, env, opts: opts.extend(["-valid-metric", "Accuracy"]),
     "option -valid-metric was 'Sensitivity', now 'Accuracy'"),
    (lambda net, env, opts: opts.extend(["-log-epoch", "2"]), "option -log-epoch was 1, now 2"),
])
def test_resume_refuses_a_run_defined_differently(learnt, tmp_path, capsys, change, words):
    net, run = _copy(learnt, tmp_path)
    env, extra = _env(net), []
    change(net, env, extra)
    before = (run / "report.json").read_text()
    capsys.readouterr()
    code = _train([str(net / "net.ini"), *_options(run, "--resume", *extra)], env)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "checkpoint.pt: made by another run: " in err[0] and words in err[0]
    assert (run / "report.json").read_text() == before


def test_cosmetic_options_and_another_working_directory_may_change(learnt, tmp_path,
                                                                   monkeypatch):
    net, run = _copy(learnt, tmp_path)
    monkeypatch.chdir(net)  # the same files through another relative path
    code = _train(["net.ini", "-learn-epoch", "1", "-seed", "4", "--threads", "2",
                   "--output", str(run), "--resume"], _env(net))
    assert code == 0


def test_identity_differences_name_what_changed():
    old = run_identity([("a.ini", "1"), ("t.tpl", "2")], {"X": "1", "Y": None},
                       {"seed": 1, "valid_metric": "Sensitivity"})
    assert differences(old, old) == []
    new = run_identity([("../a.ini", "1"), ("t.tpl", "3"), ("i.inc", "4")],
                       {"X": "2", "Y": None}, {"seed": 1, "valid_metric": "F1Score"})
    assert differences(old, new) == [
        "t.tpl changed", "i.inc is now read, it was not", "environment variable X was '1', "
        "now '2'", "option -valid-metric was 'Sensitivity', now 'F1Score'"]


def test_recording_environ_records_each_lookup_set_or_not():
    environ = RecordingEnviron({"A": "1", "B": "2"})
    assert environ.get("A") == "1" and "Z" not in environ and environ.get("Q", "d") == "d"
    with pytest.raises(KeyError):
        environ["W"]
    assert environ.reads == {"A": "1", "Z": None, "Q": None, "W": None}


def test_a_run_killed_before_its_first_checkpoint_resumes_afresh(tmp_path, capsys):
    output = tmp_path / "run"
    (output / "weights").mkdir(parents=True)
    (output / ".lock").write_text("12345\n")  # what a killed run leaves
    (output / ".checkpoint.pt.a1b2c3.tmp").write_bytes(b"half")
    (output / "weights" / ".fc1_weights.syntxt.x9.tmp").write_text("1 2")
    code = train_main([str(DIGITS), *_options(output, "--resume")])
    assert code == 0
    assert json.loads((output / "report.json").read_text())["epochs"] == 1
    assert not list(output.rglob("*.tmp"))
    code = train_main([str(DIGITS), "-learn-epoch", "1", "-seed", "4", "--output", str(output),
                       "--resume"])
    assert code == 0  # now it continues the finished run


def test_a_subprocess_killed_early_resumes_with_the_same_command(tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, "-m", "n2prune", str(DIGITS), *_options(output)]
    process = subprocess.Popen(command)
    deadline = time.time() + 120
    while time.time() < deadline and not (output / ".lock").exists():
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = subprocess.run(command + ["--resume"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert (output / "report.json").exists() and not list(output.rglob("*.tmp"))
