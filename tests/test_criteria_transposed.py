"""Activation and channel criteria on nn.ConvTranspose*d, whose weight is [in, out/groups,
...]: hand-computed scores on tiny layers, where reading the weight as [out, in, ...] would
give other masks."""

import math

import pytest
import torch
from torch import nn

import n2prune
from n2prune.prune.criteria.channel import entropy


def _layer(layer: nn.Module, weight, bias=None) -> nn.Sequential:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight).reshape(layer.weight.shape))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return nn.Sequential(layer)


def _prune(model, x, **kwargs):
    """Static pruning of the model's layer after one calibration batch ``x``."""
    n2prune.attach(model, prune_mode="Static", **kwargs)
    pruner = n2prune.Pruner(model, calibration_batches=1)
    assert pruner.calibrate(model, [(x, None)], lambda out, _: out.sum()) == 1
    return model[0].quantizer.mask


# ConvTranspose1d(2 in, 3 out, kernel 1): W[i, j] = weight of input i for output j.
W_IN_OUT = [[1.2, 2.0, 0.5], [4.0, 2.5, 3.0]]
# one sample, two positions: input 0 = (3, 3), input 1 = (1, -1): RMS (3, 1), |mean| (3, 1)
X_2 = torch.tensor([[[3.0, 3.0], [1.0, -1.0]]])


@pytest.mark.parametrize("criterion", ["ActivationMagnitude", "MagAct"])
def test_input_criteria_weigh_each_weight_by_its_input_channel(criterion):
    model = _layer(nn.ConvTranspose1d(2, 3, 1, bias=False), W_IN_OUT)
    mask = _prune(model, X_2, prune_filler=criterion, threshold=0.5)
    # scores |W[i, j]|·a_i = [[3.6, 6, 1.5], [4, 2.5, 3]]: 1.5, 2.5 and 3 are pruned
    # (Magnitude alone would prune 0.5, 1.2 and 2.0, the whole first row)
    assert mask.reshape(2, 3).int().tolist() == [[1, 1, 0], [1, 0, 0]]


def test_activation_magnitude_on_a_grouped_transposed_convolution():
    torch.manual_seed(3)
    layer = nn.ConvTranspose2d(4, 6, 2, groups=2, bias=False)  # weight [4, 3, 2, 2]
    model = nn.Sequential(layer)
    x = torch.randn(5, 4, 3, 3) * torch.tensor([1.0, 2.0, 0.5, 3.0]).reshape(1, 4, 1, 1)
    mask = _prune(model, x, prune_filler="ActivationMagnitude", threshold=0.5)
    rms = x.transpose(0, 1).reshape(4, -1).square().mean(dim=1).sqrt()  # per input channel
    scores = layer.weight.detach().abs() * rms.reshape(4, 1, 1, 1)
    expected = torch.ones(48)
    expected[scores.reshape(-1).argsort()[:24]] = 0  # no ties with random weights
    assert torch.equal(mask.reshape(-1), expected)


# ConvTranspose1d(1 in, 3 out, kernel 1) with a bias: y_c = w_c·x + b_c over 4 positions.
X_1 = torch.tensor([[[1.0, 2.0, 3.0, -1.0]]])
W_1 = [[1.0, -2.0, 0.5]]
B_1 = [0.0, 0.0, -0.8]


@pytest.mark.parametrize("criterion,kept", [
    # outputs <= 0: y0 = (1, 2, 3, -1) 1/4, y1 = (-2, -4, -6, 2) 3/4, y2 = (-.3, .2, .7, -1.3)
    # 2/4: 1 - APoZ = (.75, .25, .5): channels 1 and 2 go
    ("APoZ", [1, 0, 0]),
    # var(x) = 2.1875: variances (2.1875, 8.75, 0.546875): channels 2 and 0 go
    ("Variance", [0, 1, 0]),
])
def test_output_channel_criteria_score_output_channels(criterion, kept):
    model = _layer(nn.ConvTranspose1d(1, 3, 1), W_1, B_1)
    mask = _prune(model, X_1, prune_filler=criterion, threshold=0.6, pattern="Channel")
    assert mask.reshape(3).int().tolist() == kept  # L1Norm would keep channel 1 only


def test_entropy_scores_output_channels():
    # ConvTranspose1d(2 in, 2 out): output 0 = x0, output 1 = 0.05·x0 + 0.5·x1 (W[i, j]);
    # three samples (x0, x1) = (0, 0), (1, 0), (1, 1): output 0 sees 0, 1, 1 (two in one bin),
    # output 1 sees 0, 0.05, 0.55 (three bins): output 0 goes, although its filter is larger
    model = _layer(nn.ConvTranspose1d(2, 2, 1, bias=False), [[1.0, 0.05], [0.0, 0.5]])
    x = torch.tensor([[[0.0], [0.0]], [[1.0], [0.0]], [[1.0], [1.0]]])
    mask = _prune(model, x, prune_filler="Entropy", threshold=0.5, pattern="Channel")
    assert mask.reshape(2, 2).int().tolist() == [[0, 1], [0, 1]]
    hist = model[0].quantizer.stats["output_hist"]
    ln = torch.tensor([-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3), math.log(3)], dtype=torch.float64)
    assert torch.allclose(entropy(torch.zeros(2, 2), {"output_hist": hist}).double(), ln)


def test_fpgm_compares_output_filters():
    # output filters (columns of W [2 in, 3 out]): (0, 0), (1, 0), (10, 0): distance sums
    # 11, 10, 19: the filter nearest the median, output 1, goes
    model = _layer(nn.ConvTranspose1d(2, 3, 1, bias=False), [[0.0, 1.0, 10.0], [0.0, 0.0, 0.0]])
    n2prune.attach(model, prune_mode="Static", prune_filler="FPGM", threshold=0.3,
                   pattern="Channel")
    assert model[0].quantizer.mask.reshape(2, 3).int().tolist() == [[1, 0, 1], [1, 0, 1]]

