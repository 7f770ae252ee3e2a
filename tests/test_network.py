"""Building networks from INI files: N2D2's models, our networks, routing and errors."""

import os
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from n2prune.errors import ConfigError
from n2prune.network.build import load_network
from n2prune.network.summary import synapses
from n2prune.train.identity import RecordingEnviron

ROOT = Path(__file__).resolve().parent.parent

# N2D2's own totals for these files (../shared/n2d2-models/README.md): synapses of Conv,
# Deconv and Fc cells (weights a Mapping table disconnects not counted), last cell output C×H×W.
N2D2_ORACLE = {
    "models/LeNet.ini": (60570, "softmax", (10, 1, 1)),
    "models/mnist24_16c4s2_24c5s2_150_10.ini": (61606, "softmax", (10, 1, 1)),
    "models/cifar-10.ini": (307498, "softmax", (10, 1, 1)),
    "models/MobileNet_v1.ini": (1320648, "softmax", (1000, 1, 1)),
    "models/ResNet-18.ini": (11684008, "softmax", (1000, 1, 1)),
    "models/GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini": (100162, "softmax", (43, 1, 1)),
    "models/mnist-autoencoder.ini": (69477, "desp", (1, 31, 31)),
    "tests_data/mnist_model/model.ini": (2658, "softmax", (10, 1, 1)),
    "tests_data/mnist_multibranch_model/model.ini": (6596, "softmax", (10, 1, 1)),
}
# Files N2D2 itself rejects as shipped (see that README): a located error is the right answer.
N2D2_REJECTS = {"models/VGG16.ini": "BiasFiller"}
SMALL = 2_000_000  # run a forward pass on networks up to this many synapses


def _shared_files():
    shared = Path(os.environ.get("N2PRUNE_SHARED", ROOT.parent / "shared")) / "n2d2-models"
    if not shared.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{shared} not found"))]
    files = sorted(shared.glob("**/*.ini"))
    return [pytest.param(path, id=str(path.relative_to(shared))) for path in files]


