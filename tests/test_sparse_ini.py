"""n2prune.sparse on INI networks: Fc / Conv cells' stand-ins equal the masked network, and
``n2prune-compact --sparse`` writes the sparse model and its latency report."""

import json
import math
from pathlib import Path

import pytest
import torch

import n2prune
from n2prune.cli import compact_main
from n2prune.n2d2io.write import write_weights
from n2prune.sparse import SparseConv, SparseFc, sparsify

NETWORKS = Path(__file__).resolve().parent.parent / "networks"


def lenet_at(sparsity):
    net = n2prune.load_network(str(NETWORKS / "lenet.ini"))
    n2prune.detach(net, bake=False)
    n2prune.attach(net, prune_mode="Static", threshold=sparsity, prune_filler="Magnitude")
    return net.eval()


@pytest.mark.parametrize("batch", [1, 3])
def test_ini_cells_sparse_equal_masked(batch):
    net = lenet_at(0.9)
    x = torch.randn(batch, *net.input_shape)
    with torch.no_grad():
        masked = net(x)
        report = sparsify(net, x, min_speedup=0.0, rounds=1)
        assert report.sparse == ["layers.conv1", "layers.conv2", "layers.fc1", "layers.fc2"]
        assert isinstance(net.cells["conv2"], SparseConv)
        assert isinstance(net.cells["fc1"], SparseFc)
        assert float((net(x) - masked).abs().max()) <= 1e-5 * float(masked.abs().max())
    assert n2prune.densify(net) == report.sparse
    with torch.no_grad():
        assert float((net(x) - masked).abs().max()) <= 1e-5 * float(masked.abs().max())


def test_compact_sparse_writes_model_and_latency_report(tmp_path, capsys):
    net = lenet_at(0.9)
    write_weights(net, tmp_path / "weights")
    out = tmp_path / "out"
    assert compact_main([str(NETWORKS / "lenet.ini"), "-w", str(tmp_path / "weights"),
                         "--output", str(out), "--sparse", "--no-onnx"]) == 0
    printed = capsys.readouterr().out
    assert "layers.fc1" in printed and "sparse " in printed and "lenet.sparse.pt" in printed
    data = json.loads((out / "lenet.sparse.json").read_text())
    assert set(data["latency"]) == {"dense", "masked", "sparse"}
    assert [layer["name"] for layer in data["layers"]] == [
        "layers.conv1", "layers.conv2", "layers.fc1", "layers.fc2"]
    assert all(math.isclose(layer["sparsity"], 0.9, abs_tol=0.01) for layer in data["layers"])
    assert data["latency"]["sparse"]["max_difference"] <= 1e-5
    assert all(layer["storage"] in ("bitmask", "CSR") for layer in data["layers"])  # any compute
    sizes = data["state_dict_bytes"]
    assert sizes["sparse"] <= 0.25 * sizes["dense"]
    loaded = torch.load(out / "lenet.sparse.pt", weights_only=False)
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        assert float((loaded(x) - net(x)).abs().max()) <= 1e-5 * float(net(x).abs().max())
