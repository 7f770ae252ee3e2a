"""Latency rounds run the networks in balanced orders: each first, and right after each other
one, equally often (what ran just before changes a network's time)."""

from collections import Counter

import pytest
import torch
from torch import nn

from n2prune.compact.costs import balanced_orders, compare_latency, latency_samples


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6])
def test_each_network_runs_first_and_after_each_other_equally_often(count):
    orders = balanced_orders(count)
    assert all(sorted(order) == list(range(count)) for order in orders)
    assert len(set(Counter(order[0] for order in orders).values())) == 1
    follows = Counter((a, b) for order in orders for a, b in zip(order, order[1:]))
    assert len(follows) == count * (count - 1) and len(set(follows.values())) <= 1


class _Logged(torch.nn.Module):
    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x):
        self.log.append(self.name)
        return x


def test_latency_samples_follow_the_orders_and_give_one_value_per_round():
    log = []
    nets = {name: _Logged(name, log) for name in "abc"}
    samples = latency_samples(nets, (2,), repeats=6, warmup=0, min_seconds=0.0)
    assert {name: len(values) for name, values in samples.items()} == {"a": 6, "b": 6, "c": 6}
    rounds = log[3:]                              # after one pass each to count the loops
    after = Counter((x, y) for x, y in zip(rounds, rounds[1:]) if x != y)
    assert after[("a", "b")] >= 2 and after[("b", "a")] >= 2   # not one cyclic order
    assert compare_latency(nets, (2,), repeats=3, warmup=0, min_seconds=0.0).keys() == set("abc")


def test_every_submodules_mode_is_left_as_found():
    """Timing runs in eval mode and gives back each submodule's own mode (a model learning
    with one frozen BatchNorm stays so; restoring the top module's mode alone would not)."""
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.5))
    net.train()
    net[1].eval()
    samples = latency_samples({"net": net}, (2,), batch=2, repeats=2, warmup=0, min_seconds=0.0)
    assert len(samples["net"]) == 2
    assert [m.training for m in net.modules()] == [True, True, False, True]