def _load(path: Path, models: Path):
    environ = dict(os.environ, N2D2_MODELS=str(models / "models"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_network(str(path), environ=environ)


@pytest.mark.parametrize("path", _shared_files())
def test_every_n2d2_model_builds_and_runs_with_n2d2s_sizes(path, n2d2_models):
    relative = str(path.relative_to(n2d2_models))
    if relative in N2D2_REJECTS:
        with pytest.raises(ConfigError, match=rf"{path.name}:\d+: .*{N2D2_REJECTS[relative]}"):
            _load(path, n2d2_models)
        return
    net = _load(path, n2d2_models)
    total = sum(synapses(cell) for name, cell in net.cells.items()
                if net.info[name].type in ("Conv", "Deconv", "Fc"))
    last = list(net.info.values())[-1]
    if relative in N2D2_ORACLE:
        assert (total, last.name, last.output_shape) == N2D2_ORACLE[relative]
    if total < SMALL:
        out = net(torch.randn(2, *net.input_shape))
        c, h, w = last.output_shape
        assert tuple(out.shape) == ((2, c) if (h, w) == (1, 1) else (2, c, h, w))


def test_vgg16_builds_once_the_two_known_mistakes_are_fixed(n2d2_models, tmp_path):
    text = (n2d2_models / "models" / "VGG16.ini").read_text()
    text = text.replace("${STEPDECAY_RATE}", "${STEP_DECAY_RATE}")
    text = text.replace("BiasFiller=ConstantFiller", "BiasFiller=ConstantFiller\n"
                        "BiasFiller.Value=0.1", 1)
    fixed = tmp_path / "VGG16.ini"
    fixed.write_text(text)
    net = _load(fixed, n2d2_models)
    total = sum(synapses(cell) for cell in net.cells.values())
    assert total == 138_348_224


@pytest.mark.parametrize("path", sorted(ROOT.glob("networks/*.ini")), ids=lambda p: p.name)
def test_our_networks_build_run_and_prune(path):
    net = load_network(str(path), epoch_size=1000)
    assert net.pruned_cells(), "every network of ours demonstrates pruning"
    out = net(torch.randn(3, *net.input_shape))
    assert out.shape == (3, 10)
    assert net.targets and net.targets[0].cell == "softmax"



@pytest.mark.parametrize("environ", ["process", "copy", "recorded"])
def test_a_whole_network_saves_with_torch_without_the_environment(tmp_path, monkeypatch,
                                                                   environ):
    """torch.save(net) pickles the network; the INI's environment (os.environ, a copy as
    the benchmarks pass, the Trainer's recording view) is not written into the file: the
    loading process's own environment is used."""
    monkeypatch.setenv("N2PRUNE_PROBE_VARIABLE", "do-not-write-me")
    given = {"process": None, "copy": dict(os.environ),
             "recorded": RecordingEnviron(os.environ)}[environ]
    net = load_network(str(ROOT / "networks" / "lenet.ini"), epoch_size=1000,
                       environ=given).eval()
    torch.save(net, tmp_path / "net.pt")
    assert b"do-not-write-me" not in (tmp_path / "net.pt").read_bytes()
    back = torch.load(tmp_path / "net.pt", weights_only=False).eval()
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert back.ini.environ is os.environ
    assert back.pruned_cells().keys() == net.pruned_cells().keys()

def net_from(text: str, tmp_path, name="net.ini", **kwargs):
    path = tmp_path / name
    path.write_text(text)
    return load_network(str(path), **kwargs)


SMALL_NET = """
[sp]
SizeX=6
SizeY=5
NbChannels=2
[conv1]
Input=sp
Type=Conv
KernelDims=3 2
NbOutputs=3
Mapping(env)=1 0 1 \\
0 1 1
ActivationFunction=Rectifier
ConfigSection=cfg
[pool1]
Input=conv1
Type=Pool
PoolDims=2 2
Stride=2
Pooling=Max
NbOutputs=3
Mapping.Size=1
[fc]
Input=pool1
Type=Fc
NbOutputs=4
ConfigSection=cfg
QWeight=Prune
QWeight.PruningMode=Static
QWeight.PruningFiller=IterNonStruct
QWeight.Threshold=0.5
[fc.Target]
[cfg]
NoBias=1
"""


def test_small_network_equals_hand_written_pytorch(tmp_path):
    net = net_from(SMALL_NET, tmp_path)
    conv, fc = net.cells["conv1"], net.cells["fc"]
    assert conv.weight.shape == (3, 2, 2, 3) and conv.bias is None  # width-first kernel
    # Mapping(env): rows are input channels, columns outputs -> output 0 sees channel 0 only
    # the unconnected kernels keep their filler values (N2D2 counts this table as one group);
    # the forward skips them
    assert torch.all(conv.connection[0, 1] == 0) and torch.all(conv.connection[1, 0] == 0)
    assert torch.all(conv.weight[0, 1] != 0) and torch.all(conv.weight[1, 0] != 0)
    x = torch.randn(4, 2, 5, 6)
    y = F.relu(F.conv2d(x, conv.weight * conv.connection))
    y = F.max_pool2d(y, 2, 2)
    mask = fc.quantizer.get_pruned_masks()
    assert 0.5 <= float((mask == 0).float().mean()) < 0.6
    expected = y.flatten(1) @ (fc.weight * mask).t()  # x fastest, then y, then channel
    assert torch.allclose(net(x), expected, atol=1e-6)


def test_cells_are_in_build_order_with_dotted_names_and_computed_properties(tmp_path):
    net = net_from(SMALL_NET.replace("[fc]", "[fc.x]").replace("[fc.Target]", "[fc.x.Target]"),
                   tmp_path)
    assert list(net.cells) == ["conv1", "pool1", "fc.x"]
    assert [type(c).__name__ for c in net] == ["Conv", "Pool", "Fc"]
    assert net.ini["conv1"]["_OutputsWidth"] == "4" and net.ini["pool1"]["_NbOutputs"] == "3"
    assert net.input_shape == (2, 5, 6)


def test_build_order_is_by_level_then_file_order(tmp_path):
    text = """
[sp]
SizeX=4
SizeY=4
[b]
Input=a
Type=Fc
NbOutputs=2
[a]
Input=sp
Type=Fc
NbOutputs=3
[c]
Input=sp
Type=Fc
NbOutputs=2
"""
    assert list(net_from(text, tmp_path).cells) == ["a", "c", "b"]


def test_prune_keys_in_the_config_section_override_the_cell_section(tmp_path):
    text = SMALL_NET.replace("ConfigSection=cfg\nQWeight", "ConfigSection=cfg,fc.cfg\nQWeight")
    net = net_from(text + "[fc.cfg]\nQWeight.Threshold=0.75\n", tmp_path)
    assert net.cells["fc"].quantizer.threshold == 0.75


def test_prune_keys_in_the_config_of_a_cell_without_qweight_are_an_error(tmp_path):
    text = SMALL_NET.replace("[cfg]\nNoBias=1", "[cfg]\nNoBias=1\nQWeight.Threshold=0.75")
    with pytest.raises(ConfigError, match=r"net.ini:35: \[cfg\] QWeight.Threshold.*QWeight=Prune"
                                          r" in the cell section \[conv1\]"):
        net_from(text, tmp_path)


@pytest.mark.parametrize("change,line,words", [
    (("Type=Pool", "Type=Pol"), 17, ["Type=Pol", "did you mean 'Pool'"]),
    (("Input=pool1", "Input=pool2"), 24, ["pool2", "pool1"]),
    (("QWeight.Threshold=0.5", "QWeight.Treshold=0.5"), 31, ["QWeight.Treshold",
                                                            "'QWeight.Threshold'"]),
    (("QWeight.Threshold=0.5", "QWeight.Threshold=1.5"), 31, ["threshold=1.5", "[0, 1]"]),
    (("QWeight.PruningFiller=IterNonStruct", "QWeight.PruningFiller=IterNonStrut"), 30,
     ["IterNonStrut", "IterNonStruct"]),
    (("QWeight=Prune", "QWeight=SAT"), 28, ["SAT", "not supported yet"]),
    (("NoBias=1", "NoBias=1\nNoBais=1"), 35, ["NoBais", "unknown parameter"]),
    (("KernelDims=3 2", "KernelDims=3 x"), 9, ["KernelDims", "'x'"]),
])
def test_bad_input_is_a_located_config_error(tmp_path, change, line, words):
    with pytest.raises(ConfigError) as info:
        net_from(SMALL_NET.replace(*change), tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'net.ini'}:{line}:"), message
    for word in words:
        assert word in message


def test_an_onnx_section_with_a_missing_file_is_a_located_error(tmp_path):
    text = "[sp]\nSizeX=4\nSizeY=4\n[onnx]\nInput=sp\nType=ONNX\nFile=model.onnx\n"
    with pytest.raises(ConfigError, match=r"net.ini:7: \[onnx\] File=model.onnx: ONNX file "
                                          r"not found \(looked for 'model.onnx', "):
        net_from(text, tmp_path)


def test_input_cycles_are_an_error_not_a_silent_drop(tmp_path):
    text = "[sp]\nSizeX=4\nSizeY=4\n[a]\nInput=b\nType=Fc\nNbOutputs=2\n" \
           "[b]\nInput=a\nType=Fc\nNbOutputs=2\n"
    with pytest.raises(ConfigError, match="cycle"):
        net_from(text, tmp_path)


def test_cell_parameters_in_the_cell_section_are_ignored_with_a_warning(tmp_path):
    text = SMALL_NET.replace("Stride=2\n", "Stride=2\nDropout=0.3\n", 1)
    with pytest.warns(UserWarning, match=r"net.ini:\d+: \[pool1\] Dropout"):
        net_from(text, tmp_path)


def test_mapping_of_the_provider_must_be_named_env(tmp_path):
    text = SMALL_NET.replace("Mapping(env)=", "Mapping(sp)=")
    with pytest.warns(UserWarning, match=r"net.ini:11: \[conv1\] Mapping\(sp\).*Mapping\(env\)"):
        net = net_from(text, tmp_path)
    assert torch.all(net.cells["conv1"].weight != 0)  # ignored, as N2D2 does: a full map


def test_unknown_key_in_a_checked_conv_section_is_an_error(tmp_path):
    text = SMALL_NET.replace("ActivationFunction=Rectifier\n", "").replace(
        "NbOutputs=3\nMapping(env)", "NbOutputs=3\nNbOutput=3\nMapping(env)")
    with pytest.raises(ConfigError, match=r"\[conv1\] NbOutput"):
        net_from(text, tmp_path)


def test_missing_provider_and_wrong_input_shape(tmp_path):
    with pytest.raises(ConfigError, match=r"\[sp\]"):
        net_from("[a]\nInput=sp\nType=Fc\nNbOutputs=2\n", tmp_path)
    net = net_from(SMALL_NET, tmp_path)
    with pytest.raises(ValueError, match=r"\(N, 2, 5, 6\)"):
        net(torch.randn(1, 2, 6, 5))


def test_state_dict_round_trip_restores_masks(tmp_path):
    net = net_from(SMALL_NET, tmp_path)
    other = net_from(SMALL_NET, tmp_path, seed=5)
    other.load_state_dict(net.state_dict())
    assert torch.equal(other.cells["fc"].quantizer.get_pruned_masks(),
                       net.cells["fc"].quantizer.get_pruned_masks())
    x = torch.randn(2, 2, 5, 6)
    assert torch.allclose(other(x), net(x))


def test_seed_makes_weights_reproducible(tmp_path):
    a, b = net_from(SMALL_NET, tmp_path, seed=3), net_from(SMALL_NET, tmp_path, seed=3)
    assert torch.equal(a.cells["fc"].weight, b.cells["fc"].weight)
    c = net_from(SMALL_NET, tmp_path, seed=4)
    assert not torch.equal(a.cells["fc"].weight, c.cells["fc"].weight)
