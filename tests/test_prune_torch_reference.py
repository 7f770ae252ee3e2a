"""n2prune's global Magnitude along a Gradual schedule prunes exactly what
torch.nn.utils.prune.global_unstructured (L1Unstructured) prunes when both rank the same
weights: masks only grow, one threshold over every layer, the lowest magnitudes go first."""

import torch
from torch import nn
from torch.nn.utils import prune

import n2prune


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 6, 1, groups=2), nn.Flatten(),
                         nn.Linear(24, 20), nn.Linear(20, 5))


def test_global_magnitude_is_torch_global_unstructured_on_the_current_weights():
    ours, theirs = _model(3), _model(3)
    layers = [m for m in theirs if not isinstance(m, nn.Flatten)]
    for layer in layers:
        prune.identity(layer, "weight")
    cells = n2prune.attach(ours, prune_mode="Gradual", prune_filler="Magnitude",
                           scope="Global", schedule="Cubic", start=0, threshold=0.9,
                           frequency=10)
    pruner = n2prune.Pruner(cells, horizon=200)
    total = sum(layer.weight.numel() for layer in layers)
    noise = torch.Generator().manual_seed(5)
    pruned, changes = 0, 0
    for _ in range(20):
        with torch.no_grad():  # a training step: the same move on both sides
            for mine, other in zip((m for m in ours if not isinstance(m, nn.Flatten)), layers):
                step = 0.3 * torch.randn(mine.weight.shape, generator=noise)
                mine.weight += step
                other.weight_orig += step
        changes += pruner.on_step_end(10)
        wanted = round(pruner.sparsity() * total)
        if wanted > pruned:
            current = {(m, "weight"): m.weight_orig.detach() * m.weight_mask for m in layers}
            prune.global_unstructured([(m, "weight") for m in layers], prune.L1Unstructured,
                                      importance_scores=current, amount=wanted - pruned)
            pruned = wanted
        for cell, layer in zip(cells.values(), layers):
            assert torch.equal(cell.mask.bool(), layer.weight_mask.bool())
    sparsities = [1 - float(layer.weight_mask.mean()) for layer in layers]
    assert changes >= 10 and pruned == round(0.9 * total)
    assert len({round(s, 3) for s in sparsities}) > 1  # one threshold, unequal layers
