"""n2prune.sparse: sparse stand-ins equal the masked layers, the per-layer choice follows the
timings and options, save/load, densify and ONNX refusal, detach(bake="sparse")."""

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import n2prune
from n2prune.sparse import (FORMATS, SAFE_GLOBALS, SparseConv2d, SparseLinear, SparseWeight,
                            SparsifyReport, densify, saved_bytes, sparsify)
from n2prune.sparse.matrix import bsr_forms
from n2prune.sparse.layers import conv_by_images

ALWAYS = dict(min_speedup=0.0, rounds=1)    # every sparse-able layer sparse: tests equality
NEVER = dict(min_speedup=math.inf, rounds=1)


def mlp(width=96, depth=3, sparsity=0.9, seed=0):
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 5))
    n2prune.attach(model, exclude=str(2 * depth), prune_mode="Static", threshold=sparsity,
                   prune_filler="Magnitude")
    return model


def close(a, b, rel=1e-5):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) <= rel * float(b.abs().max())


@pytest.mark.parametrize("rows", [1, 7])
def test_sparse_outputs_equal_masked(rows):
    model = mlp()
    x = torch.randn(rows, 96)
    masked = model(x).detach()
    report = sparsify(model, x, **ALWAYS)
    assert report.sparse == ["0", "2", "4"]
    assert all(isinstance(model[i], SparseLinear) for i in (0, 2, 4))
    assert isinstance(model[6], nn.Linear)       # unpruned: left as it was
    assert close(model(x), masked) and report.max_difference < 1e-5
    y = model(torch.randn(3, 4, 96))             # leading dims kept
    assert y.shape == (3, 4, 5) and model(torch.randn(0, 96)).shape == (0, 5)


def test_choice_follows_min_speedup_and_min_sparsity():
    model = mlp()
    report = sparsify(model, torch.randn(4, 96), compact=False, **NEVER)
    assert report.sparse == [] and all(isinstance(m, nn.Linear) for m in model[::2])
    assert report.packed == [] and {layer.storage for layer in report.layers} == {"dense"}
    assert all(layer.choice == "dense" and layer.best and "min_speedup" in layer.reason
               for layer in report.layers[:3])
    assert "min_sparsity" in report.layers[3].reason      # the unpruned head, listed too
    assert not hasattr(model[0], "quantizer")    # masks baked in any case
    model = mlp(sparsity=0.3)
    report = sparsify(model, torch.randn(4, 96), **ALWAYS)
    assert report.sparse == [] and all("min_sparsity" in layer.reason for layer in report.layers)


def test_the_fastest_measured_form_is_chosen(monkeypatch):
    """The stand-in kept is the one the timings rank first, dense when it ranks first."""
    model = mlp(width=64)
    forms = {}

    def fake_timing(candidates, inputs, rounds):
        forms["offered"] = [c.weight.format for c in candidates[1:]]
        speedups = [1.0] + [1.5 if c.weight.block == 8 else 1.2 for c in candidates[1:]]
        return [1e-3] * len(candidates), speedups

    monkeypatch.setattr("n2prune.sparse.convert.time_candidates", fake_timing)
    monkeypatch.setattr("n2prune.sparse.matrix.BSR_MIN_FILL", 0.0)  # offer BSR for this test
    report = sparsify(model, torch.randn(2, 64))
    assert forms["offered"] == ["CSR", "BSR 4x4", "BSR 8x8", "BSR 16x16", "BSR 32x32"]
    assert [layer.choice for layer in report.layers[:3]] == ["BSR 8x8"] * 3
    assert model[0].weight.format == "BSR 8x8" and report.layers[0].speedup == 1.5


def test_a_format_registered_from_outside_is_offered():
    class Halved(SparseWeight):
        @property
        def format(self):
            return "Halved"

    with FORMATS.registered("Halved", lambda weight: [Halved(weight)]):
        model = mlp(width=32)
        report = sparsify(model, torch.randn(2, 32), formats=["Halved"], **ALWAYS)
    assert {layer.choice for layer in report.layers[:3]} == {"Halved"}
    with pytest.raises(ValueError, match="unknown sparse format 'CRS'; did you mean 'CSR'"):
        sparsify(mlp(), torch.randn(2, 96), formats=["CRS"])


def test_bsr_offered_for_block_patterns_only():
    torch.manual_seed(0)
    blocks = torch.rand(8, 8) < 0.2
    weight = torch.randn(128, 128) * blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)
    assert [form.format for form in bsr_forms(weight)] == ["BSR 4x4", "BSR 8x8", "BSR 16x16"]
    unstructured = torch.randn(128, 128) * (torch.rand(128, 128) < 0.1)
    assert bsr_forms(unstructured) == []
    x = torch.randn(9, 128)
    for form in bsr_forms(weight) + [SparseWeight(weight)]:
        assert close(form.linear(x, None), F.linear(x, weight))
        assert close(form.linear(x[:1], torch.ones(128)), F.linear(x[:1], weight) + 1)
        assert torch.equal(form.dense(), weight)


def test_block_pruned_model_sparsifies_exactly():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 64))
    n2prune.attach(model, prune_mode="Static", threshold=0.75, prune_filler="Magnitude",
                   pattern="16x16")
    x = torch.randn(8, 64)
    masked = model(x).detach()
    report = sparsify(model, x, formats=["BSR"], **ALWAYS)
    assert report.sparse == ["0", "2"] and model[0].weight.format.startswith("BSR")
    assert close(model(x), masked)


