"""PruneCell: arguments, attach semantics, gradient masking, Gradual schedule, files, state."""

import copy
import io

import numpy as np
import pytest
import torch

from n2prune.cells import Conv, Fc
from n2prune.prune.prunecell import PruneCell


def fc_with(weights, **kwargs) -> Fc:
    w = torch.tensor(weights, dtype=torch.float32)
    fc = Fc(w.shape[1], w.shape[0], no_bias=True)
    with torch.no_grad():
        fc.weight.copy_(w)
    fc.quantizer = PruneCell(**kwargs)
    return fc


def test_defaults_are_n2d2s():
    q = PruneCell()
    assert (q.prune_mode, q.prune_filler) == ("Identity", "Random")
    assert (q.threshold, q.delta, q.start, q.stepsize, q.gamma) == (0.2, 0.001, 0.1, 0, 0.05)


@pytest.mark.parametrize("kwargs,error,words", [
    ({"treshold": 0.3}, TypeError, ["treshold", "did you mean 'threshold'"]),
    ({"prune_mode": "static"}, ValueError, ["prune_mode='static'", "Static"]),
    ({"prune_mode": 1}, TypeError, ["prune_mode", "string"]),
    ({"prune_filler": "IterNonStrut"}, ValueError, ["IterNonStrut", "IterNonStruct"]),
    ({"threshold": 1.5}, ValueError, ["threshold=1.5", "[0, 1]"]),
    ({"threshold": -0.1}, ValueError, ["threshold=-0.1", "[0, 1]"]),
    ({"threshold": float("nan")}, ValueError, ["threshold"]),
    ({"threshold": "0.3"}, TypeError, ["threshold", "number", "'0.3'"]),
    ({"threshold": True}, TypeError, ["threshold"]),
    ({"start": 2.0}, ValueError, ["start=2.0", "[0, 1]"]),
    ({"delta": 0.0}, ValueError, ["delta=0.0", "(0, inf)"]),
    ({"delta": -1e-3}, ValueError, ["delta"]),
    ({"gamma": -0.05}, ValueError, ["gamma=-0.05", "[0, inf)"]),
    ({"stepsize": -1}, ValueError, ["stepsize=-1"]),
    ({"stepsize": 10.0}, TypeError, ["stepsize", "integer"]),
])
def test_bad_arguments_name_the_argument_value_and_what_is_allowed(kwargs, error, words):
    with pytest.raises(error) as info:
        PruneCell(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_quant_mode_and_range_are_accepted_and_ignored():
    q = PruneCell(quant_mode="Symmetric", range=15)
    assert q.quant_mode == "Symmetric"


def test_static_iter_nonstruct_mask_at_attach_time_and_forward_uses_it():
    fc = fc_with([[0.5, -0.0004, 0.0011, -0.002, 0.0025], [0, 0.9, -0.3, 0.0015, 0.0009]],
                 prune_mode="Static", threshold=0.3, prune_filler="IterNonStruct")
    expected = torch.tensor([[1, 0, 1, 1, 1], [0, 1, 1, 1, 0]], dtype=torch.float32)
    assert torch.equal(fc.quantizer.get_pruned_masks(), expected)
    assert fc.quantizer.get_current_threshold() == pytest.approx(0.3)
    x = torch.randn(3, 5)
    assert torch.allclose(fc(x), x @ (fc.weight * expected).t())
    assert torch.equal(fc.quantizer.get_quantized_weights(), fc.weight.detach() * expected)


def test_pruned_weights_get_zero_gradient_and_the_parameter_is_unchanged():
    torch.manual_seed(0)
    conv = Conv(2, 4, kernel_dims=[3, 3])
    weight = conv.weight
    conv.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="IterNonStruct")
    assert conv.weight is weight
    conv(torch.randn(2, 2, 5, 5)).square().sum().backward()
    mask = conv.quantizer.get_pruned_masks()
    assert torch.all(conv.weight.grad[mask == 0] == 0)
    assert torch.all(conv.weight.grad[mask == 1] != 0)
    assert conv.bias.grad is not None and torch.all(conv.bias.grad != 0)  # biases never pruned


def test_identity_prunes_only_exact_zeros_with_iter_nonstruct_and_nothing_with_random():
    fc = fc_with([[0.0, 0.3, 0.0, 0.1]], prune_filler="IterNonStruct")
    assert fc.quantizer.get_pruned_masks().tolist() == [[0, 1, 0, 1]]
    fc = fc_with([[0.0, 0.3, 0.0, 0.1]], prune_filler="Random")
    assert fc.quantizer.get_pruned_masks().tolist() == [[1, 1, 1, 1]]


