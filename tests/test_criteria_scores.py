"""Criteria scores on tiny tensors, checked against values computed by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from n2prune.prune import statistics
from n2prune.prune.criteria.activation import activation_magnitude, mag_act
from n2prune.prune.criteria.channel import activation_norm, apoz, entropy, fpgm, variance
from n2prune.prune.criteria.gradient import mag_grad, snip, snip_momentum, taylor
from n2prune.prune.criteria.weight import magnitude_threshold, percentile, rule_fraction

W = torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]])
G = torch.tensor([[0.1, 0.3, -0.1], [2.0, -0.15, 0.2]])


def test_snip_is_abs_weight_times_mean_gradient_and_orders_unlike_magnitude():
    stats = {}
    # two calibration batches whose mean gradient is G
    statistics.update_grad(stats, G + 1.0)
    statistics.update_grad(stats, G - 1.0)
    score = snip(W, stats)
    expected = torch.tensor([[0.1, 0.6, 0.3], [1.0, 0.15, 0.2]])
    assert torch.allclose(score, expected)
    # ascending importance: (0,0) 0.1, (1,1) 0.15, (1,2) 0.2, (0,2) 0.3, (0,1) 0.6, (1,0) 1.0
    assert score.flatten().argsort().tolist() == [0, 4, 5, 2, 1, 3]
    assert float(stats["grad_count"]) == 2.0
    # magnitude would keep (0,2)=3 first and prune (1,0)=0.5 first: Snip keeps (1,0) best
    assert torch.equal(mag_grad(W, stats), score)


def test_taylor_squares_weight_times_gradient():
    score = taylor(W, {"grad": G})
    assert torch.allclose(score, torch.tensor([[0.01, 0.36, 0.09], [1.0, 0.0225, 0.04]]))


def test_snip_momentum_running_score():
    stats = {}
    statistics.update_momentum(stats, W, G, 0.9)
    statistics.update_momentum(stats, W, 2 * G, 0.9)
    # s = 0.9 * |w g| + |w 2g| = 2.9 |w g|
    assert torch.allclose(snip_momentum(W, stats), 2.9 * (W * G).abs())
    with pytest.raises(ValueError, match=r"score_momentum=1.5 is out of range; allowed: \[0, 1\)"):
        snip_momentum(W, stats, score_momentum=1.5)


def test_gradient_criteria_name_the_missing_statistic():
    with pytest.raises(ValueError, match="Snip criterion: statistic 'grad' has not been "
                                         "gathered; run calibration batches first"):
        snip(W, {})
    with pytest.raises(ValueError, match=r"has shape \(3,\), the weight \(2, 3\)"):
        snip(W, {"grad": torch.ones(3)})


def test_activation_magnitude_linear_rms_of_inputs():
    stats = {}
    w = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    statistics.update_inputs(stats, torch.tensor([[2.0, 1.0]]), w, {"input_sq_mean"})
    statistics.update_inputs(stats, torch.tensor([[-2.0, -1.0]]), w, {"input_sq_mean"})
    assert torch.allclose(stats["input_sq_mean"], torch.tensor([4.0, 1.0]))
    assert torch.allclose(activation_magnitude(w, stats),
                          torch.tensor([[2.0, 2.0], [6.0, 0.5]]))


def test_activation_magnitude_grouped_conv_reads_its_group_channels():
    w = torch.ones(4, 1, 1, 1)  # 4 outputs, 2 input channels, groups=2
    score = activation_magnitude(w, {"input_sq_mean": torch.tensor([4.0, 9.0])})
    assert score.flatten().tolist() == [2.0, 2.0, 3.0, 3.0]


def test_activation_magnitude_conv_averages_positions():
    w = torch.ones(1, 2, 1, 1)
    stats = {}
    x = torch.tensor([[[[1.0, 3.0]], [[0.0, 2.0]]]])  # 1 sample, 2 channels, 1x2
    statistics.update_inputs(stats, x, w, {"input_sq_mean"})
    assert torch.allclose(stats["input_sq_mean"], torch.tensor([5.0, 2.0]))
    assert torch.allclose(activation_magnitude(w, stats).flatten(),
                          torch.tensor([5.0, 2.0]).sqrt())


def test_mag_act_linear_and_conv():
    stats = {}
    w = torch.ones(2, 2)
    statistics.update_inputs(stats, torch.tensor([[1.0, -3.0], [3.0, 1.0]]), w, {"input_mean"})
    assert mag_act(w, stats).tolist() == [[2.0, 1.0], [2.0, 1.0]]
    conv = torch.tensor([[[[2.0]]]])
    stats = {}
    statistics.update_inputs(stats, torch.tensor([[[[-1.0, 3.0]]]]), conv, {"input_mean"})
    assert mag_act(conv, stats).flatten().tolist() == [4.0]  # 2 * mean(|-1|, |3|)


def _conv_outputs():
    # 2 samples, 2 channels, 1x2 positions
    return torch.tensor([[[[0.0, 1.0]], [[1.0, 2.0]]],
                         [[[0.0, -1.0]], [[0.0, 3.0]]]])


def test_apoz_on_fixed_activations():
    stats = {}
    w = torch.zeros(2, 1, 1, 1)
    statistics.update_outputs(stats, _conv_outputs(), w, {"output_zero_frac"})
    # channel 0: 0, 1, 0, -1 -> 3 of 4 at or below zero; channel 1: 1, 2, 0, 3 -> 1 of 4
    assert torch.allclose(stats["output_zero_frac"], torch.tensor([0.75, 0.25]))
    assert torch.allclose(apoz(w, stats), torch.tensor([0.25, 0.75]))


def test_output_statistics_over_batches_equal_one_big_batch():
    w = torch.zeros(2, 1, 1, 1)
    needs = {"output_zero_frac", "output_mean", "output_var"}
    whole, parts = {}, {}
    y = torch.randn(6, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    statistics.update_outputs(whole, y, w, needs)
    for part in (y[:1], y[1:4], y[4:]):
        statistics.update_outputs(parts, part, w, needs)
    for name in needs:
        assert torch.allclose(whole[name], parts[name], atol=1e-6), name
    expected_var = y.movedim(1, -1).reshape(-1, 2).var(dim=0, unbiased=False)
    assert torch.allclose(variance(w, parts), expected_var, atol=1e-6)


def test_entropy_of_pooled_channel_histogram():
    stats = {}
    w = torch.zeros(2, 3)
    # Linear outputs of 4 samples: channel 0 constant, channel 1 spread over 4 bins
    y = torch.tensor([[5.0, 0.0], [5.0, 1.0], [5.0, 2.0], [5.0, 3.0]])
    statistics.update_outputs(stats, y, w, {"output_hist"}, bins=4)
    assert stats["output_hist"].tolist() == [[0, 0, 4, 0], [1, 1, 1, 1]]  # 5 in the middle
    assert torch.allclose(entropy(w, stats), torch.tensor([0.0, math.log(4)]))


def test_activation_norm_channel():
    w = torch.zeros(2, 1, 1, 1)
    stats = {}
    statistics.update_outputs(stats, _conv_outputs(), w, {"output_mean"})
    # E over samples: channel 0 [0, 0], channel 1 [0.5, 2.5] -> means of |.|: 0 and 1.5
    assert torch.allclose(activation_norm(w, stats), torch.tensor([0.0, 1.5]))


def test_fpgm_prunes_the_filter_nearest_the_geometric_median():
    filters = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.4, 0.5]])
    score = fpgm(filters.reshape(5, 2, 1, 1), {})
    assert int(score.argmin()) == 4  # the one in the middle of the square
    assert torch.allclose(fpgm(torch.tensor([[0.0], [1.0], [10.0]]), {}),
                          torch.tensor([11.0, 10.0, 19.0]))


def test_statistics_size_does_not_grow_with_batches():
    w = torch.zeros(3, 2, 3, 3)
    needs = set(statistics.KNOWN_STATS)
    sizes = []
    stats = {}
    for batches in (1, 10):
        for _ in range(batches):
            x = torch.randn(4, 2, 5, 5)
            statistics.update_inputs(stats, x, w, needs, lambda x: F.unfold(x, 3))
            statistics.update_outputs(stats, torch.randn(4, 3, 3, 3), w, needs)
            statistics.update_grad(stats, torch.randn_like(w))
            statistics.update_momentum(stats, w, torch.randn_like(w), 0.9)
        sizes.append({name: tuple(t.shape) for name, t in stats.items()})
        stats = {}
    assert sizes[0] == sizes[1]
    assert sum(math.prod(s) for s in sizes[1].values()) < 1000


def test_percentile_margin_is_negative_outside_the_range():
    w = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5])
    # 25th and 75th percentiles of |w|: 0.2 and 0.4
    score = percentile(w, {}, percentile_low=25, percentile_high=75)
    assert torch.allclose(score, torch.tensor([-0.1, 0.0, 0.1, 0.0, -0.1]))
    assert rule_fraction(score) == pytest.approx(0.4)
    # the default range keeps everything and ranks as magnitude
    assert percentile(w, {}).argsort().tolist() == w.abs().argsort().tolist()
    with pytest.raises(ValueError, match="percentile_low=80 must be at most percentile_high=20"):
        percentile(w, {}, percentile_low=80, percentile_high=20)
    with pytest.raises(ValueError, match=r"percentile_high=101 is out of range; allowed: \[0, 100\]"):
        percentile(w, {}, percentile_high=101)


def test_magnitude_threshold_margin():
    w = torch.tensor([0.05, -0.3, 0.2, -0.01])
    score = magnitude_threshold(w, {}, magnitude_threshold=0.1)
    assert torch.allclose(score, torch.tensor([-0.05, 0.2, 0.1, -0.09]))
    assert rule_fraction(score) == 0.5
    with pytest.raises(ValueError, match=r"magnitude_threshold=-1 is out of range; allowed: "
                                         r"\[0, inf\]"):
        magnitude_threshold(w, {}, magnitude_threshold=-1)
