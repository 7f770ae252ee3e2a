"""Pruner.calibrate for one-shot pruning: eval mode unless asked, forward only unless a
criterion reads gradients, batches as tensors, pairs, mappings or with forward=, and the model
left exactly as it was found (modes, buffers, parameters, gradients, random state)."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import n2prune


class Keyworded(nn.Module):
    """A model taking keyword inputs, as Hugging Face models do."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.5)
        self.norm = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids, scale=1.0):
        return self.head(self.drop(self.norm(self.embed(input_ids) * scale)))


def _model():
    torch.manual_seed(0)
    model = Keyworded()
    with torch.no_grad():
        model.norm.running_mean.uniform_(-1, 1)
        model.norm.running_var.uniform_(0.5, 2)
    return model


def _batches(count=2):
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(16, 4, generator=gen) for _ in range(count)]


def _plain_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if ".quantizer." not in k}


def _head_inputs_eval(model, batches):
    """What the head sees in eval mode (dropout off, BatchNorm's running statistics)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model.drop(model.norm(model.embed(x))) for x in batches])


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_calibrate_leaves_model_modes_buffers_and_parameters_as_found(mode):
    model = _model()
    model.train(mode != "eval")
    if mode == "mixed":
        model.norm.eval()
    n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                   prune_filler="ActivationMagnitude")
    modes = {name: m.training for name, m in model.named_modules()}
    before, rng = _plain_state(model), torch.get_rng_state()
    pruner = n2prune.Pruner(model)
    assert pruner.calibrate(model, _batches()) == 2
    after = _plain_state(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert pruner.cells["head"].sparsity() == pytest.approx(0.5)


def test_statistics_are_gathered_in_eval_mode_by_default():
    model = _model().train()
    cells = n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                           prune_filler="ActivationMagnitude")
    batches = _batches()
    n2prune.Pruner(model).calibrate(model, batches)
    seen = _head_inputs_eval(_model(), batches)  # dropout off: no zeroed inputs
    assert torch.allclose(cells["head"].stats["input_sq_mean"], seen.square().mean(0),
                          rtol=1e-5)


def test_train_true_runs_dropout_but_restores_running_statistics_and_random_state():
    model = _model().eval()
    cells = n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                           prune_filler="ActivationMagnitude")
    before, rng = _plain_state(model), torch.get_rng_state()
    n2prune.Pruner(model).calibrate(model, _batches(), train=True)
    after = _plain_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm restored
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training
    eval_stat = _head_inputs_eval(_model(), _batches()).square().mean(0)
    assert not torch.allclose(cells["head"].stats["input_sq_mean"], eval_stat, rtol=1e-3)


def test_activation_criteria_calibrate_forward_only_without_a_loss():
    model = _model()
    n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                   prune_filler="Wanda")
    grad_modes = []
    model.head.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    n2prune.Pruner(model).calibrate(model, _batches(3))
    assert grad_modes == [False, False, False]
    assert all(p.grad is None for p in model.parameters())


def test_a_gradient_criterion_without_loss_names_it():
    model = _model()
    n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                   prune_filler="Snip")
    with pytest.raises(ValueError, match=r"criterion 'Snip' reads gradients: give loss_fn"):
        n2prune.Pruner(model).calibrate(model, _batches())


def test_gradient_criteria_keep_the_users_gradients():
    model = _model()
    n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                   prune_filler="Snip")
    model.head.weight.grad = torch.full_like(model.head.weight, 7.0)
    pairs = [(x, torch.zeros(len(x), dtype=torch.long)) for x in _batches()]
    n2prune.Pruner(model).calibrate(model, pairs, F.cross_entropy)
    assert bool((model.head.weight.grad == 7.0).all()) and model.embed.weight.grad is None


def test_batches_as_mappings_pairs_and_forward_callables_give_the_same_statistics():
    stats = []
    batches = _batches()
    forms = {
        "tensor": (batches, {}),
        "mapping": ([{"input_ids": x} for x in batches], {}),
        "pair": ([({"input_ids": x}, None) for x in batches], {}),
        "forward": ([[x] for x in batches], {"forward": lambda model, b: model(b[0])}),
    }
    for form, (data, extra) in forms.items():
        model = _model()
        cells = n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                               prune_filler="ActivationMagnitude")
        n2prune.Pruner(model).calibrate(model, data, **extra)
        stats.append(cells["head"].stats["input_sq_mean"])
    assert all(torch.equal(stats[0], other) for other in stats[1:])


def test_an_unknown_batch_form_is_a_clear_error():
    model = _model()
    n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                   prune_filler="ActivationMagnitude")
    with pytest.raises(TypeError, match=r"calibration batch: a tuple of 3 items; give a tensor"):
        n2prune.Pruner(model).calibrate(model, [(1, 2, 3)])


def test_more_batches_than_the_window_warns_and_reads_no_further():
    model = _model()
    n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                   prune_filler="ActivationMagnitude")
    read = []

    def batches():
        for x in _batches(5):
            read.append(1)
            yield x
    pruner = n2prune.Pruner(model, calibration_batches=2)
    with pytest.warns(UserWarning, match=r"used the first 2 batches .*calibration_batches=N"):
        assert pruner.calibrate(model, batches()) == 2
    assert len(read) == 3  # one more, to know there were more


def test_an_eval_forward_before_calibration_warns_once():
    model = _model().eval()
    n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                   prune_filler="Wanda")
    with pytest.warns(UserWarning, match=r"'Wanda' has no statistics yet.*calibrate"):
        model(_batches(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(_batches(1)[0])  # once only
        pruner = n2prune.Pruner(model)
        pruner.calibrate(model, _batches())  # no warning while calibrating
        model(_batches(1)[0])


def test_recompute_without_statistics_names_calibrate():
    model = _model()
    n2prune.attach(model, include="head", prune_mode="Static", threshold=0.5,
                   prune_filler="ActivationMagnitude")
    with pytest.raises(ValueError, match=r"head \(ActivationMagnitude\) lacks input_sq_mean; "
                                         r"run pruner.calibrate"):
        n2prune.Pruner(model).recompute()
