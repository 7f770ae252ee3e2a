"""Silent wrong results a red team found in attach / Pruner / criteria, each now refused or
said: masks loaded under another pattern, non-finite activations, weights computed by another
tool, meta weights, a failed attach half done, a NaN number of epochs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, prune as torch_prune

import n2prune
from n2prune.cells import Conv
from n2prune.prune import CRITERIA
from n2prune.prune.attach import pruned_layers

DATA_DRIVEN = [name for name in CRITERIA.names() if CRITERIA.get(name).needs]


def _static(layer, **args):
    return n2prune.attach(layer, prune_mode="Static", threshold=0.5, **args)


@pytest.mark.parametrize("saved, loaded", [("Unstructured", "2:4"), ("Unstructured", "2x2"),
                                           ("2x2", "4x1")])
def test_a_mask_saved_under_another_pattern_is_refused(saved, loaded):
    torch.manual_seed(0)
    source, target = nn.Linear(8, 8), nn.Linear(8, 8)
    _static(source, prune_filler="Magnitude", pattern=saved)
    _static(target, prune_filler="Magnitude", pattern=loaded)
    before = target.quantizer.mask.clone()
    with pytest.raises(ValueError, match=rf"PruneCell \({loaded}\): the mask in quantizer.mask "
                                         r"breaks the pattern in \d+ of \d+ groups"):
        target.load_state_dict(source.state_dict())
    assert torch.equal(target.quantizer.mask, before)


def test_a_mask_saved_under_the_same_pattern_loads():
    torch.manual_seed(0)
    source, target = nn.Linear(8, 8), nn.Linear(8, 8)
    _static(source, prune_filler="Magnitude", pattern="2:4")
    _static(target, prune_filler="Magnitude", pattern="2:4")
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.quantizer.mask, source.quantizer.mask)


@pytest.mark.parametrize("pattern, filler", [("Channel", "L1Norm"), ("2:4", "Magnitude"),
                                             ("2x2", "Magnitude")])
def test_a_cell_with_two_inputs_reloads_its_own_masks(pattern, filler):
    """Each input block is masked on its own: a channel pruned in one block only, or N:M
    groups cut at the block edge, are what the pattern makes, not a violation."""
    torch.manual_seed(0)
    conv = Conv(6, 4, kernel_dims=[3, 3], input_channels=[2, 4])
    conv.quantizer = n2prune.PruneCell(prune_mode="Static", threshold=0.5, prune_filler=filler,
                                       pattern=pattern)
    saved = {key: value.clone() for key, value in conv.state_dict().items()}
    conv.quantizer.mask.fill_(1.0)
    conv.load_state_dict(saved)
    assert torch.equal(conv.quantizer.mask, saved["quantizer.mask"])


def _channel(name):
    return "Channel" if CRITERIA.get(name).level == "channel" else "Unstructured"


@pytest.mark.parametrize("name", DATA_DRIVEN)
def test_every_criterion_refuses_non_finite_activations(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    cells = _static(model, prune_filler=name, pattern=_channel(name))
    x = torch.randn(16, 6)
    x[3, 2] = float("nan")
    pairs = [(x, torch.zeros(16, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"holds NaN or infinity while gathering statistics"):
        n2prune.Pruner(cells).calibrate(model, pairs, F.cross_entropy)


@pytest.mark.parametrize("make, fix", [
    (lambda: parametrizations.weight_norm(nn.Linear(4, 4)), "remove_parametrizations"),
    (lambda: parametrizations.spectral_norm(nn.Linear(4, 4)), "remove_parametrizations"),
    (lambda: torch_prune.l1_unstructured(nn.Linear(4, 4), "weight", 0.5),
     r"torch.nn.utils.prune.remove\(layer, 'weight'\)"),
])
def test_weights_computed_by_another_tool_are_refused_at_attach(make, fix):
    model = nn.Sequential(make(), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=fix):
        _static(model, prune_filler="Magnitude")
    assert not pruned_layers(model)


def test_legacy_weight_norm_is_refused():
    with pytest.warns(FutureWarning):
        layer = torch.nn.utils.weight_norm(nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"remove_weight_norm"):
        _static(nn.Sequential(layer), prune_filler="Magnitude")


def test_meta_weights_are_refused():
    with torch.device("meta"):
        layer = nn.Linear(4, 4)
    with pytest.raises(ValueError, match=r"meta device"):
        _static(layer, prune_filler="Magnitude")


def test_a_failing_attach_leaves_no_prunecell_behind():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))

    calls = []
    original = n2prune.prune.prunecell.PruneCell.attach

    def attach_then_fail(self, cell):
        calls.append(cell)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        original(self, cell)
    n2prune.prune.prunecell.PruneCell.attach = attach_then_fail
    try:
        with pytest.raises(RuntimeError, match="disk on fire"):
            _static(model, prune_filler="Magnitude")
    finally:
        n2prune.prune.prunecell.PruneCell.attach = original
    assert len(calls) == 2 and not pruned_layers(model)
    assert not model[0]._forward_pre_hooks and "quantizer" not in model[0]._modules
    _static(model, prune_filler="Magnitude")  # and it can be attached afterwards
    assert sorted(pruned_layers(model)) == ["0", "2"]


@pytest.mark.parametrize("epochs", [float("nan"), float("inf"), -1, 0])
def test_pruner_epochs_must_be_a_finite_positive_number(epochs):
    cells = _static(nn.Linear(4, 4), prune_filler="Magnitude")
    with pytest.raises(ValueError, match=rf"Pruner: epochs={epochs!r} must be a finite number"):
        n2prune.Pruner(cells, epoch_size=10, epochs=epochs)
