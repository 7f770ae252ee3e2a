"""SparseGPT from the PruneCell API: prune_filler="SparseGPT" waits for calibration, then
reconstructs every layer in forward order (weights rewritten, masks set), with its refusals."""

import pytest
import torch
from torch import nn

import n2prune


def _model_and_data(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(24, 48), nn.ReLU(), nn.Linear(48, 12))
    mixing = torch.randn(24, 24)
    data = [torch.randn(128, 24) @ mixing for _ in range(2)]  # correlated inputs
    return model, data


def _error(model, reference, data):
    with torch.no_grad():
        return sum(float((model(x) - reference(x)).square().mean()) for x in data)


@pytest.mark.parametrize("pattern", ["Unstructured", "2:4"])
def test_sparsegpt_reconstructs_with_less_error_than_magnitude(pattern):
    dense, data = _model_and_data()
    errors = {}
    for filler in ("Magnitude", "SparseGPT"):
        model, _ = _model_and_data()
        cells = n2prune.attach(model, prune_mode="Static", prune_filler=filler, threshold=0.5,
                               pattern=pattern)
        pruner = n2prune.Pruner(model)
        pruner.calibrate(model, data)
        assert pruner.sparsity() == pytest.approx(0.5)
        for name, cell in cells.items():
            assert torch.equal(cell.mask == 0, cell.cell.weight == 0) or filler == "Magnitude"
        errors[filler] = _error(model, dense, data)
    assert errors["SparseGPT"] < 0.8 * errors["Magnitude"]


def test_sparsegpt_masks_wait_for_calibration_and_keep_nm_exactly():
    model, data = _model_and_data(1)
    cells = n2prune.attach(model, prune_mode="Static", prune_filler="SparseGPT",
                           threshold=0.5, pattern="2:4", blocksize=16)
    assert all(float(cell.mask.min()) == 1.0 for cell in cells.values())  # waiting
    before = model[0].weight.detach().clone()
    n2prune.Pruner(model).calibrate(model, data)
    mask = cells["0"].mask.reshape(-1, 4)
    assert mask.sum(dim=1).tolist() == [2.0] * mask.shape[0]
    kept = cells["0"].mask.bool()
    assert not torch.equal(model[0].weight[kept], before[kept])  # survivors updated


@pytest.mark.parametrize("args, message", [
    ({"prune_mode": "Gradual"}, r"prune_mode='Static', not 'Gradual'"),
    ({"pattern": "4x1"}, r"patterns Unstructured, N:M, not '4x1'"),
    ({"scope": "Global"}, r"scope='Global' cannot rank it"),
    ({"prune_filler": "SparseGPT+Magnitude"}, r"rewrites the weights; it does not combine"),
])
def test_sparsegpt_refuses_what_it_cannot_do(args, message):
    kwargs = {"prune_mode": "Static", "prune_filler": "SparseGPT", "threshold": 0.5, **args}
    with pytest.raises(ValueError, match=message):
        n2prune.PruneCell(**kwargs)


def test_sparsegpt_with_an_owl_budget_prunes_each_block_to_its_share():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))
    n2prune.attach(model, prune_mode="Static", prune_filler="SparseGPT", threshold=0.5,
                   budget="OWL", owl_lambda=0.1)
    pruner = n2prune.Pruner(model)
    pruner.calibrate(model, [torch.randn(64, 16)])
    for name, cell in pruner.cells.items():
        assert cell.sparsity() == pytest.approx(pruner.budgets[name], abs=1 / cell.mask.numel())
