"""Per-cell budgets on LeNet: uniform targets, Global Magnitude, Global LAMP and the
sensitivity budget, same loop, same schedule, paired over seeds.

    python tools/bench_budgets.py [--epochs 6] [--seeds 1 2 3 4 5] [--sparsity 0.95 0.98]
                                  [--methods uniform Magnitude LAMP sensitivity
                                             sensitivity-loss]
                                  [--data ../shared/data/mnist-10k]

networks/lenet.ini's LeNet (its own PruneCells removed, same initial weights for a seed) learns
the mnist-10k Learn set (7,200 images) in tools/bench_prune_accuracy.py's loop (SGD with the
INI's rates, cosine decay, batch 64, same shuffling). Every method prunes by magnitude with a
Cubic schedule from the end of epoch 1 to 75 % of the run, a mask step every quarter epoch:

- uniform: every cell at the target (Layer scope);
- Magnitude, LAMP: one Global ranking over the four cells;
- sensitivity: at the end of epoch 1, ``n2prune.sensitivity`` prunes each cell alone at
  0.1 ... 0.95, 0.97, 0.98, 0.99 (Magnitude, the rest dense) and scores the accuracy on the
  800 Validation images; ``allocate`` picks the per-cell sparsities meeting the target at the
  least predicted loss; each cell then prunes to its own target (Layer scope);
- sensitivity-loss: the same, scored by the validation loss (cross-entropy: continuous, it
  sees the damage before decisions flip, where 800 images quantise accuracy to 0.125 %) on a
  grid refined where high targets put the cells (0.93, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995
  added to 0.1 ... 0.95).

Prints the test accuracy (2,000 images) per seed, each cell's final sparsity, the mean per
method and target, the paired difference of each sensitivity method to every method (mean ±
standard error over the seeds), and the analysis time. Takes minutes; not a CI test. The
ResNet-18 channel row is tools/bench_budgets_channels.py.
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
from bench_prune_accuracy import (BATCH, DEFAULT_DATA, ROOT, _environ, accuracy, build,  # noqa: E402
                                  learn_epoch, paired_difference)
from n2prune.prune.schedules import HORIZON_FRACTION  # noqa: E402
from n2prune.sensitivity import DEFAULT_SPARSITIES, allocate  # noqa: E402

# sensitivity: scored by validation accuracy on the grid n2prune-train uses; sensitivity-loss:
# scored by the validation loss (cross-entropy, larger damage visible before decisions flip)
# on a grid refined where high targets put the cells
SENSITIVITY = {"sensitivity": ("accuracy", tuple(DEFAULT_SPARSITIES) + (0.97, 0.98, 0.99)),
               "sensitivity-loss": ("loss", tuple(DEFAULT_SPARSITIES) + (
                   0.93, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995))}
METHODS = ("uniform", "Magnitude", "LAMP") + tuple(SENSITIVITY)


def run(method: str, target: float, seed: int, epochs: int, environ, scratch: Path,
        timings: Dict[str, List[float]]) -> float:
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
    if method not in SENSITIVITY:
        scope = "Layer" if method == "uniform" else "Global"
        pruner = attach({n: target for n in names}, scope, size, end)
    optimizer = torch.optim.SGD(groups, lr=groups[0]["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                           epochs * math.ceil(size / BATCH))
    generator = torch.Generator().manual_seed(seed)
    valid = None
    net.train()
    for epoch in range(epochs):
        if epoch == 1 and method in SENSITIVITY:
            valid = valid or _validation(environ, seed, scratch)
            metric, grid = SENSITIVITY[method]
            started = time.perf_counter()
            result = n2prune.sensitivity(net, _scorer(metric, objective, valid),
                                         cells={n: net.cells[n] for n in names}, sparsities=grid)
            budget = allocate(result, target, "Sparsity", ceiling=0.995)
            timings.setdefault(method, []).append(time.perf_counter() - started)
            print(f"  {method} seed {seed} budget at {target}: " + ", ".join(
                f"{n} {s:.3f}" for n, s in budget.sparsities.items()), flush=True)
            net.train()
            pruner = attach(budget.sparsities, "Layer", 0, end - size)
        learn_epoch(epoch, lambda index: objective.loss(
            net.outputs(x.index_select(0, index), [objective.source]), labels[index]),
            size, optimizer, scheduler, generator, pruner)
    sparsity = pruner.sparsity()
    stats = pruner.statistics()
    print(f"  {method} seed {seed} final: " + ", ".join(
        f"{n} {stats[n]['sparsity']:.3f}" for n in names), flush=True)
    if abs(sparsity - target) > 0.002:
        print(f"  warning: {method} seed {seed} ended at sparsity {sparsity:.4f}, not {target}")
    return accuracy(net, objective, test)


def _scorer(metric: str, objective, valid):
    """The analysis' metric: validation accuracy, or minus the validation loss."""
    if metric == "accuracy":
        return lambda m: accuracy(m, objective, valid)

    def loss(m) -> float:
        m.eval()
        with torch.no_grad():
            value = float(objective.loss(m.outputs(valid[0], [objective.source]), valid[1]))
        m.train()
        return -value
    return loss


def _validation(environ, seed: int, scratch: Path):
    from n2prune.train.trainer import Trainer, TrainOptions
    trainer = Trainer(str(ROOT / "networks" / "lenet.ini"), TrainOptions(
        learn_epoch=1, seed=seed, threads=1, quiet=True, output=str(scratch / "v"),
        overwrite=True, environ=environ))
    provider = trainer.provider
    trainer.close()
    return provider.batch("Validation", torch.arange(provider.size("Validation")))


def _table(results: Dict[tuple, List[float]], methods: List[str], target: float, seeds: int,
           epochs: int) -> List[str]:
    """Markdown: the mean test accuracy of each method, and each sensitivity method's paired
    difference to it (mean ± standard error over the seeds)."""
    references = [m for m in methods if m in SENSITIVITY]
    lines = ["", f"| method ({100 * target:g} %, {seeds} seeds, {epochs} epochs) | mean test "
             f"accuracy | " + " | ".join(f"{r} − method, paired" for r in references) + " |",
             "|---|---|" + "---|" * len(references)]
    for method in methods:
        accs = results[(method, target)]
        cells = []
        for reference in references:
            mean, err = paired_difference(results[(reference, target)], accs)
            cells.append("–" if reference == method
                         else f"{mean:+.2f} ± {0.0 if math.isnan(err) else err:.2f}")
        lines.append(f"| {method} | {100 * statistics.mean(accs):.2f} % | " + " | ".join(cells)
                     + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
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
    timings: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        environ = _environ(args.data, Path(tmp))
        for target in args.sparsity:
            for seed in args.seeds:
                for method in args.methods:
                    acc = run(method, target, seed, args.epochs, environ, Path(tmp) / "run",
                              timings)
                    results.setdefault((method, target), []).append(acc)
                    print(f"{target:.2f} seed {seed} {method:16} {100 * acc:.2f}", flush=True)
    for target in args.sparsity:
        print("\n".join(_table(results, args.methods, target, len(args.seeds), args.epochs)))
    for method, values in timings.items():
        print(f"\nanalysis {method} (4 cells x {len(SENSITIVITY[method][1])} points, 800 "
              f"validation images): median {statistics.median(values):.1f} s, max "
              f"{max(values):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
