"""N2D2's -fuse, -export ONNX, -test-index and -find-lr (issue 22, item 4)."""

import json
import math
import warnings

import pytest
import torch

from nets import BN_DIGITS  # conv, BatchNorm, Fc on the embedded digits, Gradual to 0.9
from n2prune.cli import train_main
from n2prune.network.build import load_network
from n2prune.network.fuse import FoldedBatchNorm, fuse_batchnorm
from n2prune.train.findlr import END_LR, START_LR


def _randomise_batchnorm(net, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for cell in net.cells.values():
            if hasattr(cell, "running_var"):
                n = cell.running_var.numel()
                cell.running_mean.copy_(torch.rand(n, generator=generator) * 2 - 1)
                cell.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.1)
                cell.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                cell.bias.copy_(torch.rand(n, generator=generator) - 0.5)
    return net.eval()


@pytest.fixture
def bn_ini(tmp_path):
    path = tmp_path / "bn.ini"
    path.write_text(BN_DIGITS)
    return path


def test_fused_network_gives_the_same_outputs(bn_ini):
    net = _randomise_batchnorm(load_network(str(bn_ini), seed=3))
    x = torch.randn(32, *net.input_shape, generator=torch.Generator().manual_seed(1))
    before = net(x)
    fused, folded = fuse_batchnorm(net)
    assert folded == ["bn1"]
    assert isinstance(fused.cells["bn1"], FoldedBatchNorm)
    assert (fused(x) - before).abs().max() < 1e-5
    assert torch.equal(net(x), before)            # the original is untouched
    assert net.cells["conv1"].quantizer is not None


def test_fuse_adds_a_bias_to_a_conv_without_one(bn_ini, tmp_path):
    path = tmp_path / "nobias.ini"
    path.write_text(BN_DIGITS.replace("[cfg]", "[cfg]\nNoBias=1"))   # conv1's and fc's
    net = _randomise_batchnorm(load_network(str(path), seed=3))
    assert net.cells["conv1"].bias is None
    x = torch.randn(8, *net.input_shape)
    fused, folded = fuse_batchnorm(net)
    assert folded == ["bn1"] and fused.cells["conv1"].bias is not None
    assert (fused(x) - net(x)).abs().max() < 1e-5


def test_batchnorm_after_an_activation_is_left_with_a_warning(tmp_path):
    path = tmp_path / "relu.ini"
    path.write_text(BN_DIGITS.replace("ActivationFunction=Linear",
                                      "ActivationFunction=Rectifier", 1))
    net = _randomise_batchnorm(load_network(str(path), seed=3))
    with pytest.warns(UserWarning, match=r"bn1 \(conv1 has the activation Rectifier\)"):
        fused, folded = fuse_batchnorm(net)
    assert folded == [] and not isinstance(fused.cells["bn1"], FoldedBatchNorm)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    (folder / "bn.ini").write_text(BN_DIGITS)
    assert train_main([str(folder / "bn.ini"), "-learn-epoch", "2", "-seed", "5", "--quiet",
                       "--output", str(folder / "run")]) == 0
    return folder


def _test_report(folder, *extra):
    assert train_main([str(folder / "bn.ini"), "-test", "--quiet", "--output",
                       str(folder / "run"), *extra]) == 0
    return json.loads((folder / "run" / "test_report.json").read_text())


def test_test_with_fuse_scores_as_without(trained):
    plain = _test_report(trained)
    fused = _test_report(trained, "-fuse")
    assert fused["fused_batchnorm"] == ["bn1"] and "fused_batchnorm" not in plain
    assert fused["test_accuracy"] == plain["test_accuracy"]


@pytest.mark.parametrize("fuse", [False, True])
def test_export_onnx_writes_the_network(trained, fuse, capsys):
    onnx = pytest.importorskip("onnx", reason="-export ONNX needs the onnx package")
    from n2prune.compact.onnx_export import run_onnx
    from n2prune.train.resume import load_checkpoint
    from n2prune.train.checkpoint import MODEL_KEYS
    path = trained / "run" / "export_ONNX_float32" / "bn.onnx"
    path.unlink(missing_ok=True)
    assert train_main([str(trained / "bn.ini"), "-export", "ONNX", "--output",
                       str(trained / "run")] + ["-fuse"] * fuse) == 0
    assert f"Exported {path}" in capsys.readouterr().out
    net = load_network(str(trained / "bn.ini"), seed=5)
    net.load_state_dict(load_checkpoint(trained / "run" / "model.pt", MODEL_KEYS)["net"])
    x = torch.randn(4, *net.input_shape)
    assert (run_onnx(path, x) - net.eval()(x)).abs().max() < 1e-5
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    if fuse:   # folded into the Conv's weights (without -fuse torch's exporter may fold it)
        assert "BatchNormalization" not in ops


def test_export_other_types_are_refused(trained, capsys):
    assert train_main([str(trained / "bn.ini"), "-export", "CPP", "--output",
                       str(trained / "run")]) == 2
    assert "n2prune exports ONNX only" in capsys.readouterr().err


def test_test_index_tests_one_stimulus(trained, capsys):
    from n2prune import ini as ini_module
    from n2prune.data import build_provider
    report = _test_report(trained, "-test-index", "4")
    one = report["test_stimulus"]
    provider = build_provider(ini_module.load(str(trained / "bn.ini")), seed=5)
    _, labels = provider.batch("Test", torch.tensor([4]))
    assert one["test_index"] == 4 and one["label"] == int(labels[0])
    assert one["estimated"] == max(range(10), key=one["outputs"].__getitem__)
    assert report["test_accuracy"] == float(one["label"] == one["estimated"])
    size = provider.size("Test")
    assert train_main([str(trained / "bn.ini"), "-test", "--output", str(trained / "run"),
                       "-test-index", str(size)]) == 2
    assert f"the Test set has {size} stimuli (valid: 0 to {size - 1})" in \
        capsys.readouterr().err


def test_test_index_needs_test(trained, capsys):
    assert train_main([str(trained / "bn.ini"), "-learn-epoch", "1", "-test-index", "0",
                       "--output", str(trained / "other")]) == 2
    assert "-test-index tests one stimulus of a trained network" in capsys.readouterr().err


def test_find_lr_writes_the_range_test(tmp_path, bn_ini):
    output = tmp_path / "lr"
    assert train_main([str(bn_ini), "-find-lr", "640", "-seed", "3", "--quiet",
                       "--output", str(output)]) == 0
    lines = (output / "find_lr_softmax.Target.dat").read_text().splitlines()
    rates = [float(line.split()[0]) for line in lines]
    losses = [float(line.split()[1]) for line in lines]
    assert len(rates) == math.ceil(640 / 32)
    assert rates[0] == START_LR and rates[-1] < END_LR
    ratios = [b / a for a, b in zip(rates, rates[1:])]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-4)
    assert ratios[0] == pytest.approx((END_LR / START_LR) ** (1 / 20), rel=1e-4)
    assert abs(losses[0] - math.log(10)) < 0.7       # a fresh network at a tiny rate
    assert (output / "find_lr_softmax.Target.png").stat().st_size > 0
    assert not (output / "model.pt").exists()        # nothing learnt is kept


def test_find_lr_is_a_run_of_its_own(bn_ini, tmp_path, capsys):
    assert train_main([str(bn_ini), "-find-lr", "64", "-learn-epoch", "1", "--output",
                       str(tmp_path / "x")]) == 2
    assert "-find-lr runs the learning rate range test and stops" in capsys.readouterr().err
