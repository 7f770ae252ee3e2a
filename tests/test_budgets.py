"""Layer budgets (PruningBudget): OWL's per-layer sparsities average to the target exactly,
weighted by weight counts, stay within [t − λ, t + λ], and fall with the outlier ratio."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import n2prune
from n2prune.prune.budgets import BUDGETS, block_of, outlier_ratio, owl_sparsities


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 10_000)), min_size=1, max_size=12),
       st.floats(0.05, 0.95), st.floats(0.0, 0.3))
def test_owl_sparsities_average_to_the_target_within_lambda(layers, target, spread):
    ratios, sizes = [r for r, _ in layers], [n for _, n in layers]
    chosen = owl_sparsities(ratios, sizes, target, spread)
    mean = sum(s * n for s, n in zip(chosen, sizes)) / sum(sizes)
    assert mean == pytest.approx(target, abs=1e-9)
    assert all(target - spread - 1e-12 <= s <= target + spread + 1e-12 for s in chosen)
    order = sorted(range(len(ratios)), key=lambda i: ratios[i])
    assert all(chosen[a] >= chosen[b] - 1e-12 for a, b in zip(order, order[1:]))


def test_outlier_ratio_and_blocks():
    assert outlier_ratio(torch.tensor([1.0, 1.0, 1.0, 100.0]), 3.0) == 0.25
    assert block_of("encoder.layer.3.attention.self.query") == "encoder.layer.3"
    assert block_of("head") == "head"


class Blocks(nn.Module):
    """Two 'transformer layers' of two Linears each; the second block's inputs carry
    outlier features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.ModuleList(nn.Sequential(nn.Linear(16, 32), nn.ReLU(),
                                                 nn.Linear(32, 16)) for _ in range(2))

    def forward(self, x):
        x = self.layer[0](x)
        boost = torch.ones(16)
        boost[:2] = 40.0
        return self.layer[1](x * boost)


def test_owl_budget_gives_the_outlier_block_less_sparsity_and_keeps_the_average():
    model = Blocks()
    cells = n2prune.attach(model, prune_mode="Static", prune_filler="Wanda", threshold=0.6,
                           budget="OWL", owl_lambda=0.1, owl_m=3.0, group="Layer")
    pruner = n2prune.Pruner(model)
    pruner.calibrate(model, [torch.randn(64, 16) for _ in range(2)])
    chosen = pruner.budgets
    assert chosen["layer.0.0"] == chosen["layer.0.2"] != chosen["layer.1.0"] == chosen["layer.1.2"]
    assert chosen["layer.1.0"] < 0.6 < chosen["layer.0.0"]
    sizes = {name: cell.mask.numel() for name, cell in cells.items()}
    mean = sum(chosen[n] * sizes[n] for n in chosen) / sum(sizes.values())
    assert mean == pytest.approx(0.6, abs=1e-9)
    for name, cell in cells.items():
        assert cell.get_current_threshold() == pytest.approx(chosen[name], abs=1e-6)
        assert cell.budget_target == 0.6
    assert pruner.sparsity() == pytest.approx(0.6, abs=0.003)  # ceil per cell


def test_owl_with_a_weight_criterion_gathers_the_statistic_it_needs():
    model = Blocks()
    n2prune.attach(model, prune_mode="Static", prune_filler="Magnitude", threshold=0.5,
                   budget="OWL")
    pruner = n2prune.Pruner(model)
    assert pruner.collector is not None
    pruner.calibrate(model, [torch.randn(32, 16)])
    assert len(set(pruner.budgets.values())) == 2


def test_budgets_refuse_global_scope():
    with pytest.raises(ValueError, match=r"budget='OWL' sets each cell's own target"):
        n2prune.PruneCell(prune_mode="Static", prune_filler="Magnitude", threshold=0.5,
                          budget="OWL", scope="Global")


def test_uniform_is_the_default_and_budgets_are_a_registry():
    assert n2prune.PruneCell().budget == "Uniform"
    assert {"Uniform", "OWL"} <= set(BUDGETS.names())


def test_sensitivity_budget_keeps_the_thresholds_its_analysis_set():
    """A Pruner cannot run the analysis (no metric): it keeps each cell's threshold, the one
    n2prune-train's analysis gives it, while a Wanda cell beside it is calibrated."""
    model = Blocks()
    n2prune.attach(model, prune_mode="Static", prune_filler="Magnitude", threshold=0.6,
                   budget="Sensitivity", include=["layer.0.0", "layer.0.2"])
    n2prune.attach(model, prune_mode="Static", prune_filler="Wanda", threshold=0.5,
                   include=["layer.1.0"], group="Layer")
    model.layer[0][0].quantizer.threshold = 0.8   # as the analysis would set it
    pruner = n2prune.Pruner(model)
    pruner.calibrate(model, [torch.randn(32, 16)])
    assert pruner.budgets == {"layer.0.0": 0.8, "layer.0.2": 0.6}
    assert BUDGETS.get("Sensitivity").analysed and not BUDGETS.get("OWL").analysed


@pytest.mark.parametrize("kwargs, message", [
    (dict(threshold=1.0), "a fraction strictly between 0 and 1"),
    (dict(threshold=0.5, prune_filler="Taylor"), "criterion 'Taylor' ranks with statistics"),
])
def test_sensitivity_budget_refuses_what_its_analysis_cannot_do(kwargs, message):
    args = dict(prune_mode="Static", prune_filler="Magnitude", budget="Sensitivity")
    with pytest.raises(ValueError, match=message):
        n2prune.PruneCell(**{**args, **kwargs})
