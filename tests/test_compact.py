"""Channel dependency groups and compaction: groups from the INI graph, exact outputs."""

import warnings
from pathlib import Path

import pytest
import torch

from n2prune import load_network
from n2prune.compact import channel_groups, compact, group_channel_scores
from n2prune.compact.groups import lowest_groups, zero_groups
from n2prune.ini.inifile import loads
from n2prune.network.build import build_network

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = sorted(p.name for p in (ROOT / "networks").glob("*.ini"))
N2D2_MODELS = ["models/GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini", "models/LeNet.ini",
               "models/MobileNet_v1.ini", "models/ResNet-18.ini", "models/cifar-10.ini",
               "models/mnist-autoencoder.ini", "models/mnist24_16c4s2_24c5s2_150_10.ini",
               "tests_data/mnist_model/model.ini", "tests_data/mnist_multibranch_model/model.ini"]

TINY = """
[sp]
SizeX=6
SizeY=6
NbChannels=2
[a]
Input=sp
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=4
[a_bn]
Input=a
Type=BatchNorm
NbOutputs=4
ActivationFunction=Rectifier
[dw]
Input=a_bn
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=4
Mapping.ChannelsPerGroup=1
[b]
Input=a_bn
Type=Conv
KernelDims=1 1
NbOutputs=4
[sum]
Input=dw,b
Type=ElemWise
Operation=Sum
NbOutputs=4
[c]
Input=sp
Type=Conv
KernelDims=1 1
NbOutputs=3
[cat]
Input=sum,c
Type=BatchNorm
NbOutputs=7
[pool]
Input=cat
Type=Pool
PoolDims=2 2
Stride=2
Pooling=Max
NbOutputs=7
Mapping.ChannelsPerGroup=1
[fc]
Input=pool
Type=Fc
NbOutputs=5
"""


def tiny(seed=0):
    net = build_network(loads(TINY), seed=seed).eval()
    _randomise_batchnorm(net, seed)
    return net


