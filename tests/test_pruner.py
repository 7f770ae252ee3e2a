"""Pruner: schedule stepping, global ranking, callbacks, statistics; a torchvision-style model
written in plain torch.nn trained through it; the global ranking against a sorting reference."""

import math

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

import n2prune
from n2prune.prune.scope import global_keep


class Block(nn.Module):
    """ResNet basic block (optionally grouped), BatchNorm, projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class TinyResNet(nn.Module):
    """Stem, two residual stages (the second grouped), a depthwise-separable block, head."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = Block(8, 8)
        self.layer2 = Block(8, 16, stride=2, groups=4)
        self.separable = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16),
                                       nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 1))
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.separable(self.layer2(self.layer1(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def toy_data(seed: int = 0, n: int = 64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long() + 2 * (x[:, 1].mean((1, 2)) > 0).long()
    return x, y


def train(model, pruner, epochs, batch=16, seed=0, lr=0.05):
    x, y = toy_data(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    pruner.on_train_begin()
    for epoch in range(epochs):
        pruner.on_epoch_begin(epoch)
        for step in range(0, len(x), batch):
            pruner.on_step_begin(step // batch)
            loss = F.cross_entropy(model(x[step:step + batch]), y[step:step + batch])
            optimizer.zero_grad()
            loss.backward()
            pruner.on_before_optimizer_step()
            optimizer.step()
            pruner.on_step_end(batch)
        pruner.on_epoch_end()
    pruner.on_train_end()
    return optimizer


def test_torchvision_style_model_reaches_its_global_target_through_the_pruner():
    torch.manual_seed(0)
    model = TinyResNet()
    params = list(model.parameters())
    cells = n2prune.attach(model, prune_mode="Gradual", prune_filler="Magnitude",
                           scope="Global", schedule="Cubic", threshold=0.8, start=0.0)
    assert len(cells) == 9  # stem, 2 + 3 (shortcut) block convs, depthwise, pointwise, fc
    pruner = n2prune.Pruner(cells, epoch_size=64, epochs=4, period=16)
    assert pruner.sparsity() == 0.0
    grown = {}
    step_end = pruner.on_step_end

    def check_growth(batch_size):  # masks only grow: no pruned weight comes back
        fired = step_end(batch_size)
        for name, cell in cells.items():
            assert torch.all(cell.mask <= grown.get(name, 1.0))
            grown[name] = cell.mask.clone()
        return fired
    pruner.on_step_end = check_growth
    train(model, pruner, epochs=4)
    assert list(model.parameters()) == params  # the optimiser's parameters are the model's
    stats = pruner.statistics()
    total = stats["total"]
    assert total["pruned"] == math.ceil(np.float32(0.8) * np.float32(total["weights"]))
    sparsities = {round(stats[name]["sparsity"], 3) for name in cells}
    assert len(sparsities) > 3  # one global threshold, different layer sparsities
    for cell in cells.values():  # re-rank from scratch: momentum moved pruned weights
        cell.regrow = True
    pruner.recompute()
    assert pruner.statistics()["total"] == total
    kept = min(float(c.cell.weight.detach().abs()[c.mask == 1].min()) for c in cells.values())
    pruned = max(float(c.cell.weight.detach().abs()[c.mask == 0].max())
                 for c in cells.values() if (c.mask == 0).any())
    assert pruned <= kept  # one threshold across cells
    model.zero_grad()
    model(toy_data()[0]).sum().backward()
    for cell in cells.values():
        assert torch.all(cell.cell.weight.grad[cell.mask == 0] == 0)


def test_gradual_linear_through_the_pruner_is_the_same_as_updating_each_cell():
    def net():
        torch.manual_seed(3)
        return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    args = dict(prune_mode="Gradual", prune_filler="IterNonStruct", start=0.1, gamma=0.15,
                threshold=0.7, stepsize=32)
    a, b = net(), net()
    cells_a, cells_b = n2prune.attach(a, **args), n2prune.attach(b, **args)
    pruner = n2prune.Pruner(b)
    fired = []
    for _ in range(9):
        for cell in cells_a.values():
            cell.update(16)
        fired.append(pruner.on_step_end(16))
    assert fired == [False, True] * 4 + [False]
    for name in cells_a:
        assert torch.equal(cells_a[name].mask, cells_b[name].mask)
        assert cells_a[name].get_current_threshold() == cells_b[name].get_current_threshold()
    assert cells_b["0"].get_current_threshold() == pytest.approx(0.7)


def test_callbacks_see_every_hook_in_order_with_the_pruner():
    seen = []

    class Recorder:
        def bind(self, pruner):
            seen.append(("bind", sorted(pruner.layers)))

        def __getattr__(self, hook):
            if not hook.startswith("on_"):
                raise AttributeError(hook)
            return lambda pruner, *args: seen.append((hook,) + args)

        def unbind(self):
            seen.append(("unbind",))

    model = nn.Sequential(nn.Linear(4, 4))
    n2prune.attach(model)
    pruner = n2prune.Pruner(model, callbacks=[Recorder()])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    pruner.on_train_begin()
    pruner.on_epoch_begin(0)
    pruner.on_step_begin(0)
    F.cross_entropy(model(x), y).backward()
    pruner.on_before_optimizer_step()
    optimizer.step()
    pruner.on_step_end(8)
    pruner.on_epoch_end()
    pruner.on_train_end()
    assert seen == [("bind", ["0"]), ("on_train_begin",), ("on_epoch_begin", 0),
                    ("on_step_begin", 0), ("on_before_optimizer_step",), ("on_step_end", 8),
                    ("on_epoch_end",), ("on_train_end",), ("unbind",)]


def test_statistics_and_summary_count_every_cell():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4, 3))
    n2prune.attach(model, prune_mode="Static", threshold=0.5, prune_filler="Magnitude")
    pruner = n2prune.Pruner(model)
    stats = pruner.statistics()
    assert (stats["0"]["weights"], stats["0"]["pruned"]) == (72, 36)
    assert (stats["2"]["weights"], stats["2"]["pruned"]) == (12, 6)
    assert stats["total"] == {"weights": 84, "pruned": 42, "sparsity": 0.5}
    lines = pruner.summary()
    assert len(lines) == 3
    assert lines[0].startswith("0 ") and "Conv2d" in lines[0] and "4x2x3x3" in lines[0]
    assert "sparsity 0.5000 (36/72)" in lines[0]
    assert lines[-1].startswith("total") and "2 cells" in lines[-1] and "(42/84)" in lines[-1]
    assert "sparsity=0.5000" in repr(pruner)


def test_pruner_finds_cells_in_models_dicts_and_lists_and_rejects_the_rest():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="holds no PruneCell; use n2prune.attach"):
        n2prune.Pruner(model)
    cells = n2prune.attach(model)
    assert list(n2prune.Pruner(model).cells) == ["0", "1"]
    assert n2prune.Pruner(cells).cells == cells
    assert list(n2prune.Pruner(list(cells.values())).cells) == ["0", "1"]
    with pytest.raises(TypeError, match="'x' is a Linear, not a PruneCell"):
        n2prune.Pruner({"x": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match="epochs needs epoch_size"):
        n2prune.Pruner(model, epochs=3)
    with pytest.raises(ValueError, match="horizon=-1"):
        n2prune.Pruner(model, horizon=-1)


def test_pruner_sets_the_cells_schedule_horizon():
    model = nn.Sequential(nn.Linear(2, 2))
    cells = n2prune.attach(model, prune_mode="Gradual", prune_filler="Magnitude",
                           schedule="Cubic")
    n2prune.Pruner(model, epoch_size=100, epochs=2.5, period=10)
    assert (cells["0"].horizon, cells["0"].epoch_size, cells["0"].default_period) == \
        (250, 100, 10)


def test_static_global_masks_rank_all_cells_together_with_a_floor():
    def model():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(10, 10, bias=False), nn.Linear(10, 10, bias=False))
        with torch.no_grad():
            net[0].weight.uniform_(-0.5, 0.5)
            net[1].weight.uniform_(1, 2)  # every weight of the second layer is larger
        return net
    cells = n2prune.attach(model(), prune_mode="Static", threshold=0.5,
                           prune_filler="Magnitude", scope="Global")
    assert (cells["0"].sparsity(), cells["1"].sparsity()) == (1.0, 0.0)
    net = model()
    floored = n2prune.attach(net, prune_mode="Static", threshold=0.5,
                             prune_filler="Magnitude", scope="Global", min_keep=0.2)
    assert (floored["0"].sparsity(), floored["1"].sparsity()) == (0.8, 0.2)
    w1, mask1 = floored["1"].cell.weight.detach(), floored["1"].mask
    assert float(w1[mask1 == 0].max()) < float(w1[mask1 == 1].min())
    w0, mask0 = floored["0"].cell.weight.detach().abs(), floored["0"].mask
    assert float(w0[mask0 == 0].max()) < float(w0[mask0 == 1].min())  # its 20 largest kept


def _reference_keep(scores, target, floors):
    """Sorting reference: protect each tensor's highest ceil(floor*size), then prune the
    lowest unprotected ones, ties by (tensor, flat index)."""
    flat = [s.reshape(-1).tolist() for s in scores]
    keep = [[True] * len(f) for f in flat]
    free = []
    for i, (f, floor) in enumerate(zip(flat, floors)):
        protect = math.ceil(floor * len(f) - 1e-9)
        order = sorted(range(len(f)), key=lambda j: (f[j], j))
        free += [(f[j], i, j) for j in order[:len(f) - protect]]
    total = sum(len(f) for f in flat)
    count = min(math.ceil(np.float32(target) * np.float32(total)), len(free))
    for _, i, j in sorted(free)[:count]:
        keep[i][j] = False
    return [torch.tensor(k).reshape(s.shape) for k, s in zip(keep, scores)]


@pytest.mark.parametrize("seed", range(6))
def test_global_keep_equals_a_sorting_reference_with_ties_and_floors(seed):
    g = torch.Generator().manual_seed(seed)
    scores = [torch.randint(0, 6, (int(n),), generator=g).float().reshape(-1, 1)
              for n in torch.randint(1, 30, (4,), generator=g)]
    target = 0.5 + 0.5 * float(torch.rand(1, generator=g))
    floors = [0.0, 0.5, 0.0, 0.25] if seed % 2 else [0.0] * 4
    got = global_keep(scores, target, floors)
    expected = _reference_keep(scores, target, floors)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)


def test_n2prune_train_steps_a_global_cubic_schedule_through_its_pruner(tmp_path):
    from n2prune.train.trainer import Trainer, TrainOptions
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "networks" / "digits.ini").read_text()
    text = text.replace("QWeight.PruningFiller=IterNonStruct",
                        "QWeight.PruningFiller=Magnitude\nQWeight.PruningScope=Global\n"
                        "QWeight.PruningSchedule=Cubic")
    text = text.replace("QWeight.StartThreshold=0.3", "QWeight.StartThreshold=0")
    ini = tmp_path / "global.ini"
    ini.write_text(text)
    options = TrainOptions(learn_epoch=4, seed=7, threads=1, quiet=True,
                           output=str(tmp_path / "run"))
    trainer = Trainer(str(ini), options)
    assert sorted(trainer.pruner.cells) == ["conv1", "conv2", "fc1", "fc2"]
    assert len(trainer.pruner.global_cells) == 4
    assert trainer.pruner.sparsity() == 0.0
    epoch_size = trainer.provider.epoch_size
    assert all(c.horizon == 4 * epoch_size for c in trainer.pruner.cells.values())
    trainer.run()
    total = trainer.pruner.statistics()["total"]
    assert total["pruned"] == math.ceil(np.float32(0.75) * np.float32(total["weights"]))
    layer_sparsities = [trainer.pruner.statistics()[n]["sparsity"] for n in trainer.pruner.cells]
    assert len(set(layer_sparsities)) == 4
