"""Every registered criterion through PruneCell: target reached, shape, determinism, bounded
statistics; the statistics collector; INI keys of the criteria."""

import math

import pytest
import torch

import n2prune

from n2prune.cells import Conv, Fc, Sequence
from n2prune.prune import CRITERIA, PruneCell
from n2prune.prune.calibration import StatisticsCollector, needs_of


def _model(seed: int = 0) -> Sequence:
    torch.manual_seed(seed)
    return Sequence([Conv(2, 6, kernel_dims=[3, 3], activation=torch.nn.ReLU()),
                     Fc(6 * 4 * 4, 5)])


def _batches(count: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 2, 6, 6, generator=gen), torch.randint(0, 5, (8,), generator=gen))
            for _ in range(count)]


def _loss(output, target):
    return torch.nn.functional.cross_entropy(output, target)


def _prune(name: str, threshold: float = 0.5, batches: int = 3, seed: int = 0):
    model = _model(seed)
    channel = CRITERIA.get(name).level == "channel"
    cells = {}
    for index, layer in enumerate(model):
        layer.quantizer = PruneCell(prune_mode="Static", threshold=threshold, prune_filler=name,
                                    pattern="Channel" if channel else "Unstructured", seed=seed)
        cells[str(index)] = layer.quantizer
    collector = StatisticsCollector(cells, batches=batches)
    if collector.cells:
        assert collector.calibrate(model, _batches(batches + 2), _loss) == batches
    collector.unbind()
    return model, cells


@pytest.mark.parametrize("name", CRITERIA.names())
def test_every_criterion_reaches_its_target_with_the_weight_shape(name):
    model, cells = _prune(name, threshold=0.5)
    for layer, cell in zip(model, cells.values()):
        mask = cell.get_pruned_masks()
        assert mask.shape == layer.weight.shape
        if CRITERIA.get(name).level == "channel":
            zero_rows = int((mask.reshape(mask.shape[0], -1).sum(1) == 0).sum())
            assert zero_rows == math.ceil(0.5 * mask.shape[0])
        else:
            assert int((mask == 0).sum()) == math.ceil(0.5 * mask.numel())


@pytest.mark.parametrize("name", CRITERIA.names())
def test_every_criterion_is_deterministic_for_a_seed(name):
    runs = [_prune(name, seed=3) for _ in range(2)]  # models kept alive: cells hold weakrefs
    masks = [[cell.get_pruned_masks() for cell in cells.values()] for _, cells in runs]
    assert all(torch.equal(a, b) for a, b in zip(*masks))


@pytest.mark.parametrize("name", [n for n in CRITERIA.names() if CRITERIA.get(n).needs])
def test_statistics_size_is_independent_of_the_number_of_batches(name):
    sizes = []
    for batches in (1, 6):
        model, cells = _prune(name, batches=batches)
        sizes.append({cell_name: {stat: tuple(t.shape) for stat, t in cell.stats.items()}
                      for cell_name, cell in cells.items()})
    assert sizes[0] == sizes[1]
    assert all(sizes[0].values())  # something was gathered for every cell


@pytest.mark.parametrize("name", [n for n in CRITERIA.names() if CRITERIA.get(n).needs])
def test_statistics_travel_in_state_dict(name):
    model, cells = _prune(name)
    fresh = _model()
    for layer in fresh:
        layer.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="None")
    fresh.load_state_dict(model.state_dict())
    for old, layer in zip(cells.values(), fresh):
        assert set(layer.quantizer.stats) == set(old.stats)
        for stat, value in old.stats.items():
            assert torch.equal(layer.quantizer.stats[stat], value)


def test_snip_masks_follow_weight_times_gradient_not_magnitude():
    fc = Fc(3, 2)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]]))
    fc.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="Snip")
    assert torch.equal(fc.quantizer.get_pruned_masks(), torch.ones(2, 3))  # no statistics yet
    fc.quantizer.set_stat("grad", torch.tensor([[0.1, 0.3, -0.1], [2.0, -0.15, 0.2]]))
    fc.quantizer.recompute()
    # |w g| = [[0.1, 0.6, 0.3], [1.0, 0.15, 0.2]]: the three smallest go
    assert fc.quantizer.get_pruned_masks().tolist() == [[0, 1, 1], [1, 0, 0]]


def test_collector_ignores_evaluation_passes_and_stops_after_the_window():
    model, cells = _prune("APoZ", batches=1)  # builds cells; re-gather by hand below
    collector = StatisticsCollector(cells, batches=2)
    conv = cells["0"]
    x = torch.randn(4, 2, 6, 6)
    model.eval()
    model(x)
    collector.restart()
    model(x)
    assert float(conv.stats["output_count"]) == 0.0  # eval passes do not count
    model.train()
    for _ in range(3):
        model(x)
        collector.end_batch()
    assert float(conv.stats["output_count"]) == 8.0  # 2 batches of 4, the third ignored
    collector.unbind()


def test_needs_of_lists_the_statistics_of_the_cell_criterion():
    fc = Fc(3, 2)
    fc.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="MagAct")
    assert needs_of(fc.quantizer) == {"input_mean"}
    fc.quantizer = None
    fc.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="Magnitude")
    assert needs_of(fc.quantizer) == set()


def test_criterion_parameters_are_prunecell_arguments_with_ranges():
    with pytest.raises(ValueError, match=r"calibration_batches=0 is out of range"):
        PruneCell(prune_filler="Snip", calibration_batches=0)
    with pytest.raises(ValueError, match="entropy_bins is a parameter of criterion 'Entropy'"):
        PruneCell(prune_filler="Snip", entropy_bins=8)
    cell = PruneCell(prune_filler="Percentile", percentile_low=10, percentile_high=90)
    assert cell.params["criterion"] == {"percentile_low": 10.0, "percentile_high": 90.0}


def test_global_data_driven_cells_wait_for_statistics_then_rank_together():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    cells = n2prune.attach(model, prune_mode="Static", threshold=0.75, prune_filler="Snip",
                           scope="Global", calibration_batches=2)
    assert all(cell.sparsity() == 0.0 for cell in cells.values())  # no statistics yet
    collector = StatisticsCollector(cells)
    assert collector.batches == 2
    data = [(torch.randn(4, 6), torch.randint(0, 3, (4,))) for _ in range(3)]
    collector.calibrate(model, data, _loss)
    pruned = sum(int((cell.mask == 0).sum()) for cell in cells.values())
    assert pruned == math.ceil(0.75 * (6 * 8 + 8 * 3))  # one ranking over both layers
    assert {round(cell.sparsity(), 3) for cell in cells.values()} != {0.75}
    assert all(p.grad is None for p in model.parameters())  # gradients left as they were
