"""n2prune.sparse storage apart from compute: a pruned layer computed dense is stored packed
(PackedLayer / PackedWeight), exactly, small on disk, and the report says both choices."""

import copy
import io
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import n2prune
from n2prune.sparse import (SAFE_GLOBALS, STORAGES, PackedLayer, PackedWeight, SparseLinear,
                            densify, saved_bytes, smallest_form, sparsify)

NEVER = dict(min_speedup=math.inf, rounds=1)    # every layer computed dense
ALWAYS = dict(min_speedup=0.0, rounds=1)
NETWORKS = Path(__file__).resolve().parent.parent / "networks"
SAFE = [*SAFE_GLOBALS, nn.Sequential, nn.Linear, nn.ReLU, nn.Conv2d, nn.Flatten]


def pruned(shape, sparsity, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(shape, generator=generator, dtype=dtype)
    return weight * (torch.rand(shape, generator=generator) >= sparsity)


def convnet(sparsity=0.9, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(32, 32, 3, groups=2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(32 * 6 * 6, 64), nn.ReLU(), nn.Linear(64, 10))
    n2prune.attach(model, prune_mode="Static", threshold=sparsity, prune_filler="Magnitude")
    return model.eval()


@pytest.mark.parametrize("form", ["bitmask", "CSR"])
@pytest.mark.parametrize("shape,sparsity,dtype", [
    ((7, 13), 0.9, torch.float32), ((16, 3, 3, 3), 0.5, torch.float32),
    ((5, 5), 1.0, torch.float32), ((9, 2), 0.0, torch.float64), ((40000, 1), 0.95, torch.half)])
def test_every_storage_round_trips_exactly_in_the_bytes_it_predicts(form, shape, sparsity,
                                                                      dtype):
    weight = pruned(shape, sparsity, dtype=dtype)
    packed = PackedWeight(weight, form)
    assert packed.form == form and torch.equal(packed.dense(), weight)
    assert packed.dense().dtype == dtype and packed.nbytes == STORAGES.get(form).nbytes(weight)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.floats(0, 1),
       st.integers(0, 2 ** 31), st.sampled_from(["bitmask", "CSR"]))
def test_packing_any_weight_is_exact(shape, sparsity, seed, form):
    """NaN and infinities are kept as values; only zeros are left out."""
    weight = pruned(tuple(shape), sparsity, seed)
    weight.view(-1)[::5] = weight.view(-1)[::5] * math.inf   # infinities, NaN where 0 * inf
    unpacked = PackedWeight(weight, form).dense()
    assert unpacked.shape == weight.shape
    assert torch.equal(unpacked.isnan(), weight.isnan())
    assert torch.equal(unpacked.nan_to_num(0.0), weight.nan_to_num(0.0))


def test_smallest_form_follows_the_sparsity():
    assert smallest_form(pruned((256, 256), 0.9))[0] == "bitmask"    # 0.525 B/weight vs 0.6
    assert smallest_form(pruned((256, 256), 0.98))[0] == "CSR"       # 0.12 B/weight vs 0.205
    form, size = smallest_form(pruned((64, 64), 0.0))
    assert form is None and size == 64 * 64 * 4
    form, size = smallest_form(pruned((512, 512), 0.9))
    assert size <= 0.14 * 512 * 512 * 4


def test_damaged_packed_buffers_are_refused():
    packed = PackedWeight(pruned((16, 16), 0.9), "bitmask")
    packed.values = packed.values[:-1]
    with pytest.raises(ValueError, match=r"bitmask\): mask marks \d+ non-zero weights, values "
                                         r"holds \d+; the stored buffers are damaged"):
        packed.dense()
    packed = PackedWeight(pruned((16, 16), 0.9), "CSR")
    packed.col_indices[0] = 99
    with pytest.raises(ValueError, match=r"PackedWeight \(CSR\): .*col_indices.* damaged"):
        packed.dense()


def test_dense_computed_layers_are_stored_packed_and_equal_exactly():
    model = convnet()
    x = torch.randn(2, 8, 8, 8)
    masked = model(x).detach()
    report = sparsify(model, x, **NEVER)
    assert report.sparse == [] and report.packed == ["0", "2", "5", "7"]
    assert all(isinstance(model[i], PackedLayer) for i in (0, 2, 5, 7))   # grouped conv too
    assert torch.equal(model(x), masked)
    assert {layer.choice for layer in report.layers} == {"dense"}
    assert {layer.storage for layer in report.layers} <= {"bitmask", "CSR"}
    assert all(layer.stored_bytes <= 0.2 * layer.dense_bytes for layer in report.layers)


def test_saved_packed_model_is_a_quarter_of_dense_and_loads_back(tmp_path):
    model = convnet()
    dense = copy.deepcopy(model)
    n2prune.detach(dense)
    x = torch.randn(3, 8, 8, 8)
    sparsify(model, x, **NEVER)
    expected = model(x)
    path, dense_path = tmp_path / "packed.pt", tmp_path / "dense.pt"
    torch.save(model, path)
    torch.save(dense, dense_path)
    assert path.stat().st_size <= 0.25 * dense_path.stat().st_size
    assert saved_bytes(model.state_dict()) <= 0.25 * saved_bytes(dense.state_dict())
    with torch.serialization.safe_globals(SAFE):
        loaded = torch.load(path, weights_only=True)
    assert "_dense" not in loaded[0].__dict__           # not pickled: unpacked on first use
    assert torch.equal(loaded(x), expected) and torch.equal(loaded(x), dense(x))
    state = torch.load(io.BytesIO(_bytes(model.state_dict())), weights_only=True)
    assert not any(key.endswith(".weight") for key in state)   # no dense weight in the state


def test_load_state_dict_and_to_replace_the_unpacked_weight():
    x = torch.randn(2, 8, 8, 8)
    first, second = convnet(seed=0), convnet(seed=1)
    sparsify(first, x, **NEVER)
    sparsify(second, x, **NEVER)
    assert not torch.equal(first(x), second(x))        # second has unpacked its own weights
    second.load_state_dict(first.state_dict())
    assert torch.equal(second(x), first(x))
    second.double()
    assert second(x.double()).dtype == torch.float64
    assert torch.allclose(second(x.double()), first(x).double(), atol=1e-5)


def test_report_gives_compute_and_storage_apart():
    model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 4))
    n2prune.attach(model, exclude="4", prune_mode="Static", threshold=0.9,
                   prune_filler="Magnitude")
    x = torch.randn(8, 512)
    report = sparsify(model, x, formats=["CSR"], min_speedup=math.inf, rounds=1)
    rows = {layer.name: layer for layer in report.layers}
    assert (rows["0"].choice, rows["0"].storage) == ("dense", "bitmask")
    assert rows["4"].storage == "dense" and rows["4"].stored_bytes == rows["4"].dense_bytes
    assert rows["0"].stored_bytes == model[0].weight.nbytes
    text = str(report)
    assert "compute" in text.splitlines()[0] and "storage" in text.splitlines()[0]
    assert "2 computed dense but stored packed" in text
    assert report.as_dict()["layers"][0]["storage"] == "bitmask"
    model = nn.Sequential(nn.Linear(512, 512))
    n2prune.attach(model, prune_mode="Static", threshold=0.9, prune_filler="Magnitude")
    report = sparsify(model, x, formats=["CSR"], **ALWAYS)
    assert isinstance(model[0], SparseLinear)
    assert (report.layers[0].choice, report.layers[0].storage) == ("CSR", "CSR")
    assert report.layers[0].stored_bytes == model[0].weight.nbytes
    assert report.layers[0].stored_bytes <= 0.16 * report.layers[0].dense_bytes   # int16 cols


