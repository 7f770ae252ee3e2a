"""A scope is a registry member carrying its behaviour: one registered from outside the
package (shared or not) is used from Python and INI with no other change."""

import torch
from torch import nn

import n2prune
from n2prune.network import load_network
from n2prune.prune import SCOPES
from n2prune.prune.ranking import Scope


def _first_weights(cells):
    """A toy unshared scope: each cell prunes its first ceil(t·N) weights in flat order."""
    for cell in cells:
        flat = cell.mask.view(-1)
        count = int(-(-float(cell.current_threshold) * flat.numel() // 1))
        flat.fill_(1.0)
        flat[:count] = 0.0


def test_a_registered_unshared_scope_ranks_each_cell_from_python_and_ini(tmp_path):
    with SCOPES.registered("FirstWeights", Scope("FirstWeights", _first_weights, shared=False)):
        layer = nn.Linear(4, 2)
        n2prune.attach(layer, prune_mode="Static", prune_filler="Magnitude", threshold=0.5,
                       scope="FirstWeights")
        assert layer.quantizer.mask.view(-1).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
        path = tmp_path / "net.ini"
        path.write_text("[sp]\nSizeX=4\nSizeY=1\nNbChannels=1\n[fc]\nInput=sp\nType=Fc\n"
                        "NbOutputs=2\nQWeight=Prune\nQWeight.PruningMode=Static\n"
                        "QWeight.PruningFiller=Magnitude\nQWeight.Threshold=0.25\n"
                        "QWeight.PruningScope=FirstWeights\n[fc.Target]\n")
        net = load_network(path)
        assert net.cells["fc"].quantizer.mask.view(-1).tolist() == [0, 0, 1, 1, 1, 1, 1, 1]


def test_a_registered_shared_scope_ranks_its_cells_together_at_every_step():
    calls = []

    def together(cells):
        calls.append(len(cells))
        n2prune.prune.prune_global(cells)
    with SCOPES.registered("Team", Scope("Team", together, shared=True)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2))
        n2prune.attach(model, prune_filler="Magnitude", threshold=0.5, scope="Team",
                       schedule="OneShot", end=8)
        assert calls == [3]  # once at attach, all three together
        pruner = n2prune.Pruner(model)
        assert pruner.sparsity() == 0.0
        for _ in range(3):
            pruner.on_step_end(4)
        assert set(calls) == {3} and len(calls) >= 3 and pruner.sparsity() == 0.5
