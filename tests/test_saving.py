"""An attached model saves the ecosystem's way: its state_dict holds tensors only (the
PruneCell's generator state included), so torch.save / torch.load(weights_only=True),
safetensors and torch.onnx.export take it; checkpoints written before (the generator state in
a dict) still load."""

import io
from pathlib import Path

import pytest
import torch

import n2prune
import n2prune.train.report as report
from n2prune.cli import train_main
from n2prune.prune.prunecell import PruneCell
from n2prune.train.checkpoint import RUN_KEYS, load_checkpoint, save_atomic

safetensors_torch = pytest.importorskip("safetensors.torch", reason="needs safetensors (.[hf])")
ROOT = Path(__file__).resolve().parent.parent


def _model(seed=0, filler="Random", **extra):
    """Two Linear layers with PruneCells; the first's generator has been drawn from."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    n2prune.attach(model, prune_mode="Static", threshold=0.5, prune_filler=filler,
                   seed=seed * 10, **extra)
    return model


def _assert_same_state(a, b):
    one, two = a.state_dict(), b.state_dict()
    assert one.keys() == two.keys()
    for key, value in one.items():
        assert torch.equal(value, two[key]), key


def test_every_state_dict_value_is_a_tensor_safetensors_accepts():
    model = _model(filler="ActivationMagnitude", rewind=0)
    model[0].quantizer.set_stat("input_sq_mean", torch.rand(6))
    state = model.state_dict()
    assert "0.quantizer._extra_state" in state and "0.quantizer.stat_input_sq_mean" in state
    for key, value in state.items():
        assert isinstance(value, torch.Tensor) and value.is_contiguous(), key
    assert state["0.quantizer._extra_state"].dtype == torch.uint8
    safetensors_torch.save(state)  # raises on a non-tensor, non-contiguous or shared tensor


def test_torch_save_and_weights_only_load_restore_masks_and_the_generator():
    model = _model(seed=1)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    twin = _model(seed=2)  # other weights, other masks, another generator
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    _assert_same_state(model, twin)
    assert torch.equal(twin[0].quantizer.generator.get_state(),
                       model[0].quantizer.generator.get_state())
    x = torch.randn(4, 6)
    assert torch.equal(model(x), twin(x))


def test_safetensors_round_trip_creates_statistics_and_rewind_weights(tmp_path):
    """A fresh attached model has no statistics yet: loading creates their buffers."""
    model = _model(seed=1, filler="ActivationMagnitude", rewind=0)
    for layer, size in ((model[0], 6), (model[2], 5)):
        layer.quantizer.set_stat("input_sq_mean", torch.rand(size))
        layer.quantizer.recompute()
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(path))
    twin = _model(seed=2, filler="ActivationMagnitude")  # no rewind weight, no statistics
    assert "0.quantizer.stat_input_sq_mean" not in twin.state_dict()
    twin.load_state_dict(safetensors_torch.load_file(str(path)))
    _assert_same_state(model, twin)
    assert 0 < twin[0].quantizer.sparsity() < 1
    x = torch.randn(4, 6)
    assert torch.equal(model(x), twin(x))


def test_a_transposed_statistic_is_stored_contiguous():
    cell = _model()[0].quantizer
    cell.set_stat("input_mean", torch.rand(6, 2).t())
    assert cell.stats["input_mean"].is_contiguous()
    safetensors_torch.save(cell.state_dict())


def test_a_checkpoint_with_the_generator_state_in_a_dict_still_loads():
    """state_dicts written before the extra state was a tensor: {"generator": ByteTensor}."""
    model = _model(seed=1)
    old = {key: {"generator": value} if key.endswith("_extra_state") else value
           for key, value in model.state_dict().items()}
    twin = _model(seed=2)
    twin.load_state_dict(old)
    _assert_same_state(model, twin)


@pytest.mark.parametrize("state, words", [
    ({"generator": torch.zeros(3, dtype=torch.float32)}, "torch.float32 tensor of shape (3,)"),
    ("text", "got a str"),
    (torch.zeros(7, dtype=torch.uint8), "does not fit a CPU torch.Generator"),
])
def test_a_bad_generator_state_is_one_clear_error(state, words):
    cell = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="Random", seed=1)
    before = cell.generator.get_state()
    with pytest.raises(ValueError) as error:
        cell.set_extra_state(state)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert torch.equal(cell.generator.get_state(), before)


def test_torch_onnx_export_of_an_attached_model_runs_in_onnxruntime(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="needs onnxruntime (.[onnx])")
    pytest.importorskip("onnx", reason="needs onnx (.[onnx])")
    model = _model(seed=1, filler="Magnitude").eval()
    x = torch.randn(4, 6)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    assert torch.allclose(torch.from_numpy(got), model(x), atol=1e-6)
    assert isinstance(model[0].quantizer, PruneCell)  # still attached


class _Interrupted(Exception):
    """Stands for a kill right after the first checkpoint was written."""


def test_a_run_checkpoint_of_the_older_format_resumes(tmp_path, monkeypatch):
    """n2prune-train --resume of a checkpoint whose PruneCells saved their generator in a
    dict (as n2prune did before) ends exactly as the uninterrupted run."""
    ini = str(ROOT / "networks" / "digits.ini")

    def options(name):
        return [ini, "-learn-epoch", "2", "-seed", "4", "--threads", "1", "--quiet",
                "--output", str(tmp_path / name)]
    assert train_main(options("whole")) == 0

    def write_log(*args, **kwargs):
        original(*args, **kwargs)
        raise _Interrupted
    original = report.write_log
    with monkeypatch.context() as patch:
        patch.setattr(report, "write_log", write_log)
        with pytest.raises(_Interrupted):
            train_main(options("cut"))
    path = tmp_path / "cut" / "checkpoint.pt"
    checkpoint = load_checkpoint(path, RUN_KEYS)
    extra = [key for key in checkpoint["net"] if key.endswith("quantizer._extra_state")]
    assert len(extra) == 4
    for key in extra:
        checkpoint["net"][key] = {"generator": checkpoint["net"][key]}
    save_atomic(checkpoint, path)
    assert train_main(options("cut") + ["--resume"]) == 0
    whole, resumed = (load_checkpoint(tmp_path / name / "checkpoint.pt", RUN_KEYS)["net"]
                      for name in ("whole", "cut"))
    assert whole.keys() == resumed.keys()
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key
