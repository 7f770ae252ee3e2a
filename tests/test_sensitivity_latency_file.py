"""The latency model kept beside sensitivity.csv: a resumed analysis reads it back instead of
timing every cell's compacted networks again; another analysis, widths or clock measure anew."""

import json

import torch
from torch import nn

import n2prune
from n2prune.compact.costs import macs
from n2prune.sensitivity import measure_latency

SHAPE = (3, 8, 8)


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))
    x = torch.randn(8, *SHAPE)
    reference = model(x).detach()
    return model, x, lambda m: -float((m(x) - reference).abs().mean().detach())


def _analyse(model, closeness, csv):
    return n2prune.sensitivity(model, closeness, cells=["0", "2"], pattern="Channel",
                               criterion="L1Norm", input_shape=SHAPE, csv=csv,
                               sparsities=(0.25, 0.5))


def _clock(timed):
    def by_macs(nets):
        timed.append(len(nets))
        return {k: float(macs(n, SHAPE)["dense"]) for k, n in nets.items()}
    return by_macs


def test_a_resumed_analysis_reads_its_latency_model_back(tmp_path):
    model, x, closeness = _setup()
    csv = tmp_path / "sensitivity.csv"
    timed = []
    first = measure_latency(model, _analyse(model, closeness, csv), example=x[:1],
                            timer=_clock(timed))
    assert timed == [1 + 2 * 4]              # dense, and each cell at 4 widths
    stored = json.loads((tmp_path / "sensitivity.latency.json").read_text())
    assert stored["analysis"] == csv.read_text().splitlines()[0]
    assert stored["widths"] == [0.25, 0.5, 0.75, 0.9] and stored["clock"] == "_clock.<locals>.by_macs"
    timed.clear()
    resumed = _analyse(model, closeness, csv)
    again = measure_latency(model, resumed, example=x[:1], timer=_clock(timed))
    assert timed == []
    assert again.dense == first.dense
    for cell in ("0", "2"):
        assert (again.saved[cell][1] == first.saved[cell][1]).all()
    assert again.measure({"2": 0.5}) == first.measure({"2": 0.5}) and timed == [2, 2]


def test_other_widths_or_clock_measure_anew(tmp_path):
    model, x, closeness = _setup()
    csv = tmp_path / "sensitivity.csv"
    timed = []
    result = _analyse(model, closeness, csv)
    measure_latency(model, result, example=x[:1], timer=_clock(timed))
    measure_latency(model, result, example=x[:1], widths=(0.5,), timer=_clock(timed))
    assert timed == [9, 3]
    assert json.loads((tmp_path / "sensitivity.latency.json").read_text())["widths"] == [0.5]
    other = lambda nets: {k: float(macs(n, SHAPE)["dense"]) for k, n in nets.items()}  # noqa
    measure_latency(model, result, example=x[:1], widths=(0.5,), timer=other)
    assert json.loads((tmp_path / "sensitivity.latency.json").read_text())["clock"] == \
        "test_other_widths_or_clock_measure_anew.<locals>.<lambda>"


def test_without_a_csv_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, x, closeness = _setup()
    result = _analyse(model, closeness, None)
    measure_latency(model, result, example=x[:1], timer=_clock([]))
    assert list(tmp_path.iterdir()) == []
