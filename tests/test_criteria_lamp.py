"""LAMP (layer-adaptive magnitude): hand-computed scores, the mask, global ranking."""

import torch
from torch import nn

import n2prune
from n2prune.prune.criteria import CRITERIA


def test_scores_by_hand():
    # squares 1, 4, 9, 1; ascending (ties: lower index first) idx 0, 3, 1, 2; tails 15, 14, 13, 9
    scores = CRITERIA.get("LAMP")(torch.tensor([[1., 2.], [3., -1.]]), {})
    expected = torch.tensor([[1 / 15, 4 / 13], [1., 1 / 14]], dtype=torch.float64)
    assert torch.allclose(scores, expected, rtol=0, atol=1e-12)


def test_pruned_weights_leave_the_sums():
    mask = torch.tensor([[1., 1.], [1., 0.]])
    scores = CRITERIA.get("LAMP")(torch.tensor([[1., 2.], [3., -1.]]), {"mask": mask})
    expected = torch.tensor([[1 / 14, 4 / 13], [1., 0.]], dtype=torch.float64)
    assert torch.allclose(scores, expected, rtol=0, atol=1e-12)


def test_global_lamp_keeps_the_largest_weight_of_every_layer():
    torch.manual_seed(0)
    small, large = nn.Linear(4, 2), nn.Linear(64, 64)
    with torch.no_grad():
        small.weight.mul_(0.01)  # global magnitude would empty it
    model = nn.Sequential(small, nn.ReLU(), nn.Linear(2, 64), nn.ReLU(), large)
    magnitude = n2prune.attach(model, prune_mode="Static", threshold=0.99,
                               prune_filler="Magnitude", scope="Global")
    assert int(magnitude["0"].mask.sum()) == 0
    n2prune.detach(model, bake=False)
    cells = n2prune.attach(model, prune_mode="Static", threshold=0.99, prune_filler="LAMP",
                           scope="Global")
    total = sum(c.mask.numel() for c in cells.values())
    assert sum(int((c.mask == 0).sum()) for c in cells.values()) == \
        int(torch.ceil(torch.tensor(0.99, dtype=torch.float32) * total))
    for cell in cells.values():
        largest = cell.cell.weight.detach().abs().argmax()
        assert cell.mask.reshape(-1)[largest] == 1
