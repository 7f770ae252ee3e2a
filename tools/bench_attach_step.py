"""Training with masks on a plain torch model: n2prune.attach + Pruner against
torch.nn.utils.prune, step for step.

    python tools/bench_attach_step.py [--steps 60] [--every 10] [--repeats 5] [--batch 32]

A torchvision-style ResNet (BasicBlocks with BatchNorm and projection shortcuts, 32x32
inputs, 10 classes) learns with torch.optim.SGD (momentum 0.9) while its Conv and Linear
weights are pruned to 90 % by global magnitude on the cubic schedule (Zhu & Gupta: from 0 at
the start to 90 % at 75 % of the steps, masks updated every ``--every`` steps):

- n2prune: ``attach(model, prune_filler="Magnitude", scope="Global", schedule="Cubic", ...)``
  and a ``Pruner`` whose hooks the loop calls;
- torch: ``prune.identity`` on the same layers, then at the same steps
  ``global_unstructured(..., L1Unstructured, amount=<the weights the schedule adds>)``;
- dense: the same loop without pruning (the floor both pay against).

Each repeat times the whole run (forward, backward, optimiser step, mask updates) on a fresh
copy of the same model and batches; the three alternate their order (the machine is noisy).
Prints the median step time of each and the ratios n2prune / torch and n2prune / dense
(medians of the repeats' ratios), and the sparsity each reached.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn
from torch.nn.utils import prune

import n2prune
from n2prune.prune.fillers import zeros_target
from n2prune.prune.schedules import HORIZON_FRACTION, cubic

from bench_compact import Block  # torchvision's BasicBlock (tools/ is the script's folder)

TARGET = 0.9


class ResNet(nn.Module):
    """A small torchvision-style ResNet for 32x32 inputs."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.blocks = nn.Sequential(Block(width, width, 1, False),
                                    Block(width, 2 * width, 2, True),
                                    Block(2 * width, 4 * width, 2, True))
        self.fc = nn.Linear(4 * width, 10)

    def forward(self, x):
        x = self.blocks(torch.relu_(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _layers(model: nn.Module) -> List[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _schedule(steps: int, every: int, batch: int, size: int) -> Dict[int, int]:
    """Step -> weights pruned after it, as the Pruner's cubic schedule counts them."""
    end = HORIZON_FRACTION * steps * batch
    wanted = {}
    for step in range(1, steps + 1):
        t = math.floor(step * batch / (every * batch)) * every * batch
        wanted[step] = zeros_target(cubic(t, 0.0, end, 0.0, TARGET), size)
    return wanted


def run(kind: str, base: nn.Module, batches: List[Tuple[torch.Tensor, torch.Tensor]],
        every: int) -> Tuple[float, float]:
    """(seconds per step, sparsity reached) of one whole run."""
    model = copy.deepcopy(base).train()
    layers = _layers(model)
    size = sum(layer.weight.numel() for layer in layers)
    batch, steps = len(batches[0][1]), len(batches)
    pruner, wanted, pruned = None, _schedule(steps, every, batch, size), 0
    if kind == "n2prune":
        cells = n2prune.attach(model, prune_mode="Gradual", prune_filler="Magnitude",
                               scope="Global", schedule="Cubic", start=0.0, threshold=TARGET,
                               frequency=every * batch)
        pruner = n2prune.Pruner(cells, horizon=steps * batch)
    elif kind == "torch":
        for layer in layers:
            prune.identity(layer, "weight")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for step, (x, labels) in enumerate(batches, 1):
        loss = criterion(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        if pruner is not None:
            pruner.on_before_optimizer_step()
        optimizer.step()
        if pruner is not None:
            pruner.on_step_end(batch)
        elif kind == "torch" and wanted[step] > pruned:
            prune.global_unstructured([(layer, "weight") for layer in layers],
                                      pruning_method=prune.L1Unstructured,
                                      amount=wanted[step] - pruned)
            pruned = wanted[step]
    seconds = (time.perf_counter() - start) / steps
    if pruner is not None:
        return seconds, pruner.sparsity()
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers)
    return seconds, zeros / size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--every", type=int, default=10, help="steps between mask updates")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed repeats")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    for name in ("steps", "every", "repeats", "batch"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = ResNet()
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(args.batch, 3, 32, 32, generator=generator),
                torch.randint(0, 10, (args.batch,), generator=generator))
               for _ in range(args.steps)]
    kinds = ["n2prune", "torch", "dense"]
    print(f"ResNet ({sum(p.numel() for p in base.parameters())} parameters), batch "
          f"{args.batch}, {args.steps} steps, cubic to {TARGET:.0%} at 75 % of them, masks "
          f"every {args.every} steps, 1 thread, {args.repeats} alternating repeats")
    run("dense", base, batches[:3], args.every)  # warm-up
    times: Dict[str, List[float]] = {kind: [] for kind in kinds}
    reached: Dict[str, float] = {}
    for repeat in range(args.repeats):
        for kind in kinds if repeat % 2 == 0 else kinds[::-1]:
            seconds, reached[kind] = run(kind, base, batches, args.every)
            times[kind].append(seconds)
        print(f"  repeat {repeat + 1}: " + ", ".join(
            f"{kind} {1e3 * times[kind][-1]:.2f} ms" for kind in kinds), flush=True)
    ratio: Callable[[str, str], float] = lambda a, b: statistics.median(
        x / y for x, y in zip(times[a], times[b]))
    for kind in kinds:
        print(f"{kind:8s} {1e3 * statistics.median(times[kind]):7.2f} ms per step (median), "
              f"sparsity {reached[kind]:.4f}")
    print(f"n2prune / torch.nn.utils.prune step time: {ratio('n2prune', 'torch'):.3f}; "
          f"n2prune / dense: {ratio('n2prune', 'dense'):.3f}; torch / dense: "
          f"{ratio('torch', 'dense'):.3f} (medians of the repeats' ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
