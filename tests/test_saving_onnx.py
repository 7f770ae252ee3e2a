"""n2prune.export_onnx: a baked copy of any torch model (attached or baked) as ONNX, its zeros
in the initializers, checked in onnxruntime, written atomically; the user's model untouched."""

import sys
import warnings

import numpy as np
import pytest
import torch

import n2prune
import n2prune.export as export
from n2prune.prune.prunecell import PruneCell

onnx = pytest.importorskip("onnx", reason="needs onnx (.[onnx])")
onnxruntime = pytest.importorskip("onnxruntime", reason="needs onnxruntime (.[onnx])")
numpy_helper = onnx.numpy_helper


def _model(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(64, 3))
    n2prune.attach(model, prune_mode="Static", threshold=0.5, prune_filler="Magnitude")
    return model


def _initializers(path):
    return [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]


def _holds(arrays, weight):
    """Whether an initializer holds ``weight`` (or its transpose, as a MatMul's)."""
    weight = weight.detach().numpy()
    return any(a.shape == weight.shape and np.array_equal(a, weight) or
               a.ndim == 2 and a.shape == weight.T.shape and np.array_equal(a, weight.T)
               for a in arrays)


def _ort(path, feeds):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})


def test_an_attached_model_exports_baked_and_stays_attached(tmp_path):
    model = _model().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 2, 6, 6)
    result = n2prune.export_onnx(model, x, tmp_path / "model.onnx")
    assert result.path == tmp_path / "model.onnx" and result.inputs == ["input"]
    assert result.outputs == ["output"] and result.max_difference < 1e-5
    # the user's model: still attached, in training mode, every tensor as it was
    assert isinstance(model[0].quantizer, PruneCell) and model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    arrays = _initializers(result.path)
    for layer in (model[0], model[3]):
        baked = layer.weight * layer.quantizer.mask
        assert int((baked == 0).sum()) == baked.numel() // 2
        assert _holds(arrays, baked)
    model.eval()
    other = torch.randn(5, 2, 6, 6)  # another batch size: dimension 0 is dynamic
    (got,) = _ort(result.path, {"input": other})
    assert np.allclose(got, model(other).detach().numpy(), atol=1e-5)


def test_a_baked_model_exports_the_same_file_contents(tmp_path):
    model = _model()
    x = torch.randn(2, 2, 6, 6)
    attached = n2prune.export_onnx(model, x, tmp_path / "attached.onnx")
    n2prune.detach(model, bake=True)
    baked = n2prune.export_onnx(model, x, tmp_path / "baked.onnx")
    for a, b in zip(_initializers(attached.path), _initializers(baked.path)):
        assert np.array_equal(a, b)


class _TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(5, 3)

    def forward(self, x, y, scale=1.0):
        return {"sum": (self.a(x) + self.b(y)) * scale, "x": self.a(x)}


@pytest.mark.parametrize("example, names, scale", [
    (lambda x, y: (x, y), ["input_0", "input_1"], 1.0),
    (lambda x, y: {"x": x, "y": y, "scale": 2.0}, ["x", "y"], 2.0),
    (lambda x, y: (x, y, 3.0), ["input_0", "input_1"], 3.0),  # a number is fixed in the graph
])
def test_examples_as_a_tuple_or_keywords_name_inputs_and_outputs(tmp_path, example, names,
                                                                 scale):
    torch.manual_seed(0)
    model = _TwoInputs()
    n2prune.attach(model, prune_mode="Static", threshold=0.5, prune_filler="Magnitude")
    x, y = torch.randn(2, 4), torch.randn(2, 5)
    result = n2prune.export_onnx(model, example(x, y), tmp_path / "two.onnx")
    # ONNX names each value once: the output "x" is renamed where an input is "x"
    assert result.inputs == names
    assert result.outputs == ["sum", "x_output" if "x" in names else "x"]
    got = _ort(result.path, dict(zip(names, (x, y))))
    want = model(x, y, scale)
    assert np.allclose(got[0], want["sum"].detach().numpy(), atol=1e-6)
    assert np.allclose(got[1], want["x"].detach().numpy(), atol=1e-6)


def test_a_failed_check_writes_nothing_and_keeps_the_earlier_file(tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"earlier")
    real = export._run

    def off_by_one(session, feeds):
        return {name: value + 1 for name, value in real(session, feeds).items()}
    monkeypatch.setattr(export, "_run", off_by_one)
    with pytest.raises(RuntimeError) as error:
        n2prune.export_onnx(_model(), torch.randn(2, 2, 6, 6), path)
    assert "ONNX output 'output' differs from the model's by up to 1" in str(error.value)
    assert f"nothing written to {path}" in str(error.value)
    assert path.read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary left


def test_without_onnxruntime_it_warns_that_the_file_is_unchecked(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with pytest.warns(UserWarning, match="is not checked: onnxruntime is not installed"):
        result = n2prune.export_onnx(_model(), torch.randn(2, 2, 6, 6), tmp_path / "m.onnx")
    assert result.max_difference is None and result.path.is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        n2prune.export_onnx(_model(), torch.randn(2, 2, 6, 6), tmp_path / "m.onnx",
                            verify=False)


@pytest.mark.parametrize("call, kind, words", [
    (lambda p: n2prune.export_onnx("model", torch.zeros(1), p), TypeError,
     "model must be a torch.nn.Module, got str"),
    (lambda p: n2prune.export_onnx(_model(), [[1.0]], p), ValueError,
     "example holds no tensor"),
    (lambda p: n2prune.export_onnx(_model(), 3.0, p), TypeError,
     "example must be a tensor, a tuple of positional inputs or a dict of keyword inputs, "
     "got float"),
    (lambda p: n2prune.export_onnx(_model(), torch.zeros(1, 2, 6, 6), p,
                                   input_names=["a", "b"]), ValueError,
     "input_names=['a', 'b'] must name the example's 1 tensor(s) once each"),
    (lambda p: n2prune.export_onnx(torch.nn.Flatten(0), {"input": torch.zeros(2), 1: 2}, p),
     TypeError, "example's keys must be argument names (str), got 1"),
])
def test_bad_arguments_are_one_clear_line_and_write_nothing(tmp_path, call, kind, words):
    with pytest.raises(kind) as error:
        call(tmp_path / "m.onnx")
    assert words in str(error.value) and "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())


def test_an_output_that_is_not_a_tensor_is_named(tmp_path):
    class Odd(torch.nn.Module):
        def forward(self, x):
            return {"y": x * 2, "n": "text"}
    with pytest.raises(TypeError, match="the model's output n is a str; ONNX outputs tensors"):
        n2prune.export_onnx(Odd(), torch.zeros(2), tmp_path / "m.onnx")
