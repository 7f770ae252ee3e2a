"""n2prune-compact: INI write-back, N2D2 weight files, ONNX, costs."""

import warnings

import pytest
import torch

from n2prune import load_network
from n2prune.cli import compact_main
from n2prune.compact.costs import cost_report, macs, parameters
from n2prune.compact.writeback import n2d2_ready, write_compacted
from n2prune.n2d2io.read import read_weights
from test_compact import NETWORKS, ROOT, _prune_half, tiny

pytest.importorskip("onnxruntime")
from n2prune.compact.onnx_export import export_onnx, run_onnx  # noqa: E402

SMALL_N2D2 = ["models/GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini", "models/LeNet.ini",
              "models/cifar-10.ini", "models/mnist24_16c4s2_24c5s2_150_10.ini",
              "tests_data/mnist_model/model.ini", "tests_data/mnist_multibranch_model/model.ini"]
ENV = {"N2D2_DATA": "/nowhere"}


def _load(path, environ):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_network(str(path), environ=environ).eval()


def _logits(net, x):
    """The input of the last cell (Softmax squashes differences)."""
    names = list(net.cells)
    with torch.no_grad():
        return net.outputs(x, [names[-2]])[names[-2]]


def _round_trip(path, environ, tmp_path):
    net = _load(path, environ)
    _prune_half(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written, small = write_compacted(net, str(path), str(tmp_path))
    back = load_network(str(tmp_path / path.name), environ=environ).eval()
    assert read_weights(back, tmp_path / "weights", ignore_missing=False)
    ready, _ = n2d2_ready(small)
    x = torch.randn(4, *net.input_shape, generator=torch.Generator().manual_seed(3))
    expected = _logits(ready, x)
    assert torch.allclose(_logits(back, x), expected, rtol=1e-4,
                          atol=1e-5 * max(1.0, float(expected.abs().max())))
    if "shift" not in small.compaction["folds"].values():   # N2D2 files exact
        masked = _logits(net, x)
        assert torch.allclose(_logits(back, x), masked, rtol=1e-4,
                              atol=1e-5 * max(1.0, float(masked.abs().max())))
    with torch.no_grad():
        exact = small(x)
    assert torch.allclose(run_onnx(tmp_path / f"{path.stem}.onnx", x), exact, atol=1e-5)
    return net, small, back


LARGE = {"resnet18-cifar.ini"}   # 11M weights as text: minutes on a busy machine


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n
                                  for n in NETWORKS])
def test_networks_round_trip(name, tmp_path):
    _round_trip(ROOT / "networks" / name, ENV, tmp_path)


@pytest.mark.parametrize("name", SMALL_N2D2)
def test_n2d2_models_round_trip(n2d2_models, name, tmp_path):
    _round_trip(n2d2_models / name, {"N2D2_MODELS": str(n2d2_models / "models")}, tmp_path)


def test_lenet_ini_changes_only_channel_counts(tmp_path):
    path = ROOT / "networks" / "lenet.ini"
    _, small, _ = _round_trip(path, ENV, tmp_path)
    old = path.read_text().split("\n")
    new = (tmp_path / "lenet.ini").read_text().split("\n")
    assert len(old) == len(new)
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    # pool1/pool2 keep NbOutputs=[convN]NbOutputs: still right after the change
    assert changed == [("NbOutputs=16", "NbOutputs=8"), ("NbOutputs=32", "NbOutputs=16"),
                       ("NbOutputs=128", "NbOutputs=64")]


def test_template_instances_are_expanded_only_when_changed(tmp_path):
    path = ROOT / "networks" / "resnet-mini.ini"
    _round_trip(path, ENV, tmp_path)
    text = (tmp_path / "resnet-mini.ini").read_text()
    assert "\n[block1@" not in text and "\n[block1_a] conv_def" in text
    assert "; [block1@templates/residual-block.ini.tpl] expanded by n2prune-compact" in text
    assert "; A small residual network for MNIST" in text     # comments kept


def test_unchanged_template_include_is_relocated(tmp_path):
    net = _load(ROOT / "networks" / "resnet-mini.ini", ENV)
    write_compacted(net, str(ROOT / "networks" / "resnet-mini.ini"), str(tmp_path), onnx=False)
    text = (tmp_path / "resnet-mini.ini").read_text()
    assert "\n[block1@" in text and "networks/templates/residual-block.ini.tpl]" in text
    back = load_network(str(tmp_path / "resnet-mini.ini"), environ=ENV)
    assert list(back.cells) == list(net.cells)


def test_shift_maps_warn_for_n2d2_files(tmp_path):
    net = _load(ROOT / "networks" / "resnet-mini.ini", ENV)
    _prune_half(net)
    with pytest.warns(UserWarning, match="N2D2 cannot hold it"):
        write_compacted(net, str(ROOT / "networks" / "resnet-mini.ini"), str(tmp_path),
                        onnx=False)


def test_onnx_of_masked_network(tmp_path):
    net = _load(ROOT / "networks" / "lenet.ini", ENV)
    _prune_half(net)
    export_onnx(net, tmp_path / "masked.onnx")
    x = torch.randn(5, *net.input_shape)
    with torch.no_grad():
        assert torch.allclose(run_onnx(tmp_path / "masked.onnx", x), net(x), atol=1e-6)


