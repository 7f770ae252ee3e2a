"""The Coupled scope: cells tied by residual sums prune the same channels during training,
from their summed channel scores, and n2prune.compact removes them."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import n2prune
from n2prune.prune.coupled import coupled_units
from nets import RESIDUAL_NET  # a stem and a residual block summed, an Fc head

STREAMS = ["stem", "conv2", "down", "skip"]


class Residual(nn.Module):
    """A stem and a residual block (stem + conv2 summed), a strided stage whose main path and
    shortcut are summed (down + skip), then a linear head (its outputs are the model's)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(8, 16, 1, stride=2)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = F.relu(x + self.bn2(self.conv2(F.relu(self.conv1(x)))))
        y = F.relu(self.down(x) + self.skip(x))
        return self.head(F.adaptive_avg_pool2d(y, 1).flatten(1))


def _pruned_rows(cell):
    return (cell.mask.reshape(cell.mask.shape[0], -1) == 0).all(1)


def _model(seed=0):
    torch.manual_seed(seed)
    return Residual(), torch.randn(1, 3, 8, 8)


def test_training_prunes_each_stream_in_every_producer_and_compacts():
    model, example = _model()
    cells = n2prune.attach(model, include=STREAMS, scope="Coupled", pattern="Channel",
                           prune_filler="L1Norm", prune_mode="Gradual", schedule="Cubic",
                           threshold=0.5, start=0.0, begin=0, end=96, frequency=16,
                           example=example)
    x, y = torch.randn(64, 3, 8, 8), torch.randint(0, 4, (64,))
    pruner = n2prune.Pruner(cells, epoch_size=64, horizon=128)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = {name: _pruned_rows(cell).clone() for name, cell in cells.items()}
    grew = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # every cell reaches its target, rounded by groups
        for step in range(8):
            index = torch.arange(16 * (step % 4), 16 * (step % 4) + 16)
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            pruner.on_step_end(16)
            for name, cell in cells.items():
                rows = _pruned_rows(cell)
                assert bool((rows | ~before[name]).all()), f"{name}: a pruned channel came back"
                grew = grew or bool((rows & ~before[name]).any())
                before[name] = rows.clone()
    assert grew
    assert torch.equal(before["stem"], before["conv2"])
    assert torch.equal(before["down"], before["skip"])
    assert int(before["stem"].sum()) == 4 and int(before["down"].sum()) == 8   # 50 % of groups
    model.eval()
    small = n2prune.compact(model, example)
    assert small.stem.out_channels == 4 and small.conv2.out_channels == 4
    assert small.down.out_channels == 8 and small.skip.out_channels == 8
    assert small.head.in_features == 8 and small.conv1.in_channels == 4
    probe = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(small(probe), model(probe), atol=1e-5)


def test_groups_are_chosen_from_the_summed_scores():
    model, example = _model()
    with torch.no_grad():
        stem = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
        conv2 = torch.tensor([9.0, 1.0, 8.0, 1.5, 0.5, 0.1, 6.0, 5.0])   # sums 10 3 11 5.5 5.5..
        for layer, norms in ((model.stem, stem), (model.conv2, conv2)):
            layer.weight.zero_()
            layer.weight[:, 0, 0, 0] = norms
    cells = n2prune.attach(model, include=["stem", "conv2"], scope="Coupled",
                           pattern="Channel", prune_filler="L1Norm", prune_mode="Static",
                           threshold=0.25, example=example)
    # sums: 10, 3, 11, 5.5, 5.5, 6.1, 13, 13 -> the two lowest: channel 1 (3), then 3 (5.5,
    # tied with 4: the lower index first); stem alone would prune 0 and 1, conv2 alone 5 and 4
    for name in ("stem", "conv2"):
        assert _pruned_rows(cells[name]).nonzero().reshape(-1).tolist() == [1, 3]


def test_a_copy_keeps_its_coupling():
    model, example = _model()
    n2prune.attach(model, include=STREAMS, scope="Coupled", pattern="Channel",
                   prune_filler="L2Norm", prune_mode="Static", threshold=0.25, example=example)
    twin = copy.deepcopy(model)
    twin(example)                     # a copied PruneCell re-links to its layer in a forward
    with torch.no_grad():
        twin.stem.weight[2].mul_(100.0)
        twin.conv2.weight[2].mul_(100.0)
    n2prune.Pruner(twin).recompute()
    assert torch.equal(_pruned_rows(twin.stem.quantizer), _pruned_rows(twin.conv2.quantizer))
    assert not bool(_pruned_rows(twin.stem.quantizer)[2])


def test_units_found_by_tracing():
    model, example = _model()
    assert coupled_units(model, example) == {"stem+conv2": ["stem", "conv2"],
                                             "conv1": ["conv1"], "down+skip": ["down", "skip"]}
    assert coupled_units(model, example, include=["down", "skip"]) == {
        "down+skip": ["down", "skip"]}


def _attach(model, example, include, **extra):
    args = dict(scope="Coupled", pattern="Channel", prune_filler="L1Norm",
                prune_mode="Static", threshold=0.5)
    args.update(extra)
    return n2prune.attach(model, include=include, example=example, **args)


def test_the_network_output_cannot_be_pruned():
    model, example = _model()
    with pytest.raises(ValueError, match=r"scope='Coupled': head output channel 0 cannot be "
                                         r"pruned: its channel group is fixed \(it reaches "
                                         r"the model's output"):
        _attach(model, example, ["head"])
    assert getattr(model.head, "quantizer", None) is None      # attach is atomic
    with pytest.raises(ValueError, match="the model's output"):
        coupled_units(model, example, include=["head", "conv1"])


def test_a_producer_outside_the_scope_is_named():
    model, example = _model()
    with pytest.raises(ValueError, match=r"scope='Coupled': stem output channel 0 is summed "
                                         r"with channels of conv2, outside the scope; include "
                                         r"it \(attach's include="):
        _attach(model, example, ["stem", "down", "skip"])
    assert all(getattr(m, "quantizer", None) is None for m in (model.stem, model.down))


def test_without_an_example_it_says_how():
    model, _ = _model()
    with pytest.raises(ValueError, match=r"give attach an example input \(n2prune.attach\("
                                         r"model, scope='Coupled', example=x"):
        _attach(model, None, ["stem", "conv2"])


def test_only_whole_channels():
    model, example = _model()
    with pytest.raises(ValueError, match="scope='Coupled' prunes whole output channels: stem "
                                         "has pattern='Unstructured'"):
        _attach(model, example, ["stem", "conv2"], pattern="Unstructured",
                prune_filler="Magnitude")


def test_one_unit_one_threshold():
    model, example = _model()
    cells = _attach(model, example, ["stem", "conv2"])
    cells["stem"].current_threshold.fill_(0.25)
    with pytest.raises(ValueError, match=r"stem, conv2 prune the same channels but their "
                                         r"current thresholds differ \(stem 0.25, conv2 0.5\)"):
        n2prune.Pruner(cells)


# stem and b summed, b's pruning lines left to each test ({b_prune}), Static 0.5 Coupled
INI = RESIDUAL_NET.format(
    input="[sp]\nSizeX=8\nSizeY=8\nNbChannels=3", a_outputs=8, classes=4,
    stem="ConfigSection=prune.config\nQWeight=Prune", a="", b="{b_prune}",
    configs="""
[prune.config]
QWeight.PruningMode=Static
QWeight.PruningFiller=L1Norm
QWeight.PruningPattern=Channel
QWeight.PruningScope=Coupled
QWeight.Threshold=0.5
""")


def test_an_ini_network_couples_its_residual_sum(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(INI.format(b_prune="ConfigSection=prune.config\nQWeight=Prune"))
    net = n2prune.load_network(str(path))
    stem, b = net.cells["stem"].quantizer, net.cells["b"].quantizer
    assert torch.equal(_pruned_rows(stem), _pruned_rows(b)) and int(_pruned_rows(b).sum()) == 4
    small = n2prune.compact(net)
    assert small.cells["stem"].weight.shape[0] == 4 and small.cells["b"].weight.shape[0] == 4
    x = torch.randn(2, 3, 8, 8)
    net.eval()
    small.eval()
    with torch.no_grad():
        assert torch.allclose(small(x), net(x), atol=1e-5)


def test_an_ini_producer_outside_the_scope_is_an_error_at_the_key(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(INI.format(b_prune=""))
    line = INI.format(b_prune="").splitlines().index("QWeight.PruningScope=Coupled") + 1
    with pytest.raises(n2prune.ConfigError, match=rf"net.ini:{line}: \[prune.config\] "
                                                  rf"QWeight.PruningScope=Coupled: scope="
                                                  rf"'Coupled': stem output channel 0 is "
                                                  rf"summed with channels of b, outside"):
        n2prune.load_network(str(path))