def test_a_cell_with_its_prunecell_attached_is_refused():
    net = n2prune.load_network(str(NETWORKS / "lenet.ini"))
    with pytest.raises(ValueError, match="PackedLayer: the Conv still has a PruneCell attached"):
        PackedLayer(net.cells["conv1"])


def test_compact_false_leaves_dense_layers_plain():
    model = convnet()
    report = sparsify(model, torch.randn(1, 8, 8, 8), compact=False, **NEVER)
    assert report.packed == [] and type(model[0]) is nn.Conv2d


def test_densify_and_onnx_of_packed_layers():
    model = convnet()
    x = torch.randn(2, 8, 8, 8)
    sparsify(model, x, **NEVER)
    expected = model(x)
    with pytest.raises(RuntimeError, match="PackedLayer: ONNX export needs the dense form: "
                                           "n2prune.sparse.densify"):
        torch.onnx.export(model, (x,), io.BytesIO(), dynamo=False)
    assert densify(model) == ["0", "2", "5", "7"]
    assert type(model[0]) is nn.Conv2d and model[0].weight.requires_grad
    assert torch.equal(model(x), expected)
    pytest.importorskip("onnx", reason="onnx export needs the onnx package")
    torch.onnx.export(model, (x,), io.BytesIO(), dynamo=False)


def test_lenet_computed_dense_is_stored_in_a_quarter():
    net = n2prune.load_network(str(NETWORKS / "lenet.ini"))
    n2prune.detach(net, bake=False)
    n2prune.attach(net, prune_mode="Static", threshold=0.9, prune_filler="Magnitude")
    net.eval()
    x = torch.randn(1, *net.input_shape)
    with torch.no_grad():
        masked = net(x)
        dense = copy.deepcopy(net)
        n2prune.detach(dense)
        report = sparsify(net, x, **NEVER)
        assert report.packed == ["layers.conv1", "layers.conv2", "layers.fc1", "layers.fc2"]
        assert torch.equal(net(x), masked)
    assert saved_bytes(net.state_dict()) <= 0.25 * saved_bytes(dense.state_dict())
    buffer = io.BytesIO(_bytes(net))
    with torch.no_grad():
        assert torch.equal(torch.load(buffer, weights_only=False)(x), masked)


def _bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