@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (1, 1, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), ((3, 1), 1, (2, 0), 2), (1, 2, 0, 1)])
def test_conv2d_stand_in_equals_conv2d(kernel, stride, padding, dilation):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, kernel, stride, padding, dilation)
    with torch.no_grad():
        conv.weight.mul_(torch.rand_like(conv.weight) > 0.8)
    x = torch.randn(3, 16, 9, 10)
    stand_in = SparseConv2d(conv, SparseWeight(SparseConv2d.weight_matrix(conv)))
    assert close(stand_in(x), conv(x))


def test_conv_without_a_sparse_path_stays_dense_and_says_why():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, groups=2), nn.ReLU(), nn.Conv2d(8, 8, 1))
    n2prune.attach(model, prune_mode="Static", threshold=0.9, prune_filler="Magnitude")
    report = sparsify(model, torch.randn(2, 8, 6, 6), **ALWAYS)
    assert report.sparse == ["2"] and isinstance(model[2], SparseConv2d)
    assert "grouped convolution (groups=2)" in report.layers[0].reason
    assert "grouped convolution" in str(report)


def test_report_prints_and_serialises():
    report = sparsify(mlp(), torch.randn(4, 96), **ALWAYS)
    text = str(report)
    assert text.splitlines()[0].startswith("layer") and "CSR" in text
    assert f"3 of 4 layers sparse" in text and f"{torch.get_num_threads()} thread(s)" in text
    data = report.as_dict()
    assert [row["choice"] for row in data["layers"]] == ["CSR"] * 3 + ["dense"]
    assert isinstance(report, SparsifyReport) and report.threads == torch.get_num_threads()


def test_save_and_load_keep_outputs_and_stay_small(tmp_path):
    model = mlp(width=256, sparsity=0.9)
    dense_bytes = saved_bytes(copy.deepcopy(model).state_dict())
    x = torch.randn(4, 256)
    sparsify(model, x, **ALWAYS)
    expected = model(x)
    path = tmp_path / "sparse.pt"
    torch.save(model, path)
    with torch.serialization.safe_globals([*SAFE_GLOBALS, nn.Sequential, nn.Linear, nn.ReLU]):
        loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded(x), expected)
    assert torch.equal(torch.load(path, weights_only=False)(x), expected)
    state = model.state_dict()
    assert state["0.weight.col_indices"].dtype == torch.int16
    assert state["0.weight.crow_indices"].dtype == torch.int32
    again = copy.deepcopy(model)
    again.load_state_dict(torch.load(io.BytesIO(_bytes(state)), weights_only=True))
    assert torch.equal(again(x), expected)
    assert saved_bytes(state) <= 0.25 * dense_bytes


def _bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_damaged_indices_are_refused_not_read_out_of_bounds():
    model = mlp(width=32)
    sparsify(model, torch.randn(2, 32), **ALWAYS)
    state = model.state_dict()
    state["0.weight.col_indices"][0] = 999
    damaged = copy.deepcopy(model)
    damaged.load_state_dict(state)
    with pytest.raises(RuntimeError, match="col_indices"):
        damaged(torch.randn(2, 32))


def test_densify_gives_dense_layers_and_onnx_needs_them():
    model = mlp(width=32)
    x = torch.randn(2, 32)
    sparsify(model, x, **ALWAYS)
    expected = model(x)
    with pytest.raises(RuntimeError, match="ONNX export needs the dense form: "
                                           "n2prune.sparse.densify"):
        torch.onnx.export(model, (x,), io.BytesIO(), dynamo=False)
    assert densify(model) == ["0", "2", "4"]
    assert all(type(m) is nn.Linear for m in model[::2])
    assert close(model(x), expected)
    assert float((model[0].weight == 0).float().mean()) >= 0.9
    pytest.importorskip("onnx", reason="onnx export needs the onnx package")
    torch.onnx.export(model, (x,), io.BytesIO(), dynamo=False)


def test_detach_bake_sparse_calls_sparsify():
    model = mlp(width=32)
    x = torch.randn(2, 32)
    masked = model(x).detach()
    report = n2prune.detach(model, bake="sparse", example=x, **ALWAYS)
    assert isinstance(report, SparsifyReport) and report.sparse == ["0", "2", "4"]
    assert close(model(x), masked)
    with pytest.raises(ValueError, match="needs example="):
        n2prune.detach(mlp(width=32), bake="sparse")
    with pytest.raises(ValueError, match="unknown detach bake mode 'sprase'"):
        n2prune.detach(mlp(width=32), bake="sprase")
    with pytest.raises(TypeError, match="example only go with a named bake"):
        n2prune.detach(mlp(width=32), example=x)


class Block(nn.Module):
    """Attention then a feed-forward pair, as in a transformer layer."""

    def __init__(self, width=32):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, 4, batch_first=True)
        self.up, self.down = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, src, scale=1.0):
        x = src + self.attention(src, src, src, need_weights=False)[0]
        return scale * (x + self.down(F.gelu(self.up(x))))


def test_keyword_examples_and_multihead_attention():
    """Keyword examples reach the model; nn.MultiheadAttention's out_proj (whose weight its
    owner reads directly) is never replaced."""
    torch.manual_seed(0)
    block = Block()
    n2prune.attach(block, exclude="attention.*", prune_mode="Static", threshold=0.9,
                   prune_filler="Magnitude")
    with torch.no_grad():   # its owner would bypass a mask's hooks: zeros in the weight
        block.attention.out_proj.weight.mul_(torch.rand(32, 32) < 0.1)
    x = torch.randn(2, 5, 32)
    block.eval()
    masked = block(x, scale=2.0).detach()
    report = sparsify(block, {"src": x, "scale": 2.0}, **ALWAYS)
    assert report.sparse == ["up", "down"]
    assert "reads the weight itself" in report.layers[0].reason
    assert type(block.attention.out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
    assert report.layers[0].storage == "dense"   # not packed either: its owner reads it
    assert close(block(x, scale=2.0), masked)
