"""n2prune-train end to end: outputs, resume after SIGKILL, errors, MNIST (when present)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from n2prune.cli import compact_main, train_main
from nets import BN_DIGITS  # conv, BatchNorm, Fc on the embedded digits, Gradual to 0.9

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")


def _run(tmp_path, *extra, name="run"):
    output = tmp_path / name
    code = train_main([DIGITS, "-learn-epoch", "4", "-seed", "7", "--threads", "1",
                       "--quiet", "--output", str(output), *extra])
    return code, output


def test_embedded_default_learns_prunes_and_writes_every_output(tmp_path):
    code, output = _run(tmp_path)
    assert code == 0
    report = json.loads((output / "report.json").read_text())
    assert report["test_accuracy"] > 0.85
    assert 0.74 < report["sparsity"] < 0.78  # QWeight.Threshold=0.75, reached in epoch 3
    assert report["epochs"] == 4 and report["seed"] == 7 and report["throughput"] > 0
    assert report["validation_accuracy"] is not None
    assert report["best_log_point"] >= 3  # only points at the final threshold compete
    assert report["pruning_reached"] is True and report["pruning_unfinished"] == {}
    costs = report["costs"]   # unstructured masks: fewer nonzero MACs; compaction removes only
    # output channels whose weights are all pruned, which 75 % unstructured may or may not leave
    assert costs["dense"]["macs"] >= costs["compacted"]["macs"] > costs["masked"]["nonzero_macs"]
    assert costs["dense"]["macs"] > costs["masked"]["nonzero_macs"]
    assert all(costs[n]["latency_ms"] > 0 for n in ("dense", "masked", "compacted"))
    for name in ("conv1", "conv2", "fc1", "fc2"):
        cell = report["cells"][name]
        assert cell["threshold"] == 0.75 and cell["sparsity"] >= 0.75
        assert {"type", "params", "zeros"} <= set(cell)
    rows = (output / "log.csv").read_text().splitlines()
    assert rows[0].startswith("log_point,epoch,stimuli,loss") and len(rows) == 5
    for name in ("weights/conv1_weights.syntxt", "weights/conv1_masks.syntxt",
                 "weights/fc2_biases.syntxt", "model.pt", "checkpoint.pt",
                 "learning_curves.png", "sparsity.png"):
        assert (output / name).stat().st_size > 0, name
    saved = torch.load(output / "model.pt", weights_only=True)
    mask = saved["net"]["layers.conv2.quantizer.mask"]
    masks_file = (output / "weights" / "conv2_masks.syntxt").read_text().split()
    assert [int(v) for v in masks_file] == mask.reshape(-1).int().tolist()
    torch.load(output / "checkpoint.pt", weights_only=True)


def test_test_only_run_reproduces_the_test_accuracy(tmp_path):
    _, output = _run(tmp_path)
    first = json.loads((output / "report.json").read_text())["test_accuracy"]
    learnt = (output / "report.json").read_text()
    assert train_main([DIGITS, "-test", "--quiet", "--output", str(output)]) == 0
    report = json.loads((output / "test_report.json").read_text())
    assert report["test_accuracy"] == first and report["seed"] == 7  # the learning run's split
    assert (output / "report.json").read_text() == learnt


def _command(output: Path, *extra):
    return [sys.executable, "-m", "n2prune", DIGITS, "-learn-epoch", "6", "-seed", "11",
            "--threads", "1", "--quiet", "--output", str(output), *extra]


# Runs n2prune-train and SIGKILLs it right after its second log point is checkpointed and
# logged: the same point every run, however fast the machine.
KILLED_AFTER_TWO_LOG_POINTS = """
import os, signal, sys
import n2prune.train.report as report
from n2prune.cli import train_main
original, calls = report.write_log, []
def write_log(*args, **kwargs):
    original(*args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
report.write_log = write_log
sys.exit(train_main(sys.argv[1:]))
"""


def test_a_run_killed_and_resumed_ends_exactly_like_an_uninterrupted_one(tmp_path):
    whole = tmp_path / "whole"
    subprocess.run(_command(whole), check=True, timeout=300)
    cut = tmp_path / "cut"
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_TWO_LOG_POINTS,
                             *_command(cut)[3:]], timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert len((cut / "log.csv").read_text().splitlines()) == 3
    assert not (cut / "report.json").exists()
    assert subprocess.run(_command(cut), capture_output=True).returncode == 2  # no clobbering
    subprocess.run(_command(cut, "--resume"), check=True, timeout=300)
    a = torch.load(whole / "model.pt", weights_only=True)["net"]
    b = torch.load(cut / "model.pt", weights_only=True)["net"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ra = json.loads((whole / "report.json").read_text())
    rb = json.loads((cut / "report.json").read_text())
    assert ra["test_accuracy"] == rb["test_accuracy"]
    assert ra["best_log_point"] == rb["best_log_point"]
    assert (whole / "weights" / "fc1_masks.syntxt").read_text() == \
        (cut / "weights" / "fc1_masks.syntxt").read_text()
    assert not list(cut.rglob("*.tmp"))


@pytest.mark.parametrize("args,words", [
    (["-learn-epoch", "-2"], ["-learn-epoch", ">= 0"]),
    (["-learn", "10", "-learn-epoch", "1"], ["either -learn"]),
    ([], ["nothing to do", "-learn-epoch N"]),
    (["-valid-metric", "Acuracy", "-learn-epoch", "1"], ["Acuracy", "Accuracy"]),
    (["-test"], ["no trained network"]),
    (["-w", "/nonexistent/dir", "-learn-epoch", "1"], ["/nonexistent/dir"]),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, words):
    code = train_main([DIGITS, "--output", str(tmp_path / "o"), "--quiet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    for word in words:
        assert word in err[0]


@pytest.mark.parametrize("where, words", [("file", ["a file is there", "give a folder"]),
                                          ("file/sub", ["cannot be created", "Not a directory",
                                                        "choose another --output"])])
def test_an_output_that_cannot_be_a_folder_is_a_one_line_error(tmp_path, capsys, where, words):
    """n2prune-train and n2prune-compact name --output and say what would do, without the
    system's errno text, and leave the file that was in the way alone."""
    (tmp_path / "file").write_text("keep me")
    output = str(tmp_path / where)
    assert train_main([DIGITS, "-learn-epoch", "1", "--quiet", "--output",
                       str(tmp_path / "run")]) == 0
    capsys.readouterr()  # the short run's own warning (targets not reached in one epoch)
    for main, args in ((train_main, [DIGITS, "-learn-epoch", "1", "--quiet"]),
                       (compact_main, [DIGITS, "-w", str(tmp_path / "run" / "weights")])):
        code = main([*args, "--output", output])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith(f"error: --output {output}: ")
        assert "Errno" not in err[0] and all(word in err[0] for word in words)
    assert (tmp_path / "file").read_text() == "keep me"

def test_unknown_option_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit:
        train_main([DIGITS, "-learn-epochs", "2"])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unrecognized arguments: -learn-epochs 2 (see n2prune-train -h)"]


def test_n2d2_weight_files_import_with_w(tmp_path):
    _, output = _run(tmp_path)
    first = json.loads((output / "report.json").read_text())
    other = tmp_path / "imported"
    assert train_main([DIGITS, "-test", "-seed", "7", "--quiet", "--output", str(other),
                       "-w", str(output / "weights")]) == 0
    report = json.loads((other / "test_report.json").read_text())
    assert report["test_accuracy"] == first["test_accuracy"]
    assert report["sparsity"] == pytest.approx(first["sparsity"])


def test_missing_data_says_where_it_looked_and_how_to_point_elsewhere(tmp_path, capsys):
    environ = dict(os.environ, N2D2_DATA=str(tmp_path / "nowhere"))
    code = subprocess.run([sys.executable, "-m", "n2prune", str(ROOT / "networks" / "lenet.ini"),
                           "-learn-epoch", "1", "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, env=environ)
    assert code.returncode == 2
    lines = code.stderr.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "DataPath" in lines[0]
    assert "Traceback" not in code.stderr
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_existing_run_is_not_overwritten_without_consent(tmp_path, capsys):
    _, output = _run(tmp_path)
    before = (output / "report.json").read_text()
    code = train_main([DIGITS, "-learn-epoch", "1", "--quiet", "--output", str(output)])
    assert code == 2 and "--resume" in capsys.readouterr().err
    assert (output / "report.json").read_text() == before


def test_short_mnist_run_with_lenet(tmp_path, mnist_dir):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mnist").symlink_to(mnist_dir)
    environ = dict(os.environ, N2D2_DATA=str(data))
    result = subprocess.run([sys.executable, "-m", "n2prune",
                             str(ROOT / "networks" / "lenet.ini"), "-learn", "3200", "-log",
                             "1600", "-seed", "1", "--quiet", "--output", str(tmp_path / "o")],
                            capture_output=True, text=True, env=environ, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["sets"] == {"Learn": 7200, "Validation": 800, "Test": 2000}
    assert report["test_accuracy"] > 0.8  # 3,200 stimuli, half an epoch
    assert report["cells"]["fc1"]["current_threshold"] == pytest.approx(0.3)


def test_compact_writes_the_compacted_network_and_its_figures(tmp_path):
    pytest.importorskip("onnxruntime")
    from n2prune import load_network
    from n2prune.compact.onnx_export import run_onnx
    from n2prune.compact.writeback import write_compacted
    from n2prune.n2d2io.read import read_weights
    net_ini = tmp_path / "digits.ini"   # whole output channels pruned: some groups go
    net_ini.write_text(Path(DIGITS).read_text().replace(
        "QWeight.PruningFiller=IterNonStruct", "QWeight.PruningFiller=L1Norm\n"
        "QWeight.PruningPattern=Channel"))
    output = tmp_path / "run"
    assert train_main([str(net_ini), "-learn", "64", "-log", "64", "-seed", "3", "--threads",
                       "1", "--quiet", "--compact", "--output", str(output)]) == 0
    report = json.loads((output / "report.json").read_text())
    entry, folder = report["compact"], output / "compact"
    assert entry["files"] == sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                                    if p.is_file())
    assert {"digits.ini", "digits.onnx", "weights/conv1_weights.syntxt"} <= set(entry["files"])
    # the files n2prune-compact writes from the run's weights
    trained = load_network(str(net_ini)).eval()
    assert read_weights(trained, output / "weights", ignore_missing=False)
    _, small = write_compacted(trained, str(net_ini), str(tmp_path / "again"))
    for name in entry["files"]:
        if not name.endswith(".onnx"):
            assert (folder / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert entry["removed_groups"] == small.compaction["removed_groups"] > 0
    costs = report["costs"]
    assert costs["compacted"]["macs"] == entry["macs"] < costs["dense"]["macs"]
    assert costs["compacted"]["parameters"] == entry["parameters"] < costs["dense"]["parameters"]
    x = torch.randn(3, *trained.input_shape)
    with torch.no_grad():
        assert torch.allclose(run_onnx(folder / "digits.onnx", x), trained(x), atol=1e-5)


def test_compact_with_test_only_is_a_one_line_error(tmp_path, capsys):
    assert train_main([DIGITS, "-test", "--compact", "--output", str(tmp_path / "o")]) == 2
    assert "--compact" in capsys.readouterr().err


def test_recalibrate_bn_changes_only_the_batchnorm_statistics(tmp_path, monkeypatch):
    """--recalibrate-bn N re-estimates BatchNorm statistics on N Learn batches after each
    mask update, from a generator of its own: learning (losses, weights, masks) is the same
    as without it; the running statistics, and so validation, are not."""
    import n2prune.train.trainer as trainer_module
    ini = tmp_path / "bn.ini"
    ini.write_text(BN_DIGITS)
    calls = []
    real = trainer_module.recalibrate

    def counting(net, batches):
        calls.append([tuple(x.shape) for x in batches])
        return real(net, batches)

    monkeypatch.setattr(trainer_module, "recalibrate", counting)
    runs = {}
    for name, extra in (("plain", []), ("recalibrated", ["--recalibrate-bn", "3"])):
        assert train_main([str(ini), "-learn-epoch", "3", "-seed", "4", "--quiet",
                           "--output", str(tmp_path / name), *extra]) == 0
        runs[name] = (tmp_path / name / "log.csv").read_text().splitlines()
    assert calls == [[(32, 1, 8, 8)] * 3] * 3  # three mask updates: 0.3 -> ... -> 0.9
    plain, recalibrated = (torch.load(tmp_path / n / "model.pt")["net"] for n in runs)
    for key, value in plain.items():
        if "running" not in key and isinstance(value, torch.Tensor):
            assert torch.equal(value, recalibrated[key]), key
    assert not torch.equal(plain["layers.bn1.running_mean"],
                           recalibrated["layers.bn1.running_mean"])
    column = runs["plain"][0].split(",").index("learn_accuracy")
    assert [r.split(",")[column] for r in runs["plain"]] == \
        [r.split(",")[column] for r in runs["recalibrated"]]
    with pytest.raises(SystemExit):
        train_main([str(ini), "--recalibrate-bn", "x"])
    assert train_main([str(ini), "-learn-epoch", "1", "--recalibrate-bn", "-1"]) == 2
