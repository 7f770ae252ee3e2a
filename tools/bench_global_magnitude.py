"""Global magnitude masks over a ResNet-50-sized set of weights: n2prune vs torch.nn.utils.prune.

50 x nn.Linear(707, 707) (about 25M weights in 50 tensors). Each repeat times, on a fresh copy
of the same model, ``n2prune.attach(..., prune_filler="Magnitude", scope="Global")`` plus one
forward, and ``torch.nn.utils.prune.global_unstructured(..., L1Unstructured)`` plus one forward,
alternating which goes first (the machine is noisy). Prints both times, the ratio and how far
the two masks agree (torch prunes round(t*N) weights, n2prune ceil(t*N); ties may differ).

    python tools/bench_global_magnitude.py [--layers 50] [--size 707] [--amount 0.9] [--repeats 5]
        [--threads N]   (default: torch's default thread count; printed with the results)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn
from torch.nn.utils import prune

import n2prune


def build(layers: int, size: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(size, size) for _ in range(layers)])


def run_n2prune(model: nn.Sequential, x: torch.Tensor, amount: float):
    start = time.perf_counter()
    cells = n2prune.attach(model, prune_mode="Static", threshold=amount,
                           prune_filler="Magnitude", scope="Global")
    with torch.no_grad():
        model(x)
    seconds = time.perf_counter() - start
    return seconds, [cells[str(i)].mask for i in range(len(model))]


def run_torch(model: nn.Sequential, x: torch.Tensor, amount: float):
    start = time.perf_counter()
    prune.global_unstructured([(layer, "weight") for layer in model],
                              pruning_method=prune.L1Unstructured, amount=amount)
    with torch.no_grad():
        model(x)
    seconds = time.perf_counter() - start
    return seconds, [layer.weight_mask for layer in model]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--size", type=int, default=707)
    parser.add_argument("--amount", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both (default: torch's own default, "
                        f"{torch.get_num_threads()} here)")
    args = parser.parse_args(argv)
    default = args.threads is None
    args.threads = torch.get_num_threads() if default else args.threads
    torch.set_num_threads(args.threads)
    base = build(args.layers, args.size, seed=0)
    x = torch.randn(1, args.size)
    weights = sum(layer.weight.numel() for layer in base)
    print(f"{args.layers} x Linear({args.size}, {args.size}): {weights} weights, "
          f"amount {args.amount}, {args.repeats} repeats, {args.threads} thread(s)"
          f"{' (torch default)' if default else ''}")
    ours, theirs, agreement = [], [], []
    for repeat in range(args.repeats):
        order = [("n2prune", run_n2prune), ("torch", run_torch)]
        if repeat % 2:
            order.reverse()
        masks = {}
        for name, fn in order:
            model = copy.deepcopy(base)
            seconds, masks[name] = fn(model, x, args.amount)
            (ours if name == "n2prune" else theirs).append(seconds)
            del model
        same = sum(int((a == b).sum()) for a, b in zip(masks["n2prune"], masks["torch"]))
        agreement.append(same / weights)
        print(f"  repeat {repeat}: n2prune {ours[-1]:.3f} s, torch {theirs[-1]:.3f} s, "
              f"ratio {theirs[-1] / ours[-1]:.1f}x")
    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"at {args.threads} thread(s), median: n2prune {med_ours:.3f} s, "
          f"torch.nn.utils.prune {med_theirs:.3f} s; "
          f"n2prune is {med_theirs / med_ours:.1f}x faster (median of ratios "
          f"{statistics.median(t / o for t, o in zip(theirs, ours)):.1f}x); masks agree on "
          f"{100 * min(agreement):.4f} % of weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
