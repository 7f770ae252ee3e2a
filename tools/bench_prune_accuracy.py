"""Accuracy at high sparsity: n2prune's global Magnitude + Cubic schedule (attach + Pruner)
against torch.nn.utils.prune.global_unstructured with the same schedule, same loop.

    python tools/bench_prune_accuracy.py [--epochs 10] [--seeds 1 2] [--sparsity 0.95 0.98]
                                         [--methods Magnitude LAMP torch torch-current]
                                         [--data ../shared/data/mnist-10k]

Both sides train networks/lenet.ini's LeNet (built by n2prune from the INI, the INI's own
PruneCells removed, same initial weights for a seed) on the same MNIST Learn set, in the same
hand-written loop: torch.optim.SGD with the INI's learning rate, momentum and weight decay,
cosine decay over the run, batch 64, the same shuffling. Only the pruning differs:

- n2prune (``Magnitude``): ``attach(net, prune_mode="Gradual", prune_filler="Magnitude",
  scope="Global", schedule="Cubic", start=0, threshold=s)`` and a ``Pruner`` whose hooks the
  loop calls (at each step the lowest magnitudes among the unpruned weights join the pruned);
- n2prune (``LAMP``): the same with ``prune_filler="LAMP"`` (layer-adaptive magnitude scores
  ranked globally);
- torch: at each step of the same cubic schedule (same positions), ``global_unstructured``
  with ``L1Unstructured`` prunes the count that brings the total to the schedule's value
  (torch prunes among the weights still unpruned: masks only grow). As a plain loop calls
  it, it ranks ``layer.weight``, computed by the last forward: the weights one optimiser
  step ago;
- torch-current: the same, ranking the current weights (``importance_scores`` =
  ``weight_orig * weight_mask``). It is n2prune's ``Magnitude`` run by torch: the two give
  the same masks and the same accuracy, seed for seed (tests/test_prune_torch_reference.py
  checks the masks).

Cubic window: from 0 to 75 % of the run, a step every ``--frequency`` epochs (default 0.25).
Both sides draw the same dropout masks for a seed (the PruneCells get explicit seeds).
Prints the test accuracy of the final weights per seed, the mean per method and sparsity, and
per n2prune method its mean difference to torch seed by seed (paired: both sides start from the
same weights and see the same batches), with its standard error.
Takes minutes; not a CI test.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.utils import prune

import n2prune
from n2prune.prune.fillers import zeros_target
from n2prune.prune.schedules import HORIZON_FRACTION, cubic

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist-10k"
BATCH = 64
TORCH = ("torch", "torch-current")


def build(ini: Path, environ: Dict[str, str], seed: int, scratch: Path):
    """The LeNet (INI PruneCells removed), its SGD groups, the Learn and Test tensors."""
    from n2prune.train.trainer import Trainer, TrainOptions
    options = TrainOptions(learn_epoch=1, seed=seed, threads=1, quiet=True,
                           output=str(scratch), overwrite=True, environ=environ)
    trainer = Trainer(str(ini), options)
    net = trainer.net
    n2prune.detach(net, bake=False)
    groups = []
    for name, info in net.info.items():
        cell = net.cells[name]
        for role, spec in info.solvers.items():
            param = getattr(cell, role, None)
            if isinstance(param, nn.Parameter):
                kw = spec.kwargs()
                groups.append({"params": [param], "lr": kw.get("learning_rate", 0.01),
                               "momentum": kw.get("momentum", 0.0),
                               "weight_decay": kw.get("decay", 0.0)})
    provider = trainer.provider
    learn = provider.batch("Learn", torch.arange(provider.epoch_size))
    test = provider.batch("Test", torch.arange(provider.size("Test")))
    layers = [c for c in net.cells.values() if type(c).__name__ in ("Conv", "Fc")]
    return net, trainer.objectives[0], layers, groups, learn, test


def accuracy(net, objective, data) -> float:
    x, labels = data
    net.eval()
    with torch.no_grad():
        out = net.outputs(x, [objective.target.cell])
        correct = int((objective.estimated(out) == labels).sum())
    net.train()
    return correct / len(labels)


def learn_epoch(epoch: int, loss_of: Callable[[torch.Tensor], torch.Tensor], size: int,
                optimizer: torch.optim.Optimizer, scheduler: Any, generator: torch.Generator,
                pruner: Any = None, after_step: Optional[Callable[[int], None]] = None) -> None:
    """One shuffled epoch of SGD in batches of BATCH, as every accuracy benchmark learns:
    ``loss_of(index)`` is the loss of the stimuli ``index``; the Pruner's hooks run around
    each step when one is given, ``after_step(len(index))`` after each step."""
    if pruner:
        pruner.on_epoch_begin(epoch)
    order = torch.randperm(size, generator=generator)
    for first in range(0, size, BATCH):
        index = order[first:first + BATCH]
        loss = loss_of(index)
        optimizer.zero_grad()
        loss.backward()
        if pruner:
            pruner.on_before_optimizer_step()
        optimizer.step()
        scheduler.step()
        if pruner:
            pruner.on_step_end(len(index))
        if after_step:
            after_step(len(index))
    if pruner:
        pruner.on_epoch_end()


def paired_difference(ours: List[float], theirs: List[float]) -> Tuple[float, float]:
    """Mean and standard error, in points, of the seed-by-seed differences ``ours - theirs``
    (accuracies in [0, 1]); the error is NaN for one seed."""
    diffs = [100 * (a - b) for a, b in zip(ours, theirs)]
    error = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return statistics.mean(diffs), error


def run(method: str, target: float, seed: int, epochs: int, frequency: float, ini: Path,
        environ: Dict[str, str], scratch: Path) -> Tuple[float, float]:
    """Train once; returns (test accuracy, achieved sparsity)."""
    net, objective, layers, groups, (x, labels), test = build(ini, environ, seed, scratch)
    size = len(x)
    horizon = epochs * size
    end = HORIZON_FRACTION * horizon
    step_every = max(1, int(frequency * size))
    pruner = None
    if method not in TORCH:
        cells = n2prune.attach(net, types=tuple(type(c) for c in layers), prune_mode="Gradual",
                               prune_filler=method, scope="Global", schedule="Cubic",
                               start=0.0, threshold=target, frequency=step_every,
                               seed=seed)  # no draw from torch's generator: same dropout
        pruner = n2prune.Pruner(cells, epoch_size=size, horizon=horizon)
    else:
        for layer in layers:  # start from all-ones masks (weight_orig, weight_mask)
            prune.identity(layer, "weight")
    total_weights = sum(layer.weight.numel() for layer in layers)
    optimizer = torch.optim.SGD(groups, lr=groups[0]["lr"])
    steps = epochs * math.ceil(size / BATCH)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    criterion = objective.loss
    position, pruned_now = 0, 0
    net.train()
    if pruner:
        pruner.on_train_begin()
    def torch_prune(count: int) -> None:  # the torch side's cubic schedule, by position
        nonlocal position, pruned_now
        position += count
        t = math.floor(position / step_every) * step_every
        wanted = zeros_target(cubic(t, 0.0, end, 0.0, target), total_weights)
        if wanted > pruned_now:
            current = None if method == "torch" else {
                (layer, "weight"): layer.weight_orig.detach() * layer.weight_mask
                for layer in layers}
            prune.global_unstructured([(layer, "weight") for layer in layers],
                                      pruning_method=prune.L1Unstructured,
                                      importance_scores=current,
                                      amount=wanted - pruned_now)
            pruned_now = wanted

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        outputs = net.outputs(x.index_select(0, index), [objective.source])  # logits
        return criterion(outputs, labels[index])

    for epoch in range(epochs):
        learn_epoch(epoch, loss_of, size, optimizer, scheduler, generator, pruner,
                    None if pruner else torch_prune)
    if pruner:
        pruner.on_train_end()
        sparsity = pruner.sparsity()
    else:
        sparsity = sum(int((layer.weight_mask == 0).sum()) for layer in layers) / total_weights
    return accuracy(net, objective, test), sparsity


def _environ(data: Path, scratch: Path) -> Dict[str, str]:
    link = scratch / "data" / "mnist"
    link.parent.mkdir()
    link.symlink_to(data.resolve())
    return dict(os.environ, N2D2_DATA=str(link.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.95, 0.98])
    parser.add_argument("--frequency", type=float, default=0.25,
                        help="epochs between schedule steps (default 0.25)")
    parser.add_argument("--methods", nargs="+", default=["Magnitude", "torch"],
                        help="n2prune criteria (global, cubic), torch and/or "
                             "torch-current (default Magnitude torch)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args(argv)
    for method in args.methods:
        if method not in TORCH and method not in n2prune.prune.CRITERIA:
            parser.error(f"--methods {method}: not a criterion; use torch, torch-current or "
                         f"{', '.join(n2prune.prune.CRITERIA.names())}")
    data = Path(args.data)
    if not (data / "train-images-idx3-ubyte.gz").exists():
        parser.error(f"--data {data}: no MNIST IDX files there")
    torch.set_num_threads(1)
    results: Dict[Tuple[str, float], List[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_prune_accuracy_") as folder:
        scratch = Path(folder)
        environ = _environ(data, scratch)
        print(f"networks/lenet.ini on {data}, {args.epochs} epochs, seeds {args.seeds}, "
              f"cubic steps every {args.frequency} epoch", flush=True)
        for target in args.sparsity:
            for seed in args.seeds:
                order = args.methods if seed % 2 else args.methods[::-1]
                for method in order:
                    acc, achieved = run(method, target, seed, args.epochs, args.frequency,
                                        ROOT / "networks" / "lenet.ini", environ,
                                        scratch / "run")
                    results.setdefault((method, target), []).append(acc)
                    print(f"  {target:.0%} seed {seed} {method:8s}: test accuracy "
                          f"{100 * acc:.2f} %, sparsity {achieved:.4f}", flush=True)
    names = {"torch": "torch global_unstructured, Cubic",
             "torch-current": "torch global_unstructured on current weights, Cubic"}
    print("| sparsity | " + " | ".join(names.get(m, f"n2prune global {m}, Cubic")
                                       for m in args.methods) + " |")
    print("|---|" + "---|" * len(args.methods))
    for target in args.sparsity:
        cells = []
        for method in args.methods:
            values = results[(method, target)]
            cells.append(f"{100 * statistics.mean(values):.2f} % "
                         f"({', '.join(f'{100 * v:.2f}' for v in values)})")
        print(f"| {target:.0%} | " + " | ".join(cells) + " |")
    if "torch" in args.methods:
        for method in (m for m in args.methods if m != "torch"):
            for target in args.sparsity:
                print(paired(method, target, results[(method, target)],
                             results[("torch", target)]))
    return 0


def paired(method: str, target: float, ours: List[float], theirs: List[float]) -> str:
    """One line comparing two methods seed by seed (same seed, same start, same batches):
    the mean difference in points, its standard error, and the seeds won, level and lost."""
    mean, error = paired_difference(ours, theirs)
    diffs = [a - b for a, b in zip(ours, theirs)]
    ahead = sum(d > 0 for d in diffs)
    level = sum(d == 0 for d in diffs)
    return (f"{target:.0%}: {method} - torch = {mean:+.3f} points "
            f"(standard error {error:.3f}; ahead on {ahead}, level on {level}, behind on "
            f"{len(diffs) - ahead - level} of {len(diffs)} seeds)")


if __name__ == "__main__":
    sys.exit(main())
