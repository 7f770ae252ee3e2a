"""A compacted Hugging Face model saved with n2prune.compact.hf.save_pretrained reloads with
the library's own ``from_pretrained(folder, trust_remote_code=True)``: config key, auto_map and
a self-contained modeling file, identical outputs, nothing missing or unexpected."""

import ast
import json
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="needs the .[hf] extra (transformers)")
dynamic = pytest.importorskip("transformers.dynamic_module_utils",
                              reason="needs the .[hf] extra (transformers)")

import n2prune  # noqa: E402
from n2prune.compact.hf import (auto_classes, compacted_layers, from_pretrained,  # noqa: E402
                                save_pretrained)
from n2prune.compact.select import group_scores, lowest_per_layer, zero_groups  # noqa: E402
from n2prune.compact.trace import trace_channel_graph  # noqa: E402


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """The folders' code is imported from tmp_path, not ~/.cache/huggingface/modules."""
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _compacted(model_class, **config):
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, vocab_size=100, **config)
    model = model_class(config).eval()
    ids = torch.randint(0, 100, (2, 7))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    graph = trace_channel_graph(model, batch)
    scores = group_scores(graph)
    zero_groups(model, lowest_per_layer(graph, scores, count=1, layers="attention.self.query")
                + lowest_per_layer(graph, scores, fraction=0.25, layers="intermediate.dense"))
    return n2prune.compact(model, batch), batch


@torch.no_grad()
def test_the_folder_holds_widths_auto_map_and_a_modeling_file(tmp_path):
    small, _ = _compacted(transformers.BertModel)
    assert save_pretrained(small, tmp_path / "small") == ["AutoModel", "AutoModelForTextEncoding"]
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_compacted.CompactedBertModel"
    layer = config["compacted_layers"]["encoder.layer.1.attention.self"]
    assert layer["attributes"] == {"num_attention_heads": 3, "all_head_size": 24}
    assert config["compacted_layers"]["encoder.layer.1.intermediate.dense"]["shapes"] == \
        {"weight": [48, 32], "bias": [48]}
    code = (tmp_path / "small" / "modeling_compacted.py").read_text()
    imports = [node for node in ast.walk(ast.parse(code))
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    imported = {alias.name if isinstance(node, ast.Import) else node.module
                for node in imports for alias in node.names}
    assert imported == {"torch", "transformers"}                  # loads without n2prune
    assert "class CompactedBertModel(BertModel):" in code
    assert not hasattr(small.config, "compacted_layers") and \
        not hasattr(small.config, "auto_map")                     # the model is left unchanged


@torch.no_grad()
def test_auto_model_reloads_it_with_trust_remote_code_identically(tmp_path, modules_cache):
    small, batch = _compacted(transformers.BertModel)
    save_pretrained(small, tmp_path / "small")
    again, info = transformers.AutoModel.from_pretrained(tmp_path / "small", trust_remote_code=True,
                                                         output_loading_info=True)
    assert type(again).__name__ == "CompactedBertModel"
    assert isinstance(again, transformers.BertModel)
    assert (info["missing_keys"], info["unexpected_keys"], info["mismatched_keys"]) == \
        (set(), set(), set())
    assert again.encoder.layer[1].attention.self.num_attention_heads == 3
    assert torch.equal(again(**batch).last_hidden_state, small(**batch).last_hidden_state)
    # the reloaded model saves itself with the stock save_pretrained (its code goes along)
    again.save_pretrained(tmp_path / "resaved")
    twice = transformers.AutoModel.from_pretrained(tmp_path / "resaved", trust_remote_code=True)
    assert torch.equal(twice(**batch).last_hidden_state, small(**batch).last_hidden_state)
    assert compacted_layers(again) == compacted_layers(small)     # against the stock BertModel
    # n2prune's own loader reads the same folder without running its code
    plain = from_pretrained(transformers.AutoModel, tmp_path / "small")
    assert type(plain) is transformers.BertModel
    assert torch.equal(plain(**batch).last_hidden_state, small(**batch).last_hidden_state)


@torch.no_grad()
def test_a_model_with_a_head_maps_its_auto_class_and_the_base_model(tmp_path, modules_cache):
    small, batch = _compacted(transformers.BertForSequenceClassification, num_labels=3)
    assert save_pretrained(small, tmp_path / "small") == ["AutoModel",
                                                          "AutoModelForSequenceClassification"]
    again = transformers.AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "small", trust_remote_code=True)
    assert torch.equal(again(**batch).logits, small(**batch).logits)
    base = transformers.AutoModel.from_pretrained(tmp_path / "small", trust_remote_code=True)
    assert type(base).__name__ == "CompactedBertModel"
    assert torch.equal(base(**batch).last_hidden_state, small.bert(**batch).last_hidden_state)


@torch.no_grad()
def test_a_constant_shift_after_a_layer_is_rebuilt_with_its_hook(tmp_path, modules_cache):
    small, batch = _compacted(transformers.BertModel)
    dense = small.encoder.layer[0].output.dense
    dense.register_buffer("compaction_shift", torch.randn(7, 32))
    dense.register_forward_hook(lambda module, args, out: out + module.compaction_shift)
    assert compacted_layers(small)["encoder.layer.0.output.dense"]["shift"] == [7, 32]
    save_pretrained(small, tmp_path / "small")
    again = transformers.AutoModel.from_pretrained(tmp_path / "small", trust_remote_code=True)
    assert torch.equal(again(**batch).last_hidden_state, small(**batch).last_hidden_state)


def test_what_cannot_be_rebuilt_from_a_config_is_refused(tmp_path):
    small, _ = _compacted(transformers.BertModel)
    n2prune.attach(small.encoder.layer[0].intermediate, prune_mode="Static", threshold=0.5,
                   prune_filler="Magnitude")
    with pytest.raises(ValueError, match=r"module 'encoder\.layer\.0\.intermediate\.dense\."
                                         r"quantizer' .*the stock model lacks; detach"):
        save_pretrained(small, tmp_path / "small")
    with pytest.raises(TypeError, match="Linear is not a transformers model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "linear")


def test_auto_classes_come_from_the_library_tables():
    assert auto_classes(transformers.BertForMaskedLM) == {"AutoModel": "BertModel",
                                                          "AutoModelForMaskedLM": "BertForMaskedLM"}
