"""Wanda against the paper's formula written out here, and comparison groups (PruningGroup):
Row ranks each output row on its own, for every criterion and pattern where rows exist."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import n2prune
from n2prune.errors import ConfigError
from n2prune.network import load_network

from nets import FC8_MAGNITUDE  # one Fc of 8 inputs, Magnitude to 0.5; {extra} at line 13


def _row_mask(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep-mask pruning ceil(fraction·width) lowest scores of each row, by hand."""
    rows = scores.reshape(scores.shape[0], -1)
    count = math.ceil(fraction * rows.shape[1])
    keep = torch.ones_like(rows, dtype=torch.bool)
    for r in range(rows.shape[0]):
        keep[r, rows[r].argsort()[:count]] = False
    return keep.reshape(scores.shape)


def test_wanda_on_a_linear_of_tokens_is_the_papers_formula():
    torch.manual_seed(0)
    layer = nn.Linear(12, 5)
    tokens = [torch.randn(3, 7, 12) * torch.linspace(0.1, 3, 12) for _ in range(2)]
    cells = n2prune.attach(layer, prune_mode="Static", threshold=0.5, prune_filler="Wanda")
    n2prune.Pruner(cells).calibrate(layer, tokens)
    x = torch.cat([t.reshape(-1, 12) for t in tokens])       # every leading dim is a token
    scores = layer.weight.abs() * x.norm(dim=0)               # |W_ij| · ||X_j||_2
    assert torch.equal(cells[""].mask.bool(), _row_mask(scores, 0.5))
    assert cells[""].group == "Row"


def test_wanda_on_a_convolution_reads_each_kernel_position():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, padding=1, stride=2)
    images = [torch.randn(2, 3, 7, 7) for _ in range(2)]
    cells = n2prune.attach(conv, prune_mode="Static", threshold=0.6, prune_filler="Wanda")
    n2prune.Pruner(cells).calibrate(conv, images)
    cols = torch.cat([F.unfold(x, 3, padding=1, stride=2).transpose(1, 2).reshape(-1, 27)
                      for x in images])                      # [tokens, C·kh·kw]
    scores = conv.weight.reshape(4, 27).abs() * cols.norm(dim=0)
    assert torch.equal(cells[""].mask.bool().reshape(4, 27), _row_mask(scores, 0.6))


def test_wanda_with_group_layer_ranks_the_whole_layer():
    torch.manual_seed(2)
    layer = nn.Linear(6, 4)
    x = torch.randn(32, 6)
    cells = n2prune.attach(layer, prune_mode="Static", threshold=0.5, prune_filler="Wanda",
                           group="Layer")
    n2prune.Pruner(cells).calibrate(layer, [x])
    scores = (layer.weight.abs() * x.norm(dim=0)).reshape(-1)
    keep = torch.ones(24, dtype=torch.bool)
    keep[scores.argsort()[:12]] = False
    assert torch.equal(cells[""].mask.bool().reshape(-1), keep)


@pytest.mark.parametrize("pattern", ["Unstructured", "2x2"])
def test_row_group_prunes_every_row_alike(pattern):
    torch.manual_seed(3)
    layer = nn.Linear(16, 8)
    with torch.no_grad():
        layer.weight[:4] *= 100  # the top rows would survive a layer-wide ranking
    cells = n2prune.attach(layer, prune_mode="Static", threshold=0.5, prune_filler="Magnitude",
                           pattern=pattern, group="Row")
    mask = cells[""].mask
    assert mask.sum(dim=1).tolist() == [8.0] * 8
    if pattern == "Unstructured":
        assert torch.equal(mask.bool(), _row_mask(layer.weight.abs(), 0.5))


@pytest.mark.parametrize("args, message", [
    ({"pattern": "Channel", "prune_filler": "L1Norm"}, r"pattern='Channel' has no rows"),
    ({"pattern": "2:4"}, r"pattern='2:4' has no rows"),
    ({"scope": "Global"}, r"scope='Global' compares across cells"),
    ({"prune_filler": "IterNonStruct"}, r"prune_filler='IterNonStruct' has none"),
])
def test_row_group_where_it_makes_no_sense_is_refused(args, message):
    kwargs = {"prune_mode": "Static", "threshold": 0.5, "prune_filler": "Magnitude",
              "group": "Row", **args}
    with pytest.raises(ValueError, match=message):
        n2prune.PruneCell(**kwargs)


def test_wanda_falls_back_to_layer_where_rows_cannot_compete():
    assert n2prune.PruneCell(prune_mode="Static", prune_filler="Wanda", pattern="2:4",
                             threshold=0.5).group == "Layer"
    assert n2prune.PruneCell(prune_mode="Static", prune_filler="Wanda", scope="Global",
                             threshold=0.5).group == "Layer"




def test_pruning_group_from_ini(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningMode=Static\n"
                                              "QWeight.PruningGroup=Row"))
    net = load_network(path)
    cell = net.cells["fc"].quantizer
    assert cell.group == "Row"
    assert cell.mask.sum(dim=1).tolist() == [4.0] * 4


def test_a_pruning_group_that_does_not_fit_is_a_located_error(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningMode=Static\n"
                                              "QWeight.PruningGroup=Row\n"
                                              "QWeight.PruningPattern=2:4"))
    with pytest.raises(ConfigError, match=r"net.ini:14: \[fc\] QWeight.PruningGroup=Row: .*"
                                          r"has no rows"):
        load_network(path)
