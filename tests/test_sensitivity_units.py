"""Units of the sensitivity analysis and budgets: cells pruned together (a residual stream,
the Coupled scope) are one curve, one budget entry and one term of the latency model,
alongside the single cells."""

import copy

import pytest
import torch

import n2prune
from n2prune.compact.costs import macs
from n2prune.sensitivity import allocate, measure_latency
from test_prune_coupled import Residual

UNITS = {"stream": ["stem", "conv2"], "down+skip": ["down", "skip"]}
SHAPE = (3, 8, 8)


def _setup():
    torch.manual_seed(0)
    model = Residual().eval()
    x = torch.randn(16, *SHAPE)
    reference = model(x).detach()
    calls = []

    def closeness(m):
        calls.append(1)
        with torch.no_grad():
            return -float((m(x) - reference).abs().mean())
    return model, x, closeness, calls


def _analyse(model, x, closeness, **extra):
    return n2prune.sensitivity(model, closeness, cells=["conv1"], units=UNITS, example=x[:1],
                               sparsities=(0.25, 0.5, 0.75), criterion="L1Norm",
                               pattern="Channel", input_shape=SHAPE, **extra)


def test_a_unit_is_pruned_as_the_coupled_scope_prunes_it():
    model, x, closeness, _ = _setup()
    result = _analyse(model, x, closeness)
    assert list(result.points) == ["conv1", "stream", "down+skip"]
    assert result.units == UNITS
    assert result.weights["stream"] == model.stem.weight.numel() + model.conv2.weight.numel()
    half = next(p for p in result.points["stream"] if p.sparsity == 0.5)
    assert half.parameters_removed == result.weights["stream"] // 2
    twin = copy.deepcopy(model)
    n2prune.attach(twin, include=UNITS["stream"], scope="Coupled", pattern="Channel",
                   prune_filler="L1Norm", prune_mode="Static", threshold=0.5, example=x[:1])
    assert half.metric == closeness(twin)
    assert getattr(model.stem, "quantizer", None) is None        # the model is not changed


def test_units_resume_and_a_changed_unit_is_refused(tmp_path):
    model, x, closeness, calls = _setup()
    csv = tmp_path / "sensitivity.csv"
    _analyse(model, x, closeness, csv=csv)
    assert "stream=[stem+conv2]:L1Norm/Channel" in csv.read_text().splitlines()[0]
    calls.clear()
    again = _analyse(model, x, closeness, csv=csv)
    assert calls == [] and len(again.points["stream"]) == 3
    with pytest.raises(ValueError, match="cells, units or their criteria differ"):
        n2prune.sensitivity(model, closeness, cells=["conv1"], units={"stream": ["conv2", "stem"]},
                            example=x[:1], sparsities=(0.25, 0.5, 0.75), criterion="L1Norm",
                            pattern="Channel", input_shape=SHAPE, csv=csv)


def test_budgets_and_latency_count_units():
    model, x, closeness, _ = _setup()
    result = _analyse(model, x, closeness)
    clock = lambda nets: {k: float(macs(n, SHAPE)["dense"]) for k, n in nets.items()}  # noqa
    result.latency = measure_latency(model, result, example=x[:1], timer=clock)
    assert result.latency.removed("stream", torch.tensor([0.5]).numpy())[0] > 0
    budget = allocate(result, 0.4, "Latency", ceiling=0.75)
    assert budget.achieved >= 0.4 and set(budget.sparsities) == {"conv1", "stream",
                                                                  "down+skip"}
    targets = result.cell_targets(budget.sparsities)
    assert targets["stem"] == targets["conv2"] == budget.sparsities["stream"]
    assert targets["down"] == targets["skip"] == budget.sparsities["down+skip"]


def test_units_need_an_example():
    model, x, closeness, _ = _setup()
    with pytest.raises(ValueError, match=r"give sensitivity an example input \(example=x\)"):
        n2prune.sensitivity(model, closeness, units=UNITS)