def test_filler_none_keeps_all_ones_in_every_mode():
    for mode in ("Identity", "Static", "Gradual"):
        fc = fc_with([[0.0, 0.3, 0.0, 0.1]], prune_mode=mode, prune_filler="None",
                     threshold=0.9)
        assert torch.all(fc.quantizer.get_pruned_masks() == 1)


def test_detach_restores_the_dense_forward():
    fc = fc_with([[1.0, 0.001]], prune_mode="Static", threshold=0.5,
                 prune_filler="IterNonStruct")
    x = torch.ones(1, 2)
    assert fc(x).item() == pytest.approx(1.0)
    fc.quantizer = None
    assert fc(x).item() == pytest.approx(1.001)


def test_one_prunecell_cannot_serve_two_cells():
    q = PruneCell()
    a, b = Fc(3, 2), Fc(3, 2)
    a.quantizer = q
    with pytest.raises(ValueError, match="already attached"):
        b.quantizer = q


def test_only_weight_cells_take_a_quantizer():
    with pytest.raises(TypeError, match="weight"):
        PruneCell().attach(torch.nn.ReLU())
    with pytest.raises(TypeError, match="PruneCell or None"):
        Fc(2, 2).quantizer = "Prune"


def test_static_and_identity_ignore_update():
    fc = fc_with([[0.1, 0.2, 0.3, 0.4]], prune_mode="Static", threshold=0.5,
                 prune_filler="IterNonStruct")
    before = fc.quantizer.get_pruned_masks()
    assert fc.quantizer.update(4) is False
    assert torch.equal(fc.quantizer.get_pruned_masks(), before)


def _thresholds(q: PruneCell, calls) -> list:
    seen = []
    for batch in calls:
        q.update(batch)
        seen.append(q.get_current_threshold())
    return seen


def test_gradual_counts_stimuli_keeps_remainder_and_fires_once_per_call():
    fc = fc_with([list(np.linspace(0.01, 1.0, 100))], prune_mode="Gradual", threshold=0.3,
                 start=0.1, gamma=0.05, stepsize=10, prune_filler="IterNonStruct")
    f = lambda v: float(np.float32(v))  # noqa: E731
    # increment = first batch (4) reused: counter 4, 8, 12->2 fire, 6, 10->0 fire, 4, 8, 12->2...
    got = _thresholds(fc.quantizer, [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4])
    s1 = f(np.float32(0.1) + np.float32(0.05))
    s2 = f(np.float32(s1) + np.float32(0.05))
    s3 = f(np.float32(s2) + np.float32(0.05))
    s4 = min(f(np.float32(s3) + np.float32(0.05)), f(0.3))
    assert got == [f(0.1), f(0.1), s1, s1, s2, s2, s2, s3, s3, s4, s4, s4]
    assert fc.quantizer.get_current_threshold() == f(0.3)  # capped at the target
    assert int((fc.quantizer.get_pruned_masks() == 0).sum()) == 30


def test_gradual_uses_the_first_batch_size_as_increment():
    fc = fc_with([[0.1, 0.2, 0.3, 0.4]], prune_mode="Gradual", stepsize=100,
                 prune_filler="IterNonStruct", threshold=0.5, start=0.0, gamma=0.25)
    fc.quantizer.update(50)
    fc.quantizer.update(1)  # counts 50 again, as N2D2 reuses the first B
    assert fc.quantizer.get_current_threshold() == 0.25


def test_gradual_period_zero_fires_every_call_and_default_period_applies():
    fc = fc_with([[0.1, 0.2, 0.3, 0.4]], prune_mode="Gradual", prune_filler="Random",
                 threshold=0.5, start=0.0, gamma=0.25, seed=1)
    assert _thresholds(fc.quantizer, [1, 1, 1]) == [0.25, 0.5, 0.5]
    fc = fc_with([[0.1, 0.2, 0.3, 0.4]], prune_mode="Gradual", prune_filler="Random",
                 threshold=0.5, start=0.0, gamma=0.25, seed=1)
    fc.quantizer.default_period = 3
    assert _thresholds(fc.quantizer, [1, 1, 1, 1, 1, 1]) == [0, 0, 0.25, 0.25, 0.25, 0.5]


def test_gradual_random_is_cumulative():
    torch.manual_seed(0)
    fc = Fc(50, 20)
    fc.quantizer = PruneCell(prune_mode="Gradual", prune_filler="Random", threshold=0.6,
                             start=0.1, gamma=0.1, stepsize=1, seed=5)
    previous = fc.quantizer.get_pruned_masks()
    for _ in range(6):
        fc.quantizer.update(1)
        mask = fc.quantizer.get_pruned_masks()
        assert torch.all(mask[previous == 0] == 0)
        previous = mask
    assert int((previous == 0).sum()) == 600


def test_update_rejects_bad_batch_sizes():
    fc = fc_with([[0.1, 0.2]], prune_mode="Gradual")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            fc.quantizer.update(bad)


