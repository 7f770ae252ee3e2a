"""Benchmark: n2prune's learning loop against a hand-written PyTorch loop on the same LeNet.

    python tools/bench_train.py [--epochs 2] [--repeats 5] [--threads 1] [--data DIR]
                                [--clock wall|cpu]

The n2prune side is ``Trainer`` on networks/lenet.ini (MNIST from ``--data``, by default
../shared/data/mnist-10k; without it, networks/digits.ini and its embedded digits). Its
throughput is the report's: learning stimuli / learning seconds (validation, test and
checkpoints excluded). The hand-written side is the same architecture as plain torch.nn
modules, with torch.nn.utils.prune l1_unstructured masks at the start threshold on the same
layers (fixed while timed), torch.optim.SGD with the same momentum, decay and batch size,
CrossEntropyLoss (mean), and the same Learn set preloaded as one float tensor, shuffled each
epoch with a torch.Generator. Both learn the same number of stimuli, after a warm-up, in
alternating repeats with the same torch thread count. The ratio n2prune / hand-written
compares the best repeat of each (the one least disturbed by other processes; the median of
the repeats' ratios is printed too); its goal is >= 1.00.

``--clock cpu`` times both sides in this process's CPU time (``time.process_time``) instead
of wall-clock time, the Trainer's learning seconds included: on a machine shared with other
processes a repeat then no longer counts the time the scheduler gave to them (at 1 thread;
at 2, both threads' CPU time, spin-waits included, on both sides).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterator, List, Tuple

import torch
from torch import nn
from torch.nn.utils import prune

import n2prune.train.trainer as trainer_module

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist-10k"
GOAL = 1.00   # like for like, at 1 and 2 threads
CLOCKS: Dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def _trainer(ini: Path, environ: Dict[str, str], epochs: int, threads: int, output: Path):
    options = trainer_module.TrainOptions(learn_epoch=epochs, seed=1, threads=threads,
                                          quiet=True, output=str(output), overwrite=True,
                                          environ=environ)
    return trainer_module.Trainer(str(ini), options)


@contextlib.contextmanager
def trainer_clock(clock: Callable[[], float]) -> Iterator[None]:
    """The Trainer times its learning steps with ``time.perf_counter``: within this block it
    reads ``clock`` instead (the trainer module's own ``time`` name only)."""
    saved = trainer_module.time
    trainer_module.time = SimpleNamespace(perf_counter=clock)
    try:
        yield
    finally:
        trainer_module.time = saved


def run_n2prune(ini: Path, environ: Dict[str, str], epochs: int, threads: int,
                output: Path, clock: Callable[[], float] = time.perf_counter
                ) -> Tuple[int, float]:
    """One ``Trainer.run()``: (learning stimuli, learning seconds on ``clock``) from its
    report."""
    with trainer_clock(clock):
        report = _trainer(ini, environ, epochs, threads, output).run()
    return report["stimuli"], report["learning_seconds"]


def _module(cell: nn.Module, info: Any) -> List[nn.Module]:
    """The plain torch.nn modules doing what one n2prune cell does (LeNet's cell types)."""
    kind = info.type
    if kind == "Conv":
        (c, _, _), out = info.input_shapes[0], cell.nb_outputs
        ky, kx = cell.weight.shape[2:]
        px, py = cell.padding_dims
        layers: List[nn.Module] = [nn.Conv2d(c, out, (ky, kx), padding=(py, px))]
    elif kind == "Fc":
        layers = [nn.Flatten(), nn.Linear(cell.nb_inputs, cell.nb_outputs)]
    elif kind == "Pool":
        layers = [nn.MaxPool2d(cell.pool_dims[::-1], cell.stride_dims[::-1])]
    elif kind == "Dropout":
        layers = [nn.Dropout(cell.dropout)]
    elif kind == "Softmax":
        return []  # CrossEntropyLoss takes the logits
    else:
        raise ValueError(f"hand-written model: no plain module for a {kind} cell")
    activation = getattr(cell, "activation", None)
    if activation is not None and type(activation).__name__ == "Rectifier":
        layers.append(nn.ReLU())
    return layers


def hand_written_model(trainer: Any, amount: float) -> Tuple[nn.Module, List[Dict[str, Any]]]:
    """The trainer's network as nn.Sequential, pruned with torch.nn.utils.prune, and the
    SGD parameter groups (weights with decay, biases without, as the INI's solvers)."""
    layers, groups = [], []
    for name, cell in trainer.net.cells.items():
        modules = _module(cell, trainer.net.info[name])
        layers += modules
        for module in modules:
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                prune.l1_unstructured(module, "weight", amount=amount)
                solvers = trainer.net.info[name].solvers
                for role, param in (("weight", module.weight_orig), ("bias", module.bias)):
                    spec = solvers[role].kwargs()
                    groups.append({"params": [param], "lr": spec.get("learning_rate", 0.01),
                                   "momentum": spec.get("momentum", 0.0),
                                   "weight_decay": spec.get("decay", 0.0)})
    return nn.Sequential(*layers), groups


def run_hand_written(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                     labels: torch.Tensor, batch_size: int, epochs: int,
                     generator: torch.Generator,
                     clock: Callable[[], float] = time.perf_counter) -> Tuple[int, float]:
    """The plain loop: (stimuli, seconds on ``clock``) for ``epochs`` shuffled epochs."""
    criterion = nn.CrossEntropyLoss()
    model.train()
    seen, start = 0, clock()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for first in range(0, len(x), batch_size):
            index = order[first:first + batch_size]
            loss = criterion(model(x.index_select(0, index)), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(index)
    return seen, clock() - start


def _setup(args: argparse.Namespace, scratch: Path) -> Tuple[Path, Dict[str, str], str]:
    data = Path(args.data)
    if (data / "train-images-idx3-ubyte.gz").exists() \
            or (data / "train-images-idx3-ubyte").exists():
        link = scratch / "data" / "mnist"
        link.parent.mkdir()
        link.symlink_to(data.resolve())
        environ = dict(os.environ, N2D2_DATA=str(link.parent))
        return ROOT / "networks" / "lenet.ini", environ, f"MNIST from {data}"
    return ROOT / "networks" / "digits.ini", dict(os.environ), \
        f"embedded digits (no MNIST files in {data})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="learning epochs per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both")
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="folder of MNIST IDX files (default ../shared/data/mnist-10k)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="time both sides in wall-clock or this process's CPU seconds")
    args = parser.parse_args()
    for name in ("epochs", "repeats", "threads"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as folder:
        scratch = Path(folder)
        ini, environ, what = _setup(args, scratch)
        return _bench(args, ini, environ, what, scratch)


def _bench(args: argparse.Namespace, ini: Path, environ: Dict[str, str], what: str,
           scratch: Path) -> int:
    trainer = _trainer(ini, environ, args.epochs, args.threads, scratch / "n2prune")
    provider, batch = trainer.provider, trainer.batch_size
    size = provider.epoch_size
    x, labels = provider.batch("Learn", torch.arange(size))
    amount = max(c.quantizer.get_current_threshold()
                 for c in trainer.net.pruned_cells().values())
    model, groups = hand_written_model(trainer, amount)
    trainer.close()  # its output folder's lock: the timed runs take it in turn
    optimizer = torch.optim.SGD(groups, lr=groups[0]["lr"])
    generator = torch.Generator().manual_seed(1)
    print(f"{ini.name} on {what}: {size} learn stimuli, batch {batch}, {args.epochs} epoch(s) "
          f"per repeat, {args.repeats} repeat(s), {torch.get_num_threads()} torch thread(s), "
          f"hand-written masks: l1_unstructured {amount:.0%}, {args.clock} clock")
    clock = CLOCKS[args.clock]
    run_hand_written(model, optimizer, x, labels, batch, 1, generator)  # warm-up
    run_n2prune(ini, environ, 1, args.threads, scratch / "n2prune")
    ours, theirs = [], []
    for repeat in range(args.repeats):
        stimuli, seconds = run_n2prune(ini, environ, args.epochs, args.threads,
                                       scratch / "n2prune", clock)
        ours.append(stimuli / seconds)
        stimuli, seconds = run_hand_written(model, optimizer, x, labels, batch, args.epochs,
                                            generator, clock)
        theirs.append(stimuli / seconds)
        print(f"  repeat {repeat + 1}: n2prune {ours[-1]:8.0f} stimuli/s, hand-written "
              f"{theirs[-1]:8.0f} stimuli/s, ratio {ours[-1] / theirs[-1]:.3f}", flush=True)
    best = max(ours) / max(theirs)
    median = statistics.median(o / t for o, t in zip(ours, theirs))
    print(f"n2prune       {max(ours):8.0f} stimuli/s best, {statistics.median(ours):8.0f} median")
    print(f"hand-written  {max(theirs):8.0f} stimuli/s best, {statistics.median(theirs):8.0f} "
          f"median")
    verdict = "met" if best >= GOAL else "NOT met"
    print(f"ratio n2prune / hand-written: {best:.3f} (best against best; median of the "
          f"repeats' ratios {median:.3f}); goal >= {GOAL:.2f}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
