"""Channel pruning of grouped nn.ConvTranspose*d: output channel g·(out/groups) + j is
weight[g·in/groups:(g+1)·in/groups, j] of the [in, out/groups, ...] weight, not the whole
column j (which holds output j of every group)."""

import pytest
import torch
from torch import nn

import n2prune
from n2prune.prune import CRITERIA, PruneCell
from n2prune.prune.masks import OutView, out_view

# ConvTranspose2d(4, 4, 2, groups=2): W[i, j] (before the 2x2 kernel factor). Output channel
# L1 norms: o0 = |W[0,0]|+|W[1,0]| = 4, o1 = 3.5, o2 = |W[2,0]|+|W[3,0]| = 0.7, o3 = 5.
# Column j = 0 (outputs 0 and 2, what a plain transpose calls "channel 0") sums 4.7, the
# lowest column: a plain transpose would zero outputs 0 and 2.
BASE = [[1.0, 2.0], [3.0, -1.5], [0.5, 4.0], [-0.2, 1.0]]
KERNEL = [[1.0, 0.5], [0.25, 1.0]]
# output channel o keeps weight[i, j] where i // 2 == o // 2 and j == o % 2
KEEP_ALL_BUT_2 = [[1, 1], [1, 1], [0, 1], [0, 1]]


def _grouped(bias: bool = True) -> nn.ConvTranspose2d:
    layer = nn.ConvTranspose2d(4, 4, 2, groups=2, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(BASE)[:, :, None, None] * torch.tensor(KERNEL))
        if bias:
            layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.4]))
    return layer


def _per_weight(mask: torch.Tensor) -> list:
    """[in, out/groups] from a mask whose kernel entries agree (asserted)."""
    flat = mask.reshape(*mask.shape[:2], -1)
    assert bool((flat.amin(dim=2) == flat.amax(dim=2)).all())
    return flat[:, :, 0].int().tolist()


@pytest.mark.parametrize("groups,transposed", [(1, False), (1, True), (2, True), (3, True)])
def test_out_view_round_trips_and_rows_are_output_channels(groups, transposed):
    torch.manual_seed(0)
    layer = (nn.ConvTranspose2d if transposed else nn.Conv2d)(6, 12, 2, groups=groups,
                                                              bias=False)
    view = out_view(layer)
    first = view.first(layer.weight.detach())
    assert tuple(first.shape) == (12, 6 // groups, 2, 2)
    assert torch.equal(view.back(first), layer.weight.detach())
    x = torch.randn(1, 6, 3, 3)
    for o in range(12):  # only row o's weights kept: only output channel o is non-zero
        keep = torch.zeros_like(first)
        keep[o] = 1
        with torch.no_grad():
            y = layer._conv_forward(x, layer.weight * view.back(keep), None) \
                if not transposed else nn.functional.conv_transpose2d(
                    x, layer.weight * view.back(keep), None, groups=groups)
        nonzero = y.abs().transpose(0, 1).reshape(12, -1).amax(dim=1) > 0
        assert nonzero.tolist() == [c == o for c in range(12)]


def test_out_view_of_a_grouped_transposed_weight_by_hand():
    w = torch.arange(8.0).reshape(4, 2, 1)  # [in 4, out/groups 2]
    assert OutView(True, 2).first(w)[:, :, 0].tolist() == [[0, 2], [1, 3], [4, 6], [5, 7]]


def test_static_l1_channel_prunes_exactly_the_weakest_output_channel():
    layer = _grouped()
    layer.quantizer = PruneCell(prune_mode="Static", prune_filler="L1Norm", pattern="Channel",
                                threshold=0.25)
    assert _per_weight(layer.quantizer.mask) == KEEP_ALL_BUT_2
    assert layer.quantizer.mask.shape == layer.weight.shape
    assert layer.quantizer.dead_groups()[0].tolist() == [False, False, True, False]
    x = torch.randn(3, 4, 5, 5)
    with torch.no_grad():
        y = layer(x)
        dense = nn.functional.conv_transpose2d(x, layer.weight, layer.bias, groups=2)
    assert bool((y[:, 2] == layer.bias[2]).all())  # exactly its bias, nothing else
    assert torch.equal(y[:, [0, 1, 3]], dense[:, [0, 1, 3]])


def test_global_scope_ranks_the_output_channels_of_a_grouped_transposed_convolution():
    # with a Conv2d(4, 2, 1) of filter norms 40 and 8: 6 groups, 0.3 of them = 2 go: output
    # channel 2 (norm 0.7·2.75) of the ConvTranspose and the conv's channel 1 (norm 8 > 3.5·2.75)
    # does not, output channel 1 (3.5·2.75 = 9.625 > 8) does not: channel 1 of the conv goes
    conv = nn.Conv2d(4, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[10.0] * 4, [2.0] * 4]).reshape(2, 4, 1, 1))
    model = nn.Sequential(_grouped(), conv)
    cells = n2prune.attach(model, prune_mode="Static", prune_filler="L1Norm",
                           pattern="Channel", threshold=0.3, scope="Global")
    assert _per_weight(cells["0"].mask) == KEEP_ALL_BUT_2
    assert cells["1"].mask.reshape(2, 4).int().tolist() == [[1] * 4, [0] * 4]


