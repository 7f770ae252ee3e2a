"""QWeight.PruningRoundTo=N: compaction of an INI network keeps each pruned cell's width a
multiple of N (all-zero channels given back), with the same outputs."""

import pytest
import torch

import n2prune
from n2prune.errors import ConfigError
from n2prune.network import load_network

NET = """[sp]
SizeX=6
SizeY=6
NbChannels=2
[conv]
Input=sp
Type=Conv
KernelDims=3 3
NbOutputs=16
ActivationFunction=Rectifier
QWeight=Prune
QWeight.PruningMode=Static
QWeight.PruningFiller=L1Norm
QWeight.PruningPattern=Channel
QWeight.Threshold=0.3
{extra}
[fc]
Input=conv
Type=Fc
NbOutputs=3
[fc.Target]
"""


def _net(tmp_path, extra):
    path = tmp_path / "net.ini"
    path.write_text(NET.format(extra=extra))
    torch.manual_seed(0)
    return load_network(path).eval()


@pytest.mark.parametrize("round_to, width", [(1, 11), (4, 12), (8, 16)])
def test_round_to_keeps_widths_a_multiple(tmp_path, round_to, width):
    net = _net(tmp_path, f"QWeight.PruningRoundTo={round_to}" if round_to > 1 else "")
    assert net.cells["conv"].quantizer.round_to == round_to
    small = n2prune.compact(net)
    assert small.cells["conv"].weight.shape[0] == width  # 16 - ceil(0.3·16) = 11 kept
    x = torch.randn(4, 2, 6, 6)
    with torch.no_grad():
        assert torch.allclose(small(x), net(x), atol=1e-6)


def test_round_to_must_be_a_positive_integer(tmp_path):
    with pytest.raises(ConfigError, match=r"QWeight.PruningRoundTo=0: .*out of range"):
        _net(tmp_path, "QWeight.PruningRoundTo=0")
