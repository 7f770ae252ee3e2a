"""Masks only grow along a schedule (default), or are re-ranked at each step (regrow=True).

Each case prunes at 25 %, then raises the weight pruned first above the others and steps the
schedule to 50 %: kept pruned by default, back with regrow=True.
"""

import pytest
import torch
from torch import nn

import n2prune
from n2prune import ConfigError, PruneCell, load_network
from n2prune.prune.ranking import prune_global
from n2prune.prune.scope import pruned_first
from nets import FC8_MAGNITUDE  # one Fc of 8 inputs, Magnitude to 0.5; {extra} at line 13


def _linear(weight):
    weight = torch.tensor(weight)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def _gradual(**kwargs):
    """A Linear staircase 0.25 -> 0.5, one step per update(1)."""
    return dict(prune_mode="Gradual", prune_filler="Magnitude", start=0.25, gamma=0.25,
                threshold=0.5, stepsize=1, **kwargs)


def _step(layers, new_weights, cells):
    for layer, weight in zip(layers, new_weights):
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(weight))
    fired = [cell.update(1) for cell in cells]
    assert all(fired)


@pytest.mark.parametrize("regrow,expected", [
    (False, [[0., 0., 1., 1.]]),  # weight 0 stays pruned, weight 1 (2.) joins it
    (True, [[1., 0., 0., 1.]]),   # re-ranked: 2. and 3. are now the smallest
])
def test_layer_scope_unstructured(regrow, expected):
    layer = _linear([[1., 2., 3., 4.]])
    layer.quantizer = PruneCell(**_gradual(regrow=regrow))
    assert layer.quantizer.mask.tolist() == [[0., 1., 1., 1.]]
    _step([layer], [[[10., 2., 3., 4.]]], [layer.quantizer])
    assert layer.quantizer.mask.tolist() == expected


@pytest.mark.parametrize("regrow,expected", [
    (False, [[0., 0., 1., 1.]]),
    (True, [[1., 0., 0., 1.]]),
])
def test_n_of_m_pattern(regrow, expected):
    layer = _linear([[1., 2., 3., 4.]])  # one group of 4; 3:4 prunes ceil(t·4) per group
    layer.quantizer = PruneCell(pattern="3:4", **_gradual(regrow=regrow))
    assert layer.quantizer.mask.tolist() == [[0., 1., 1., 1.]]
    _step([layer], [[[10., 2., 3., 4.]]], [layer.quantizer])
    assert layer.quantizer.mask.tolist() == expected


@pytest.mark.parametrize("regrow,expected", [
    (False, [0., 0., 1., 1.]),
    (True, [1., 0., 0., 1.]),
])
def test_channel_pattern(regrow, expected):
    layer = _linear([[1., 1.], [2., 2.], [3., 3.], [4., 4.]])  # 4 output channels
    layer.quantizer = PruneCell(pattern="Channel", **_gradual(regrow=regrow))
    assert layer.quantizer.mask[:, 0].tolist() == [0., 1., 1., 1.]
    _step([layer], [[[10., 10.], [2., 2.], [3., 3.], [4., 4.]]], [layer.quantizer])
    assert layer.quantizer.mask[:, 0].tolist() == expected
    assert torch.equal(layer.quantizer.mask[:, 0], layer.quantizer.mask[:, 1])


@pytest.mark.parametrize("regrow,expected", [
    (False, ([[0., 0.]], [[1., 1.]])),  # the first layer's pruned weight stays pruned
    (True, ([[1., 0.]], [[0., 1.]])),   # re-ranked over both layers: 2. and 2.5 go
])
def test_global_scope(regrow, expected):
    layers = [_linear([[1., 2.]]), _linear([[3., 4.]])]
    cells = n2prune.attach(nn.Sequential(*layers), scope="Global", **_gradual(regrow=regrow))
    assert [c.mask.tolist() for c in cells.values()] == [[[0., 1.]], [[1., 1.]]]
    _step(layers, [[[10., 2.]], [[2.5, 4.]]], list(cells.values()))
    prune_global(list(cells.values()))
    assert tuple(c.mask.tolist() for c in cells.values()) == expected


def test_static_mode_always_re_ranks():
    layer = _linear([[1., 2., 3., 4.]])
    layer.quantizer = PruneCell(prune_mode="Static", prune_filler="Magnitude", threshold=0.25)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[10., 2., 3., 4.]]))
    layer.quantizer.recompute()
    assert layer.quantizer.mask.tolist() == [[1., 0., 1., 1.]]


def test_pruned_first_leaves_scores_alone_when_the_target_shrinks():
    scores = [torch.tensor([5., 1., 2., 3.])]
    dead = [torch.tensor([True, False, True, False])]
    assert pruned_first(scores, dead, 0.5)[0].tolist() == [-float("inf"), 1., -float("inf"), 3.]
    assert pruned_first(scores, dead, 0.25)[0].tolist() == [5., 1., 2., 3.]  # 2 dead > 1


def test_regrow_must_be_a_bool():
    with pytest.raises(TypeError, match="regrow must be True or False"):
        PruneCell(prune_filler="Magnitude", regrow="yes")


def test_ini_key_reaches_regrow_and_bad_values_are_located(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningMode=Gradual\n"
                                        "QWeight.PruningRegrow=1"))
    net = load_network(str(path))
    assert net.cells["fc"].quantizer.regrow is True
    assert " regrow " in next(row for row in net.summary() if row.startswith("fc "))
    path.write_text(FC8_MAGNITUDE.format(extra="QWeight.PruningMode=Gradual\n"
                                        "QWeight.PruningRegrow=maybe"))
    with pytest.raises(ConfigError, match=r"net\.ini:14: \[fc\] QWeight\.PruningRegrow"):
        load_network(str(path))
