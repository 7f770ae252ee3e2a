"""Where a learning step's time goes: n2prune's Trainer against the hand-written loop of
``tools/bench_train.py``, phase by phase, in CPU microseconds per step.

    OMP_NUM_THREADS=1 python tools/profile_train_step.py [--epochs 2] [--threads 1] [--data DIR]

The Trainer runs its own loop (``Trainer.run``) with each phase's callable wrapped in a timer
(this process's CPU time, ``time.process_time_ns``; at 1 thread other processes do not
disturb it): drawing the batch, forward, loss, ``zero_grad``, backward, the Pruner's hooks,
the solver steps, the accuracy; "rest" is the step's time (as the Trainer counts it) less
those, plus the loop's own work between steps. The hand-written loop is timed the same way.
Each phase prints its median and mean over the steps (a log point's validation is outside
the steps and not counted). The timers cost about a microsecond each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train  # noqa: E402  (the same Trainer, data and hand-written model)

clock = time.process_time_ns


class Phases:
    """Per-phase CPU nanoseconds, one entry per call."""

    def __init__(self) -> None:
        self.times: Dict[str, List[int]] = defaultdict(list)

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                self.times[name].append(clock() - start)
        return timed

    def per_step(self, name: str, steps: int) -> List[float]:
        """The phase's microseconds in each step (calls of one step summed)."""
        values = self.times.get(name, [])
        if not values:
            return [0.0]
        calls = max(1, len(values) // steps)
        return [sum(values[i:i + calls]) / 1e3 for i in range(0, calls * steps, calls)]


def profile_n2prune(ini: Path, environ: Dict[str, str], epochs: int, threads: int,
                    output: Path) -> Dict[str, List[float]]:
    trainer = bench_train._trainer(ini, environ, epochs, threads, output)
    phases = Phases()
    trainer._next_batch = phases.wrap("batch", trainer._next_batch)
    trainer.ranks.forward = phases.wrap("forward", trainer.ranks.forward)
    for objective in trainer.objectives:
        objective.loss = phases.wrap("loss", objective.loss)
        objective.estimated = phases.wrap("accuracy", objective.estimated)
    for optimizer in trainer.optimizers:
        optimizer.zero_grad = phases.wrap("zero_grad", optimizer.zero_grad)
        optimizer.step = phases.wrap("solver step", optimizer.step)
    pruner = trainer.pruner
    for hook in ("on_before_optimizer_step", "on_step_end"):
        setattr(pruner, hook, phases.wrap("pruner hooks", getattr(pruner, hook)))
    trainer._step = phases.wrap("step", trainer._step)
    backward = torch.Tensor.backward
    torch.Tensor.backward = phases.wrap("backward", backward)
    try:
        trainer.run()
    finally:
        torch.Tensor.backward = backward
    steps = len(phases.times["step"])
    # the Trainer's learning seconds: drawing the batch and the step
    phases.times["learning"] = [a + b for a, b in zip(phases.times["batch"],
                                                      phases.times["step"])]
    return _table(phases, steps, ("batch", "forward", "loss", "zero_grad", "backward",
                                  "pruner hooks", "solver step", "accuracy"), "learning")


def profile_hand_written(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                         labels: torch.Tensor, batch_size: int, epochs: int,
                         generator: torch.Generator) -> Dict[str, List[float]]:
    phases = Phases()
    criterion = phases.wrap("loss", nn.CrossEntropyLoss())
    forward = phases.wrap("forward", model)
    select = phases.wrap("batch", lambda index: (x.index_select(0, index), labels[index]))
    zero_grad = phases.wrap("zero_grad", optimizer.zero_grad)
    step = phases.wrap("solver step", optimizer.step)
    backward = phases.wrap("backward", torch.Tensor.backward)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for first in range(0, len(x), batch_size):
            begin = clock()
            inputs, targets = select(order[first:first + batch_size])
            loss = criterion(forward(inputs), targets)
            zero_grad()
            backward(loss)
            step()
            phases.times["learning"].append(clock() - begin)
    steps = len(phases.times["learning"])
    return _table(phases, steps, ("batch", "forward", "loss", "zero_grad", "backward",
                                  "solver step"), "learning")


def _table(phases: Phases, steps: int, names, total: str) -> Dict[str, List[float]]:
    table = {name: phases.per_step(name, steps) for name in names}
    table["step (all)"] = phases.per_step(total, steps)
    table["rest"] = [all_ - sum(table[name][i] for name in names)
                     for i, all_ in enumerate(table["step (all)"])]
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=str(bench_train.DEFAULT_DATA))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="profile_train_") as folder:
        scratch = Path(folder)
        ini, environ, what = bench_train._setup(args, scratch)
        trainer = bench_train._trainer(ini, environ, args.epochs, args.threads,
                                       scratch / "n2prune")
        x, labels = trainer.provider.batch("Learn", torch.arange(trainer.provider.epoch_size))
        amount = max(c.quantizer.get_current_threshold()
                     for c in trainer.net.pruned_cells().values())
        model, groups = bench_train.hand_written_model(trainer, amount)
        batch = trainer.batch_size
        trainer.close()
        optimizer = torch.optim.SGD(groups, lr=groups[0]["lr"])
        generator = torch.Generator().manual_seed(1)
        profile_hand_written(model, optimizer, x, labels, batch, 1, generator)  # warm-up
        ours = profile_n2prune(ini, environ, args.epochs, args.threads, scratch / "n2prune")
        theirs = profile_hand_written(model, optimizer, x, labels, batch, args.epochs,
                                      generator)
    print(f"{ini.name} on {what}, batch {batch}, {args.epochs} epoch(s), "
          f"{torch.get_num_threads()} thread(s); CPU microseconds per step, median (mean)")
    print(f"{'phase':<14} {'n2prune':>18} {'hand-written':>18} {'difference':>12}")
    for name in ours:
        a, b = ours[name], theirs.get(name, [0.0])
        print(f"{name:<14} {statistics.median(a):9.1f} ({statistics.mean(a):6.1f}) "
              f"{statistics.median(b):9.1f} ({statistics.mean(b):6.1f}) "
              f"{statistics.median(a) - statistics.median(b):+12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