def test_cli_writes_the_three_outputs(tmp_path, capsys):
    assert compact_main([str(ROOT / "networks" / "digits.ini"), "--output",
                         str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".compacted.json", ".lock", "digits.ini", "digits.onnx", "weights"]
    assert "compacted" in capsys.readouterr().out


def test_cli_bad_weights_dir_exits_2_and_writes_nothing(tmp_path, capsys):
    assert compact_main([str(ROOT / "networks" / "digits.ini"), "-w", str(tmp_path / "none"),
                         "--output", str(tmp_path / "out")]) == 2
    assert "no N2D2 weight file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_macs_and_parameters_exact_on_tiny():
    net = tiny()
    # a: 4x2x3x3 on 6x6 (+bias 4); dw: 4x1x3x3 on 6x6; b: 4x4 on 6x6; c: 3x2 on 6x6;
    # fc: 5 x (7*3*3)
    expected = 36 * (4 * 2 * 9 + 4 * 9 + 4 * 4 + 3 * 2) + 5 * 63
    assert macs(net) == {"dense": expected, "nonzero": expected}
    weights = 72 + 36 + 16 + 6 + 315
    assert parameters(net)["total"] == weights + 4 + 4 + 4 + 3 + 5 + 2 * 4 + 2 * 7


def test_cost_report_compacted_is_smaller():
    net = tiny()
    groups = [g for g in __import__("n2prune").compact.channel_groups(net) if not g.fixed]
    __import__("n2prune").compact.zero_groups(net, groups[:2])
    report = cost_report(net, latency=True, repeats=2)
    assert report["dense"]["macs"] == report["masked"]["macs"]
    assert report["compacted"]["macs"] == report["masked"]["nonzero_macs"] or \
        report["compacted"]["macs"] < report["masked"]["macs"]
    assert report["compacted"]["parameters"] < report["dense"]["parameters"]
    assert all(row["latency_ms"] > 0 for row in report.values())


def test_info_prints_costs(capsys):
    from n2prune.cli import info_main
    assert info_main([str(ROOT / "networks" / "digits.ini"), "--costs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4].split()[:3] == ["parameters", "MACs", "nonzero"]
    assert [line.split()[0] for line in lines[-3:]] == ["dense", "masked", "compacted"]


def test_cli_masked_onnx_gives_the_masked_network(tmp_path, capsys):
    from n2prune.n2d2io.write import write_weights
    path = ROOT / "networks" / "lenet.ini"
    net = _load(path, ENV)
    _prune_half(net)
    write_weights(net, tmp_path / "trained")
    assert compact_main([str(path), "-w", str(tmp_path / "trained"), "--masked-onnx",
                         "--no-onnx", "--output", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".compacted.json", ".lock", "lenet.ini", "lenet.masked.onnx", "weights"]
    masked = _load(path, ENV)
    assert read_weights(masked, tmp_path / "trained", ignore_missing=False)
    x = torch.randn(5, *net.input_shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = masked(x)
        assert torch.equal(expected, net(x))   # the masks came back through the files
    assert torch.allclose(run_onnx(tmp_path / "out" / "lenet.masked.onnx", x), expected,
                          atol=1e-6)
    # and it is the dense-size network: every weight at its INI shape
    import onnx
    shapes = sorted(tuple(t.dims) for t in
                    onnx.load(str(tmp_path / "out" / "lenet.masked.onnx")).graph.initializer)
    assert shapes == sorted(tuple(p.shape) for p in masked.parameters())


NESTED_INNER = """[{{SECTION_NAME}}_conv]
Input={{INPUT}}
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs={{NB}}
ActivationFunction=Rectifier
"""
NESTED_OUTER = """; two inner blocks in a row (template paths are relative to the INI file)
[{{SECTION_NAME}}_first@tpl/inner.tpl]
INPUT={{INPUT}}
NB={{NB}}

[{{SECTION_NAME}}_second@tpl/inner.tpl]
INPUT={{SECTION_NAME}}_first_conv
NB={{NB}}
"""
NESTED_NET = """[sp]
SizeX=6
SizeY=6
NbChannels=2

[blk@tpl/outer.tpl]
INPUT=sp
NB=6

[fc]
Input=blk_second_conv
Type=Fc
NbOutputs=3
"""


def test_nested_template_sections_are_written_back(tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "inner.tpl").write_text(NESTED_INNER)
    (tmp_path / "tpl" / "outer.tpl").write_text(NESTED_OUTER)
    (tmp_path / "net.ini").write_text(NESTED_NET)
    net = _load(tmp_path / "net.ini", {})
    with torch.no_grad():
        net.cells["blk_first_conv"].weight[[1, 4]] = 0   # two channels of the inner first conv
    out = tmp_path / "out" / "deeper"
    written, small = write_compacted(net, str(tmp_path / "net.ini"), str(out))
    text = (out / "net.ini").read_text()
    # the outer instance and its first inner one are expanded; the second stays an instance
    # whose template path is found from the new folder
    headers = [line for line in text.split("\n") if line.startswith("[")]
    assert not any(h.startswith(("[blk@", "[blk_first@")) for h in headers)
    assert "[blk_second@../../tpl/inner.tpl]" in headers
    assert "[blk_first_conv]" in text and "NbOutputs=4" in text
    back = _load(out / "net.ini", {})
    assert back.info["blk_first_conv"].output_shape[0] == 4
    assert back.info["blk_second_conv"].output_shape[0] == 6
    assert read_weights(back, out / "weights", ignore_missing=False)
    x = torch.randn(3, *net.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(back(x), net(x), atol=1e-5)


def test_latency_clocks():
    from n2prune.compact.costs import compare_latency
    net = tiny()
    seconds = compare_latency({"a": net, "b": net}, net.input_shape, repeats=2, clock="cpu",
                              min_seconds=0.001)
    assert set(seconds) == {"a", "b"} and all(s > 0 for s in seconds.values())
    with pytest.raises(ValueError, match="clock must be one of"):
        compare_latency({"a": net}, net.input_shape, clock="cycles")