def test_masks_file_format_and_round_trip(tmp_path):
    fc = fc_with([[0.5, -0.0004, 0.0011], [0.0, 0.9, 0.0025]], prune_mode="Static",
                 threshold=0.3, prune_filler="IterNonStruct")
    path = tmp_path / "fc_masks.syntxt"
    fc.quantizer.export_masks(path)
    assert path.read_text() == "1 0 1 \n0 1 1 \n"
    other = fc_with([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], prune_mode="Gradual", start=0.0)
    other.quantizer.import_masks(path)
    assert torch.equal(other.quantizer.get_pruned_masks(), fc.quantizer.get_pruned_masks())
    assert other.quantizer.get_current_threshold() == float(np.float32(2) / np.float32(6))


def test_conv_masks_file_order_is_weight_o_flatten(tmp_path):
    conv = Conv(2, 3, kernel_dims=[2, 1], no_bias=True)
    conv.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="Random")
    path = tmp_path / "conv_masks.syntxt"
    conv.quantizer.export_masks(path)
    mask = conv.quantizer.get_pruned_masks()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    for o, line in enumerate(lines):
        assert line == "".join(f"{int(v)} " for v in mask[o].flatten())


def test_import_masks_errors_are_clear(tmp_path):
    fc = fc_with([[0.1, 0.2], [0.3, 0.4]])
    short = tmp_path / "short.syntxt"
    short.write_text("1 0 1\n")
    with pytest.raises(ValueError, match="holds 3 values.*need 4"):
        fc.quantizer.import_masks(short)
    bad = tmp_path / "bad.syntxt"
    bad.write_text("1 0\n2 1\n")
    with pytest.raises(ValueError, match="value 3 is '2'"):
        fc.quantizer.import_masks(bad)
    with pytest.raises(ValueError, match="cannot read"):
        fc.quantizer.import_masks(tmp_path / "missing.syntxt")


def test_multi_input_cells_prune_each_input_block_separately(tmp_path):
    fc = Fc(6, 2, no_bias=True, input_sizes=[2, 4])
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[0.1, 0.9, 0.5, 0.6, 0.7, 0.01],
                                      [0.2, 0.8, 0.4, 0.3, 0.02, 0.9]]))
    fc.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="IterNonStruct",
                             delta=0.01)
    assert fc.quantizer.get_pruned_masks(0).tolist() == [[0, 1], [0, 1]]
    assert fc.quantizer.get_pruned_masks(1).tolist() == [[1, 1, 1, 0], [0, 0, 0, 1]]
    with pytest.raises(IndexError, match="2 input"):
        fc.quantizer.get_pruned_masks(2)
    path = tmp_path / "m.syntxt"
    fc.quantizer.export_masks(path)
    assert path.read_text() == "0 1 \n0 1 \n1 1 1 0 \n0 0 0 1 \n"


def test_state_dict_round_trip_restores_pruning_exactly():
    torch.manual_seed(0)
    fc = Fc(30, 10)
    fc.quantizer = PruneCell(prune_mode="Gradual", prune_filler="Random", threshold=0.8,
                             stepsize=7, seed=11)
    for _ in range(5):
        fc.quantizer.update(3)
    state = copy.deepcopy(fc.state_dict())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    other = Fc(30, 10)
    other.quantizer = PruneCell(prune_mode="Gradual", prune_filler="Random", threshold=0.8,
                                stepsize=7, seed=99)
    other.load_state_dict(state)
    assert torch.equal(other.quantizer.get_pruned_masks(), fc.quantizer.get_pruned_masks())
    assert other.quantizer.get_current_threshold() == fc.quantizer.get_current_threshold()
    for _ in range(10):  # the counter, increment and generator carry on identically
        fc.quantizer.update(3)
        other.quantizer.update(3)
        assert torch.equal(other.quantizer.get_pruned_masks(), fc.quantizer.get_pruned_masks())


def test_deepcopy_and_pickle_keep_the_quantizer_bound_to_the_copy():
    fc = fc_with([[0.1, 0.2, 0.3, 0.4]], prune_mode="Static", threshold=0.5,
                 prune_filler="IterNonStruct")
    twin = copy.deepcopy(fc)
    assert twin.quantizer.cell is twin
    buffer = io.BytesIO()
    torch.save(fc, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded.quantizer.cell is loaded


def test_repr_shows_mode_filler_target_current_and_sparsity():
    fc = fc_with([[0.1, 0.2, 0.3, 0.4]], prune_mode="Gradual", threshold=0.5, start=0.25,
                 prune_filler="IterNonStruct")
    text = repr(fc.quantizer)
    for word in ("Gradual", "IterNonStruct", "threshold=0.5", "current=0.25",
                 "sparsity=0.2500"):
        assert word in text
    assert "not attached" in repr(PruneCell())
