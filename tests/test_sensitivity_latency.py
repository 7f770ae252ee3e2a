"""Latency as a budget target (n2prune.sensitivity.latency): a per-cell model measured at a
few widths, the whole budget measured on the compacted network. The timer is injected (MACs
of the compacted network, a deterministic stand-in for seconds), so the tests do not depend
on the machine's speed."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import n2prune
from n2prune.cli import sensitivity_main
from n2prune.compact.costs import macs
from n2prune.sensitivity import latency
from n2prune.sensitivity import allocate
from n2prune.sensitivity.latency import _compacted, measure_latency

SHAPE = (3, 8, 8)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))


def _timer(calls):
    def timer(nets):
        calls.append(sorted(nets))
        return {name: float(macs(net, SHAPE)["dense"]) for name, net in nets.items()}
    return timer


def _recording_timer(measured):
    """``_timer``, appending each measured budget's saving (1 - budget / dense) to
    ``measured``."""
    def timer(nets):
        seconds = _timer([])(nets)
        if "budget" in seconds:
            measured.append(1 - seconds["budget"] / seconds[""])
        return seconds
    return timer


def _analysed(model, pattern="Channel"):
    x = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(1))
    reference = model(x).detach()

    def closeness(m):
        with torch.no_grad():
            return -float((m(x) - reference).abs().mean())
    return n2prune.sensitivity(model, closeness, cells=["0", "2", "4"], pattern=pattern,
                               criterion="L1Norm", input_shape=SHAPE), x[:1]


def test_the_latency_budget_meets_its_target_measured_on_the_compacted_network():
    model = _model()
    result, example = _analysed(model)
    calls = []
    result.latency = measure_latency(model, result, example=example, timer=_timer(calls))
    assert len(calls) == 1 and len(calls[0]) == 1 + 3 * 4   # dense, 3 cells x 4 widths at once
    x, saved = result.latency.saved["2"]
    assert list(x) == [0.0, 0.25, 0.5, 0.75, 0.9] and saved[0] == 0 and np.all(np.diff(saved) > 0)
    for target in (0.3, 0.5, 0.7):
        budget = allocate(result, target, "Latency")
        # measured again from scratch, with the same timer: the budget's network
        dense = macs(_compacted(model, {}, {c: ("L1Norm", "Channel") for c in "024"},
                                example, 0), SHAPE)["dense"]
        small = _compacted(model, budget.sparsities, {c: ("L1Norm", "Channel") for c in "024"},
                           example, 0)
        fraction = 1 - macs(small, SHAPE)["dense"] / dense
        assert fraction >= target and budget.achieved == pytest.approx(fraction)


def test_the_cells_alone_promise_more_than_the_network_gives_so_more_is_asked():
    """Shrinking conv2's rows and conv4's rows saves less together than alone (conv4's
    inputs are conv2's rows): the first-order sum overshoots, the measurement corrects it."""
    model = _model()
    result, example = _analysed(model)
    measured = []
    result.latency = measure_latency(model, result, example=example,
                                     timer=_recording_timer(measured))
    budget = allocate(result, 0.6, "Latency")
    assert measured[0] < 0.6 <= budget.achieved and budget.achieved in measured
    # the least measured budget meeting the target: nothing measured closer to it met it
    assert all(m < 0.6 or m >= budget.achieved for m in measured)
    assert len(measured) > 2       # grown past the target, then bisected back toward it


def test_cells_without_the_channel_pattern_save_no_latency():
    model = _model()
    result, example = _analysed(model, pattern="Unstructured")
    calls = []
    result.latency = measure_latency(model, result, example=example, timer=_timer(calls))
    assert calls == [[""]]         # nothing to measure: zeros run on a dense kernel
    with pytest.raises(ValueError, match=r"the ceilings reach only 0.00% \(Latency\)"):
        allocate(result, 0.2, "Latency")


def test_a_latency_target_without_a_latency_model_says_how_to_measure_one():
    result, _ = _analysed(_model())
    with pytest.raises(ValueError, match=r"result.latency = n2prune.sensitivity.measure_latency"):
        allocate(result, 0.3, "Latency")
    with pytest.raises(ValueError, match="widths must be sparsities strictly between 0 and 1"):
        measure_latency(_model(), result, example=torch.zeros(1, *SHAPE), widths=[0.5, 1.0])
    with pytest.raises(TypeError, match="pass an example input"):
        measure_latency(_model(), result)


def test_command_line_latency_target_on_an_ini_network(tmp_path, capsys, monkeypatch):
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setattr(latency, "default_timer", lambda example, shape: lambda nets: {
        name: float(macs(net, shape)["dense"]) for name, net in nets.items()})
    out = tmp_path / "out"
    assert sensitivity_main([str(root / "networks" / "digits.ini"), "-o", str(out),
                             "--sparsities", "0.5", "0.9", "--pattern", "Channel",
                             "--criterion", "L1Norm", "--target-latency", "0.4",
                             "--quiet"]) == 0
    shown = capsys.readouterr().out
    assert "(Latency: target 40.00% of the compacted network's measured latency saved)" in shown
    net = n2prune.load_network(str(out / "digits.ini"))
    assert any(c.quantizer.threshold != 0.75 for c in net.pruned_cells().values())


def test_a_budget_met_at_once_is_bisected_back_toward_the_target():
    """With savings underestimated (a timer counting only half of what compaction removes
    from the cells alone), the first budget overshoots; smaller requests are tried."""
    model = _model()
    result, example = _analysed(model)
    measured = []
    result.latency = measure_latency(model, result, example=example,
                                     timer=_recording_timer(measured))
    for cell, (x, saved) in result.latency.saved.items():
        result.latency.saved[cell] = (x, saved / 2)
    budget = allocate(result, 0.3, "Latency")
    assert measured[0] > budget.achieved >= 0.3 and len(measured) > 1
