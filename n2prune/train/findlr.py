"""N2D2's ``-find-lr N``: the learning rate range test (spec §7, §3.3).

Over ceil(N / BatchSize) random Learn batches the learning rate grows exponentially from 1e-6
to 10 (the i-th batch learns at ``1e-6 · (10 / 1e-6)^(i / steps)``); the rate overrides every
solver's own (its policy, ``LearningRate=0`` and ``IterationSize`` included, as N2D2's global
override does), momentum and decay are kept. For each target, ``find_lr_<target>.dat`` (lines
``<learning rate> <loss>``, the loss of that batch) and ``find_lr_<target>.png`` are written
atomically in the output folder, then the run stops: nothing else is written, the weights
learnt on the way are discarded. The masks stay as they are (no pruning step is taken).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Dict, List

import torch

from n2prune.atomic import atomic_write_text
from n2prune.train.plots import plot_find_lr

START_LR, END_LR = 1.0e-6, 10.0


def find_lr_rates(stimuli: int, batch_size: int) -> List[float]:
    """The rate of each batch of a range test over ``stimuli`` stimuli."""
    steps = max(1, math.ceil(stimuli / batch_size))
    return [START_LR * (END_LR / START_LR) ** (i / steps) for i in range(steps)]


def find_learning_rate(trainer: Any) -> Dict[str, Any]:
    """Run the range test of ``trainer`` (``options.find_lr`` stimuli) and write its files;
    returns ``{"find_lr": {target section: file}}``."""
    if trainer.ranks.world > 1:
        raise ValueError("-find-lr runs in one process: drop --nproc / torchrun")
    if trainer.provider.epoch_size == 0:
        raise ValueError("-find-lr: the Learn set is empty (check [database] and its "
                         "fractions)")
    rates = find_lr_rates(trainer.options.find_lr, trainer.batch_size)
    losses: List[List[float]] = [[] for _ in trainer.objectives]
    net = trainer.net.train()
    for step, rate in enumerate(rates):
        _override(trainer.optimizers, rate)
        x, labels = trainer.provider.random_batch("Learn", trainer.generator)
        outputs = net.outputs(x, trainer._keep)
        each = [objective.loss(outputs, labels) for objective in trainer.objectives]
        for optimizer in trainer.optimizers:
            optimizer.zero_grad(set_to_none=False)
        sum(each).backward()
        for optimizer in trainer.optimizers:
            optimizer.step()
        for kept, loss in zip(losses, each):
            kept.append(float(loss.detach()))
        if not trainer.options.quiet and trainer.writes_files:
            print(f"\rFind LR #{step + 1}/{len(rates)} lr={rate:.3g} loss={kept[-1]:.4g}",
                  end="", file=sys.stderr, flush=True)
    if not trainer.options.quiet and trainer.writes_files:
        print(file=sys.stderr)
    written = {}
    for objective, values in zip(trainer.objectives, losses):
        name = objective.target.section
        stem = Path(trainer.output) / f"find_lr_{name}"
        if trainer.writes_files:
            atomic_write_text(stem.with_name(stem.name + ".dat"), "".join(
                f"{rate:.6g} {loss:.6g}\n" for rate, loss in zip(rates, values)))
            plot_find_lr(rates, values, f"Learning rate range test: {name}",
                         stem.with_name(stem.name + ".png"))
        written[name] = str(stem.with_name(stem.name + ".dat"))
    return {"find_lr": written}


def _override(optimizers, rate: float) -> None:
    """Every group learns at ``rate`` on this step (N2D2's global learning rate)."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["learning_rate"] = rate
            if "lr_policy" in group:
                group["lr_policy"] = "None"
            if "iteration_size" in group:
                group["iteration_size"] = 1
                group["pass"] = 0
