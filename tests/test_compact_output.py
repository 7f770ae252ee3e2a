"""n2prune-compact's --output: the lock and --overwrite rules of n2prune-train, another
command's results refused, and every write-back read back before success."""

import json
from pathlib import Path

import pytest
import torch

from n2prune import load_network
from n2prune.cli import compact_main, train_main
from n2prune.compact import writeback
from n2prune.compact.writeback import write_compacted
from n2prune.n2d2io.read import read_weights
from n2prune.n2d2io.write import write_weights
from n2prune.train.runlock import RunLock

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")
LENET = str(ROOT / "networks" / "lenet.ini")
ENV = {"N2D2_DATA": "/nowhere"}


def _compact(ini, output, *more):
    return compact_main([ini, "--no-onnx", "--output", str(output), *more])


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_second_compaction_while_one_holds_the_folder_is_refused(tmp_path, capsys):
    lock = RunLock(tmp_path / "out")   # as a first n2prune-compact still writing would
    try:
        assert _compact(DIGITS, tmp_path / "out") == 2
    finally:
        lock.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is in use by another run (process" in err[0]
    assert _files(tmp_path / "out") == [".lock"]


def test_a_rerun_needs_overwrite_and_leaves_no_stale_file(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("N2D2_DATA", "/nowhere")
    assert _compact(LENET, tmp_path / "out") == 0
    lenet = _files(tmp_path / "out")
    assert "lenet.ini" in lenet and "weights/conv1_weights.syntxt" in lenet
    capsys.readouterr()
    assert _compact(DIGITS, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a compacted network (lenet.ini" in err[0]
    assert "--overwrite replaces it" in err[0]
    assert _files(tmp_path / "out") == lenet   # untouched
    assert _compact(DIGITS, tmp_path / "out", "--overwrite") == 0
    now = _files(tmp_path / "out")
    assert not [name for name in now if "lenet" in name]
    manifest = json.loads((tmp_path / "out" / ".compacted.json").read_text())
    assert sorted(manifest["files"] + [".compacted.json", ".lock"]) == now
    # what is there reads back as one network
    back = load_network(str(tmp_path / "out" / "digits.ini"))
    assert read_weights(back, tmp_path / "out" / "weights", ignore_missing=False)
    for path in (tmp_path / "out" / "weights").iterdir():   # no file of lenet's cells
        assert any(path.name.startswith(cell + "_") for cell in back.cells), path.name


def test_a_training_run_is_refused_even_with_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert train_main([DIGITS, "-learn-epoch", "1", "--quiet", "--output", str(run)]) == 0
    before = {p: p.read_bytes() for p in (run / "weights").iterdir()}
    capsys.readouterr()
    for more in ([], ["--overwrite"]):
        assert _compact(DIGITS, run, "-w", str(run / "weights"), *more) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--output {run} holds a training run (checkpoint.pt" in err[0]
        assert "choose another --output" in err[0]
    assert {p: p.read_bytes() for p in (run / "weights").iterdir()} == before


def test_training_into_a_compacted_folder_is_refused(tmp_path, capsys):
    assert _compact(DIGITS, tmp_path / "small") == 0
    capsys.readouterr()
    for more in ([], ["--overwrite"]):
        assert train_main([DIGITS, "-learn-epoch", "1", "--quiet", "--output",
                           str(tmp_path / "small"), *more]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds a compacted network written by n2prune-compact" in err[0]
    assert not (tmp_path / "small" / "report.json").exists()


def test_a_folder_of_other_files_is_refused(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert _compact(DIGITS, tmp_path / "mine", "--overwrite") == 2
    assert "holds files n2prune-compact did not write (notes.txt)" in capsys.readouterr().err
    assert _files(tmp_path / "mine") == [".lock", "notes.txt"]


TWO_INPUT_DEPTHWISE = """[sp]
SizeX=8
SizeY=8
NbChannels=1
BatchSize=2
[c2]
Input=sp
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=8
[c3]
Input=sp
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=8
; one output per input channel of each parent
[dw]
Input=c2,c3
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=16
Mapping.ChannelsPerGroup=1
[fc]
Input=dw
Type=Fc
NbOutputs=4
"""


def test_a_two_input_depthwise_conv_writes_back_what_reads_back(tmp_path):
    ini = tmp_path / "dw.ini"
    ini.write_text(TWO_INPUT_DEPTHWISE)
    net = load_network(str(ini), seed=1).eval()
    with torch.no_grad():   # c2 and c3 lose different channels (bias 0: no shift map)
        for name, lost in (("c2", slice(0, None, 2)), ("c3", slice(1, None, 3))):
            net.cells[name].weight[lost] = 0
            net.cells[name].bias[lost] = 0
    write_weights(net, tmp_path / "w")
    assert _compact(str(ini), tmp_path / "out", "-w", str(tmp_path / "w")) == 0
    text = (tmp_path / "out" / "dw.ini").read_text()
    assert "NbOutputs=4" in text and "NbOutputs=5" in text
    assert "Mapping.ChannelsPerGroup" not in text and "Mapping(c2)=" in text
    back = load_network(str(tmp_path / "out" / "dw.ini")).eval()
    read_weights(back, tmp_path / "out" / "weights", ignore_missing=False)
    assert back.cells["dw"].weight.shape[1] == 9
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(back(x), net(x), atol=1e-4)


def test_a_write_back_that_does_not_read_back_fails_and_leaves_nothing(monkeypatch, tmp_path):
    """Whatever goes wrong in the INI text, the command does not report success."""
    ini = tmp_path / "dw.ini"
    ini.write_text(TWO_INPUT_DEPTHWISE)
    net = load_network(str(ini), seed=1).eval()
    with torch.no_grad():
        net.cells["c2"].weight[::2] = 0
    monkeypatch.setattr(writeback, "compacted_ini_text",
                        lambda small, source, out: Path(source).read_text())   # unchanged INI
    with pytest.raises(ValueError, match=r"dw\.ini with .*weights: the written network does not "
                                         r"read back \(.*c2_weights\.syntxt:4: file ends"):
        write_compacted(net, str(ini), str(tmp_path / "out"), onnx=False)
    assert _files(tmp_path / "out") == []