def test_gradual_masks_of_a_grouped_transposed_convolution_only_grow():
    layer = _grouped(bias=False)
    layer.quantizer = PruneCell(prune_mode="Gradual", prune_filler="L1Norm", pattern="Channel",
                                threshold=0.5, start=0.25, stepsize=1, gamma=0.25)
    assert _per_weight(layer.quantizer.mask) == KEEP_ALL_BUT_2
    with torch.no_grad():  # output 2 grows strongest: it stays pruned, output 1 joins it
        layer.weight[2:, 0] *= 100
    layer.quantizer.update(1)
    assert layer.quantizer.get_current_threshold() == pytest.approx(0.5)
    assert _per_weight(layer.quantizer.mask) == [[1, 0], [1, 0], [0, 1], [0, 1]]


def _apoz_model() -> nn.Sequential:
    # ConvTranspose1d(2, 4, 1, groups=2): input 0 feeds outputs 0, 1; input 1 outputs 2, 3.
    layer = nn.ConvTranspose1d(2, 4, 1, groups=2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]).reshape(2, 2, 1))
        layer.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.6]))
    return nn.Sequential(layer)


def test_apoz_scores_the_output_channels_of_a_grouped_transposed_convolution():
    # x0 = (1, 2, 3, -1), x1 = (-1, -1, 1, 2): y0 = x0 (1/4 <= 0), y1 = -x0 (3/4),
    # y2 = 2·x1 (2/4), y3 = 0.5·x1 + 0.6 (0/4): 1 - APoZ = (.75, .25, .5, 1): 1 and 2 go
    model = _apoz_model()
    n2prune.attach(model, prune_mode="Static", prune_filler="APoZ", pattern="Channel",
                   threshold=0.5)
    pruner = n2prune.Pruner(model, calibration_batches=1)
    x = torch.tensor([[[1.0, 2.0, 3.0, -1.0], [-1.0, -1.0, 1.0, 2.0]]])
    pruner.calibrate(model, [(x, None)], lambda out, _: out.sum())
    assert model[0].quantizer.mask.reshape(2, 2).int().tolist() == [[1, 0], [0, 1]]


@pytest.mark.parametrize("name", [n for n in CRITERIA.names()
                                  if CRITERIA.get(n).reconstruct is None])  # not SparseGPT
def test_every_criterion_prunes_whole_output_channels_of_a_grouped_transposed_conv(name):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(4, 6, 2, groups=2)  # weight [4, 3, 2, 2]
    model = nn.Sequential(layer, nn.ReLU())
    n2prune.attach(model, prune_mode="Static", prune_filler=name, pattern="Channel",
                   threshold=0.5, seed=0)
    pruner = n2prune.Pruner(model, calibration_batches=2)
    x = torch.randn(2, 5, 4, 3, 3)
    pruner.calibrate(model, [(batch, None) for batch in x], lambda out, _: out.square().mean())
    mask = layer.quantizer.mask
    assert mask.shape == layer.weight.shape
    rows = OutView(True, 2).first(mask).reshape(6, -1)
    assert bool((rows.amin(dim=1) == rows.amax(dim=1)).all())  # whole output channels
    assert int((rows.sum(dim=1) == 0).sum()) == 3
    with torch.no_grad():
        y = layer(torch.randn(2, 4, 3, 3))
    gone = rows.sum(dim=1) == 0
    assert bool((y[:, gone] == layer.bias[gone].reshape(1, -1, 1, 1)).all())


def test_compact_refuses_a_transposed_convolution_naming_it_or_keeps_its_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.ReLU(), _grouped(), nn.ReLU(),
                          nn.Conv2d(4, 3, 1))
    n2prune.attach(model, prune_mode="Static", prune_filler="L1Norm", pattern="Channel",
                   threshold=0.25)
    model.eval()
    x = torch.randn(2, 2, 5, 5)
    with pytest.raises(ValueError, match=r"^channel groups: cannot decide how channels flow "
                                         r"through aten.convolution in 2 \(ConvTranspose2d\)"
                                         r"[^\n]*$"):
        n2prune.compact(model, x)
    small = n2prune.compact(model, x, strict=False)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)
    assert small[2].weight.shape == model[2].weight.shape  # its channels are kept


@pytest.mark.parametrize("groups, expected", [
    # output rows of BASE: (1, 3), (2, -1.5), (0.5, -0.2), (4, 1) (groups 2), or the
    # columns (1, 3, 0.5, -0.2), (2, -1.5, 4, 1) (groups 1: one output per column)
    (2, [10.0, 6.25, 0.29, 17.0]),
    (1, [10.29, 23.25]),
])
def test_group_lasso_groups_the_output_channels_of_a_transposed_convolution(groups, expected):
    from n2prune.prune.regularization import cell_penalty
    layer = nn.ConvTranspose2d(4, 2 * groups, 1, groups=groups, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(BASE).reshape(layer.weight.shape))
    layer.quantizer = PruneCell(prune_mode="Identity", pattern="Channel", prune_filler="L1Norm",
                                regularization="GroupLasso", regularization_strength=0.5)
    penalty = cell_penalty(layer.quantizer, 0)
    assert float(penalty) == pytest.approx(0.5 * sum(v ** 0.5 for v in expected), rel=1e-6)
    penalty.backward()  # differentiable through the view
    assert layer.weight.grad.shape == layer.weight.shape
