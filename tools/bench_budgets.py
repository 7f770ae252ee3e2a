"""Per-cell budgets on LeNet: uniform targets, Global Magnitude, Global LAMP and the
sensitivity budget, same loop, same schedule, paired over seeds.

    python tools/bench_budgets.py [--epochs 8] [--seeds 1 2 3 4 5] [--sparsity 0.95 0.98]
                                  [--methods uniform Magnitude LAMP sensitivity]
                                  [--data ../shared/data/mnist-10k]

networks/lenet.ini's LeNet (its own PruneCells removed, same initial weights for a seed) learns
the mnist-10k Learn set (7,200 images) in tools/bench_prune_accuracy.py's loop (SGD with the
INI's rates, cosine decay, batch 64, same shuffling). Every method prunes by magnitude with a
Cubic schedule from the end of epoch 1 to 75 % of the run, a mask step every quarter epoch:

- uniform: every cell at the target (Layer scope);
- Magnitude, LAMP: one Global ranking over the four cells;
- sensitivity: at the end of epoch 1, ``n2prune.sensitivity`` prunes each cell alone at
  0.1 ... 0.95, 0.97, 0.98, 0.99 (Magnitude, the rest dense) and scores the 800 Validation
  images; ``allocate`` picks the per-cell sparsities meeting the target at the least predicted
  loss; each cell then prunes to its own target (Layer scope).

Prints the test accuracy (2,000 images) per seed, the mean per method and target, each
method's paired difference to the sensitivity budget (mean ± standard error over the seeds),
and the analysis time. Takes minutes; not a CI test. The ResNet-18 channel part of issue 20
is not here (too slow for this 2-core machine).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import n2prune  # noqa: E402
from bench_prune_accuracy import BATCH, DEFAULT_DATA, ROOT, _environ, accuracy, build  # noqa: E402
from n2prune.prune.schedules import HORIZON_FRACTION  # noqa: E402
from n2prune.sensitivity import DEFAULT_SPARSITIES, allocate  # noqa: E402

METHODS = ("uniform", "Magnitude", "LAMP", "sensitivity")
GRID = tuple(DEFAULT_SPARSITIES) + (0.97, 0.98, 0.99)


def run(method: str, target: float, seed: int, epochs: int, environ, scratch: Path,
        timings: List[float]) -> float:
    """Train once; returns the test accuracy."""
    torch.manual_seed(seed)
    net, objective, layers, groups, (x, labels), test = build(
        ROOT / "networks" / "lenet.ini", environ, seed, scratch)
    size, names = len(x), [n for n, c in net.cells.items() if c in layers]
    end = HORIZON_FRACTION * epochs * size
    every = max(1, size // 4)
    common = dict(prune_mode="Gradual", prune_filler="LAMP" if method == "LAMP" else "Magnitude",
                  schedule="Cubic", start=0.0, frequency=every, seed=seed)

    def attach(thresholds: Dict[str, float], scope: str, begin: float, stop: float):
        cells = {}
        for name in names:
            net.cells[name].quantizer = n2prune.PruneCell(
                threshold=thresholds[name], scope=scope, begin=begin, end=stop, **common)
            cells[name] = net.cells[name].quantizer
        return n2prune.Pruner(cells, epoch_size=size, horizon=epochs * size)

    pruner = None
    if method != "sensitivity":
        scope = "Layer" if method == "uniform" else "Global"
        pruner = attach({n: target for n in names}, scope, size, end)
    optimizer = torch.optim.SGD(groups, lr=groups[0]["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * math.ceil(size / BATCH))
    generator = torch.Generator().manual_seed(seed)
    valid = None
    net.train()
    for epoch in range(epochs):
        if epoch == 1 and method == "sensitivity":
            valid = valid or _validation(environ, seed, scratch)
            started = time.perf_counter()
            result = n2prune.sensitivity(net, lambda m: accuracy(m, objective, valid),
                                         cells={n: net.cells[n] for n in names}, sparsities=GRID)
            budget = allocate(result, target, "Sparsity", ceiling=0.995)
            timings.append(time.perf_counter() - started)
            print(f"  seed {seed} budget at {target}: " + ", ".join(
                f"{n} {s:.3f}" for n, s in budget.sparsities.items()), flush=True)
            net.train()
            pruner = attach(budget.sparsities, "Layer", 0, end - size)
        if pruner:
            pruner.on_epoch_begin(epoch)
        order = torch.randperm(size, generator=generator)
        for first in range(0, size, BATCH):
            index = order[first:first + BATCH]
            outputs = net.outputs(x.index_select(0, index), [objective.source])
            loss = objective.loss(outputs, labels[index])
            optimizer.zero_grad()
            loss.backward()
            if pruner:
                pruner.on_before_optimizer_step()
            optimizer.step()
            scheduler.step()
            if pruner:
                pruner.on_step_end(len(index))
        if pruner:
            pruner.on_epoch_end()
    sparsity = pruner.sparsity()
    if abs(sparsity - target) > 0.002:
        print(f"  warning: {method} seed {seed} ended at sparsity {sparsity:.4f}, not {target}")
    return accuracy(net, objective, test)


def _validation(environ, seed: int, scratch: Path):
    from n2prune.train.trainer import Trainer, TrainOptions
    trainer = Trainer(str(ROOT / "networks" / "lenet.ini"), TrainOptions(
        learn_epoch=1, seed=seed, threads=1, quiet=True, output=str(scratch / "v"),
        overwrite=True, environ=environ))
    provider = trainer.provider
    trainer.close()
    return provider.batch("Validation", torch.arange(provider.size("Validation")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.95, 0.98])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not (args.data / "train-images-idx3-ubyte.gz").exists() and \
            not (args.data / "train-images-idx3-ubyte").exists():
        print(f"no MNIST data in {args.data}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    results: Dict[tuple, List[float]] = {}
    timings: List[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        environ = _environ(args.data, Path(tmp))
        for target in args.sparsity:
            for seed in args.seeds:
                for method in args.methods:
                    acc = run(method, target, seed, args.epochs, environ, Path(tmp) / "run",
                              timings)
                    results.setdefault((method, target), []).append(acc)
                    print(f"{target:.2f} seed {seed} {method:12} {100 * acc:.2f}", flush=True)
    print(f"\n| method | " + " | ".join(f"{100 * t:g} %" for t in args.sparsity) + " |")
    print("|---|" + "---|" * len(args.sparsity))
    for method in args.methods:
        cells = []
        for target in args.sparsity:
            accs = results[(method, target)]
            text = f"{100 * statistics.mean(accs):.2f}"
            if method != "sensitivity" and "sensitivity" in args.methods:
                diff = [100 * (s - a) for s, a in zip(results[("sensitivity", target)], accs)]
                err = statistics.stdev(diff) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
                text += f" (sensitivity − this: {statistics.mean(diff):+.2f} ± {err:.2f})"
            cells.append(text)
        print(f"| {method} | " + " | ".join(cells) + " |")
    if timings:
        print(f"\nanalysis (4 cells x {len(GRID)} points, 800 validation images): median "
              f"{statistics.median(timings):.1f} s, max {max(timings):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
