"""Where a learning step's time goes: n2prune's Trainer step against the hand-written step of
``tools/bench_train.py``, phase by phase, alternating step by step in one process.

    OMP_NUM_THREADS=1 python tools/profile_train_step.py [--steps 1000] [--threads 1] [--data DIR]
                                                          [--clock cpu|wall]

Each round runs one n2prune step (the Trainer's own ``_next_batch`` and ``_step``, and the
tally of its loss and accuracy, as its learning loop times them) and one hand-written step
(index_select, forward, CrossEntropyLoss, ``zero_grad``, backward, ``torch.optim.SGD``), in
alternating order, each timed in this process's CPU time (``time.process_time_ns``; at 1
thread other processes on the machine barely disturb it, unlike wall-clock time). On the
n2prune side each phase's callable is wrapped in a timer: drawing the batch, forward, loss,
``zero_grad``, backward, the solver step, the Pruner's hooks; "rest" is the step less those
(the step's own Python, the accuracy and loss hand-over, and a ``zero_grad`` the step does
itself). Printed: each phase's median on both sides and the median of the per-step
differences, then the whole step's, and the ratio of the hand-written step's median to
n2prune's (the like-for-like throughput ratio; > 1: n2prune is faster). Alternating steps keeps the comparison paired against a noisy machine;
each side also runs with caches the other has just used, which makes Python work dearer than
in a run of one side alone. The timers cost a few microseconds a step: "step" times a second Trainer,
without them, in the same rotation (each side runs first, second and third in turn).
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

try:
    from n2prune.train.tally import LearnTally
except ImportError:  # an n2prune that counts the accuracy in the step (before/after runs)
    LearnTally = None

clock = time.process_time_ns
CLOCK_NAMES = {"cpu": "CPU", "wall": "wall-clock"}
PHASES = ("batch", "forward", "loss", "zero_grad", "backward", "solver step", "pruner")


class Phases:
    """CPU nanoseconds per phase, summed over the calls of the current step."""

    def __init__(self) -> None:
        self.times: Dict[str, List[int]] = defaultdict(list)
        self._open: Dict[str, int] = defaultdict(int)

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                self._open[name] += clock() - start
        return timed

    def close_step(self, total: int) -> None:
        for name in PHASES:
            self.times[name].append(self._open.pop(name, 0))
        self.times["step"].append(total)
        self._open.clear()


def _n2prune_side(trainer: Any, phases: Phases, timed: bool) -> Callable[[], None]:
    """One step of the Trainer's loop into ``phases``; with ``timed``, phase by phase
    (``_wrap_trainer``, and backward while the step runs), else the step only."""
    plan, state = trainer._plan(), trainer._fresh_state()
    tally = LearnTally(trainer.objectives[0].estimate) if LearnTally else None
    backward = torch.Tensor.backward
    timed_backward = phases.wrap("backward", backward)
    if timed:
        _wrap_trainer(trainer, phases)

    def step() -> None:
        if timed:
            torch.Tensor.backward = timed_backward   # the Trainer's loss's
        start = clock()
        x, labels = trainer._next_batch(state, plan)
        try:
            result = trainer._step(x, labels)
        finally:
            torch.Tensor.backward = backward
        seen, _ = trainer.ranks.counts(len(labels))
        if tally is not None and isinstance(result[0], torch.Tensor):
            tally.add(result[0], result[1], labels, seen)   # what the loop times with it
        total = clock() - start
        state["batches"] += 1
        phases.close_step(total)
    return step


def _wrap_trainer(trainer: Any, phases: Phases) -> None:
    trainer._next_batch = phases.wrap("batch", trainer._next_batch)
    trainer.ranks.forward = phases.wrap("forward", trainer.ranks.forward)
    for objective in trainer.objectives:
        objective.loss = phases.wrap("loss", objective.loss)
    for optimizer in trainer.optimizers:
        optimizer.zero_grad = phases.wrap("zero_grad", optimizer.zero_grad)
        optimizer.step = phases.wrap("solver step", optimizer.step)
    for hook in ("on_before_optimizer_step", "on_step_end"):
        setattr(trainer.pruner, hook, phases.wrap("pruner", getattr(trainer.pruner, hook)))


def _hand_side(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               labels: torch.Tensor, batch: int, phases: Phases) -> Callable[[], None]:
    criterion = nn.CrossEntropyLoss()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    position = [0]
    model.train()

    def step() -> None:
        start = clock()
        first = position[0]
        position[0] = (first + batch) % (len(x) - batch)
        a = clock()
        index = order[first:first + batch]
        inputs, targets = x.index_select(0, index), labels[index]
        b = clock()
        output = model(inputs)
        c = clock()
        loss = criterion(output, targets)
        d = clock()
        optimizer.zero_grad()
        e = clock()
        loss.backward()
        f = clock()
        optimizer.step()
        g = clock()
        for name, value in zip(PHASES, (b - a, c - b, d - c, e - d, f - e, g - f, 0)):
            phases._open[name] += value
        phases.close_step(g - start)
    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps of each side")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=str(bench_train.DEFAULT_DATA))
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="CPU time (default; at 2 threads it counts spin-waits too) or "
                             "wall-clock time (for 2 threads, on a quiet machine)")
    args = parser.parse_args()
    global clock
    clock = time.perf_counter_ns if args.clock == "wall" else time.process_time_ns
    if args.steps <= 1:
        parser.error(f"--steps must be an integer > 1, got {args.steps}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="profile_train_") as folder:
        scratch = Path(folder)
        ini, environ, what = bench_train._setup(args, scratch)
        trainers = [bench_train._trainer(ini, environ, 2, args.threads, scratch / name)
                    for name in ("timed", "untimed")]
        try:
            trainer = trainers[0]
            x, labels = trainer.provider.batch("Learn",
                                               torch.arange(trainer.provider.epoch_size))
            amount = max(c.quantizer.get_current_threshold()
                         for c in trainer.net.pruned_cells().values())
            model, groups = bench_train.hand_written_model(trainer, amount)
            batch = trainer.batch_size
            optimizer = torch.optim.SGD(groups, lr=groups[0]["lr"])
            ours, whole, theirs = Phases(), Phases(), Phases()
            sides = [_n2prune_side(trainers[0], ours, timed=True),
                     _n2prune_side(trainers[1], whole, timed=False),
                     _hand_side(model, optimizer, x, labels, batch, theirs)]
            for t in trainers:
                t.net.train()
            for _ in range(20):  # warm-up, not counted
                for run in sides:
                    run()
            for phases in (ours, whole, theirs):
                phases.times.clear()
            for i in range(args.steps):   # each side first, second and third in turn
                for k in range(3):
                    sides[(i + k) % 3]()
        finally:
            for t in trainers:
                t.close()
    _report(ours, whole, theirs, args, ini, what, batch)
    return 0


def _report(ours: Phases, whole: Phases, theirs: Phases, args: argparse.Namespace, ini: Path,
            what: str, batch: int) -> None:
    print(f"{ini.name} on {what}, batch {batch}, {args.steps} alternating steps per side, "
          f"{torch.get_num_threads()} thread(s); {CLOCK_NAMES[args.clock]} microseconds per step, "
          f"medians")
    print(f"{'phase':<16} {'n2prune':>9} {'hand-written':>13} {'paired difference':>18}")
    a_rest = [s - sum(ours.times[p][i] for p in PHASES) for i, s in enumerate(ours.times["step"])]
    b_rest = [s - sum(theirs.times[p][i] for p in PHASES)
              for i, s in enumerate(theirs.times["step"])]
    rows = [(name, ours.times[name], theirs.times[name]) for name in PHASES]
    rows += [("rest", a_rest, b_rest), ("step (timers)", ours.times["step"], theirs.times["step"]),
             ("step", whole.times["step"], theirs.times["step"])]
    for name, a, b in rows:
        print(f"{name:<16} {statistics.median(a) / 1e3:9.1f} {statistics.median(b) / 1e3:13.1f} "
              f"{statistics.median(x - y for x, y in zip(a, b)) / 1e3:+18.1f}")
    ratio = statistics.median(theirs.times["step"]) / statistics.median(whole.times["step"])
    print(f"hand-written step / n2prune step, without the phase timers (medians): {ratio:.3f}")


if __name__ == "__main__":
    sys.exit(main())