def _randomise_batchnorm(net, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for cell in net.cells.values():
            if hasattr(cell, "running_mean"):
                cell.running_mean.normal_(0, 0.1, generator=generator)
                cell.running_var.uniform_(0.5, 1.5, generator=generator)
                cell.weight.uniform_(0.5, 1.5, generator=generator)
                cell.bias.normal_(0, 0.1, generator=generator)


def test_tiny_groups_follow_the_graph():
    groups = [g for g in channel_groups(tiny()) if not g.fixed]
    # a's channel k goes with a_bn k, dw k (depthwise), b k and sum k (residual sum), and
    # with cat k and pool k (the sum is cat's first input); c's channel k with cat 4 + k.
    assert [sorted(g.members) for g in groups[:4]] == [
        sorted([("a", k), ("a_bn", k), ("dw", k), ("b", k), ("sum", k), ("cat", k),
                ("pool", k)])
        for k in range(4)]
    assert [g.producers for g in groups[:4]] == [[("a", k), ("b", k)] for k in range(4)]
    assert [sorted(g.members) for g in groups[4:]] == [
        sorted([("c", k), ("cat", 4 + k), ("pool", 4 + k)]) for k in range(3)]


def test_tiny_fixed_channels():
    fixed = {m for g in channel_groups(tiny()) if g.fixed for m in g.members}
    assert fixed == {("env", 0), ("env", 1)} | {("fc", k) for k in range(5)}


def test_group_score_sums_the_producers():
    net = tiny()
    with torch.no_grad():
        for name in ("a", "b", "c"):
            cell = net.cells[name]
            cell.weight.copy_(torch.arange(cell.weight.shape[0], dtype=torch.float32)
                              .reshape(-1, 1, 1, 1).expand_as(cell.weight))
    scores = group_channel_scores(net)
    removable = [g.index for g in channel_groups(net) if not g.fixed]
    assert sorted(scores) == removable
    # a rows hold 2*9 weights of value k, b rows 4 weights of value k, c rows 2 weights k
    assert [scores[i] for i in removable] == [22.0 * k for k in range(4)] + [
        2.0 * k for k in range(3)]


def test_fixed_group_cannot_be_pruned():
    net = tiny()
    fixed = next(g for g in channel_groups(net) if g.fixed)
    with pytest.raises(ValueError, match="fixed"):
        zero_groups(net, [fixed])


def test_tiny_compaction_removes_channels_and_their_weights():
    net = tiny()
    groups = channel_groups(net)
    groups = [g for g in groups if not g.fixed]
    zero_groups(net, [groups[1], groups[4]])   # a/b channel 1 and c channel 0
    small = compact(net)
    assert small.cells["a"].weight.shape == (3, 2, 3, 3)
    assert small.cells["dw"].weight.shape == (3, 1, 3, 3) and small.cells["dw"].groups == 3
    assert small.cells["b"].weight.shape == (3, 3, 1, 1)
    assert small.cells["c"].weight.shape == (2, 2, 1, 1)
    assert small.cells["cat"].nb_outputs == small.cells["pool"].nb_outputs == 5
    assert small.cells["fc"].weight.shape == (5, 5 * 3 * 3)   # a channel = 3x3 Fc inputs
    _assert_same_outputs(net, small)


def test_unpruned_network_is_unchanged():
    import n2prune
    net = tiny()
    small = n2prune.compact(net)
    assert [p.shape for p in small.parameters()] == [p.shape for p in net.parameters()]
    _assert_same_outputs(net, small)


def _assert_same_outputs(net, small, seed=1):
    """Every cell's kept channels equal the masked network's (eval mode); a cell whose
    removed inputs' contribution went into the next BatchNorm's mean differs before it."""
    x = torch.randn(3, *net.input_shape, generator=torch.Generator().manual_seed(seed))
    names = list(net.cells)
    with torch.no_grad():
        big, little = net.eval().outputs(x, names), small.eval().outputs(x, names)
    kept = small.compaction["kept"]
    for name in names:
        if small.compaction["folds"].get(name) == "batchnorm":
            continue
        expected = big[name][:, kept[name]]
        scale = max(float(expected.abs().max()), 1e-3)
        assert little[name].shape == expected.shape, name
        assert torch.allclose(little[name], expected, rtol=1e-4, atol=1e-5 * scale), name


def _prune_half(net, seed=0):
    _randomise_batchnorm(net, seed)
    chosen = lowest_groups(net, 0.5)
    zero_groups(net, chosen)
    return chosen


def _check_network(net):
    chosen = _prune_half(net)
    small = compact(net)
    assert small.compaction["removed_groups"] == len(chosen)
    removed = sum(g.size for g in chosen)
    before = sum(net.info[n].output_shape[0] for n in net.cells)
    after = sum(small.info[n].output_shape[0] for n in small.cells)
    assert before - after == removed - sum(1 for g in chosen for m in g.members if m[0] == "env")
    if chosen:
        assert sum(p.numel() for p in small.parameters()) < \
            sum(p.numel() for p in net.parameters())
    _assert_same_outputs(net, small)


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_compacts_exactly(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = load_network(str(ROOT / "networks" / name), environ={"N2D2_DATA": "/nowhere"})
    _check_network(net.eval())


@pytest.mark.parametrize("name", N2D2_MODELS)
def test_n2d2_models_compact_exactly(n2d2_models, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = load_network(str(n2d2_models / name),
                           environ={"N2D2_MODELS": str(n2d2_models / "models")})
    _check_network(net.eval())


def test_prunecell_masks_travel_sliced():
    net = load_network(str(ROOT / "networks" / "lenet.ini"),
                       environ={"N2D2_DATA": "/nowhere"}).eval()
    _prune_half(net)
    small = compact(net)
    for name, cell in small.pruned_cells().items():
        assert cell.quantizer.mask.shape == cell.weight.shape, name
    assert small.cells["conv2"].weight.shape == (16, 8, 5, 5)


GROUPED = """
[sp]
SizeX=5
SizeY=5
NbChannels=1
[a]
Input=sp
Type=Conv
KernelDims=1 1
NbOutputs=4
[g]
Input=a
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=6
Mapping.NbGroups=2
[fc]
Input=g
Type=Fc
NbOutputs=3
"""


def test_grouped_conv_keeps_its_groups_equal():
    net = build_network(loads(GROUPED)).eval()
    free = [g for g in channel_groups(net) if not g.fixed]
    # a's channel j goes with channel 2 + j (same place in the other group of g's inputs);
    # g's output j with 3 + j
    assert [sorted(g.members) for g in free] == [
        [("a", 0), ("a", 2)], [("a", 1), ("a", 3)],
        [("g", 0), ("g", 3)], [("g", 1), ("g", 4)], [("g", 2), ("g", 5)]]
    zero_groups(net, [free[1], free[3]])
    small = compact(net)
    assert small.cells["g"].groups == 2 and small.cells["g"].weight.shape == (4, 1, 3, 3)
    _assert_same_outputs(net, small)
