"""Channel groups and compaction of plain / attached torch models through torch.fx."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import n2prune
from n2prune.compact.trace import trace_channel_graph


class Net(nn.Module):
    """Residual add, depthwise conv, concatenation, functional ops, flatten + Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.pw = nn.Conv2d(6, 6, 1)
        self.side = nn.Conv2d(3, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(10 * 4, 5)

    def forward(self, x):
        y = F.relu(self.bn(self.stem(x)))
        y = y + self.pw(torch.relu(self.dw(y)))
        z = torch.cat([y, self.side(x)], dim=1)
        return self.fc(torch.flatten(self.pool(z), 1))


def _model(seed=0):
    torch.manual_seed(seed)
    model = Net().eval()
    with torch.no_grad():
        model.bn.running_mean.normal_(0, 0.1)
        model.bn.running_var.uniform_(0.5, 1.5)
        model.bn.bias.normal_(0, 0.1)
    return model


X = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_groups_from_the_trace():
    graph = trace_channel_graph(_model(), X)
    free = [g for g in graph.groups() if not g.fixed]
    assert len(free) == 10           # 6 residual channels, 4 side channels
    first = sorted(m for m in free[0].members if m[0] in ("stem", "bn", "dw", "pw"))
    assert first == [("bn", 0), ("dw", 0), ("pw", 0), ("stem", 0)]
    assert sorted(free[0].producers) == [("pw", 0), ("stem", 0)]
    assert [g.producers for g in free[6:]] == [[("side", k)] for k in range(4)]


@torch.no_grad()
def test_compaction_equals_the_model():
    model = _model()
    free = [g for g in trace_channel_graph(model, X).groups() if not g.fixed]
    for group in (free[1], free[4], free[7]):
        for name, channel in group.producers:
            model.get_submodule(name).weight[channel] = 0
    small = n2prune.compact(model, X)
    assert small.stem.weight.shape == (4, 3, 3, 3) and small.dw.groups == 4
    assert small.side.weight.shape == (3, 3, 1, 1)
    assert small.fc.weight.shape == (5, 7 * 4)     # a channel = 2x2 Linear inputs
    assert torch.allclose(small(X), model(X), atol=1e-5)


@torch.no_grad()
def test_attached_masks_are_what_is_removed():
    model = _model()
    n2prune.attach(model, include=["stem", "pw", "side"], prune_mode="Identity")
    model.stem.quantizer.mask[2] = 0
    model.pw.quantizer.mask[2] = 0
    model.side.quantizer.mask[0] = 0
    small = n2prune.compact(model, X)
    assert small.compaction["removed_groups"] == 2
    assert small.stem.quantizer.mask.shape == small.stem.weight.shape == (5, 3, 3, 3)
    assert torch.allclose(small(X), model(X), atol=1e-5)


def test_a_branch_on_tensor_values_is_followed():
    class Branchy(nn.Module):      # torch.fx cannot trace this; a recorded pass can
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)

        def forward(self, x):
            y = self.a(x)
            return self.b(y if x.sum() > -1e9 else -y)
    model = Branchy().eval()
    with torch.no_grad():
        model.a.weight[1] = 0
    small = n2prune.compact(model, X)
    assert small.a.out_channels == 3 and torch.allclose(small(X), model(X), atol=1e-5)


def test_undecidable_operation_is_named():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)

        def forward(self, x):
            return self.conv(x).roll(1, 1)
    with pytest.raises(ValueError, match=r"aten.roll in Odd \(.*test_compact_torch.py:\d+ "
                                         r"in forward: return self.conv\(x\).roll"):
        n2prune.compact(Odd(), X)
    graph = trace_channel_graph(Odd(), X, strict=False)
    assert all(g.fixed for g in graph.groups())


def test_torch_model_needs_an_example():
    with pytest.raises(TypeError, match="example input"):
        n2prune.compact(_model())


def test_costs_of_an_attached_torch_model():
    from n2prune.compact.costs import cost_report
    model = _model()
    n2prune.attach(model, include=["stem", "pw", "side"], prune_mode="Identity")
    with torch.no_grad():
        model.stem.quantizer.mask[2] = 0
        model.pw.quantizer.mask[2] = 0
        model.side.quantizer.mask[0] = 0
    report = cost_report(model, example=X, repeats=2, min_seconds=0.001)
    # per 3x8x8 sample: stem 6*27, dw 6*9, pw 6*6, side 4*3 at 64 positions; fc 5*40
    dense = 64 * (6 * 27 + 6 * 9 + 6 * 6 + 4 * 3) + 5 * 40
    assert report["dense"]["macs"] == report["masked"]["macs"] == dense
    assert report["dense"]["nonzero_macs"] == dense
    assert report["masked"]["nonzero_macs"] == dense - 64 * (27 + 6 + 3)
    # group 2 (stem, bn, dw, pw channel 2) and side channel 0 gone; fc reads 8 channels x 2x2
    small = 64 * (5 * 27 + 5 * 9 + 5 * 5 + 3 * 3) + 5 * 8 * 4
    assert report["compacted"]["macs"] == report["compacted"]["nonzero_macs"] == small
    assert report["dense"]["parameters"] == 162 + 12 + 60 + 42 + 16 + 205
    assert report["compacted"]["parameters"] == 135 + 10 + 50 + 30 + 12 + 165
    assert all(row["latency_ms"] > 0 for row in report.values())
    with pytest.raises(TypeError, match="example"):
        cost_report(model)
