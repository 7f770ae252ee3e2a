"""Channel pruning of a ResNet-18 to 50 % of its MACs: uniform channel targets against the
sensitivity budget, same loop, same schedule, paired over seeds (issue 20's second row).

    python tools/bench_budgets_channels.py [--epochs 3] [--seeds 1 2 3 4 5] [--macs 0.5]
                                           [--width 16] [--metric loss] [--dense]
                                           [--analyse 1] [--coupled] [--recalibrate N]
                                           [--one-shot]
                                           [--task cluttered [--canvas 40]]
                                           [--data ../shared/data/mnist-10k]

Reduced to fit a 2-core machine (said in every table): the CIFAR ResNet-18 layout (3x3 stem,
four stages of two BasicBlocks, strides 1 2 2 2, global average pool, one Fc) at base width 16
instead of 64 (16-32-64-128 channels, 8.7 M MACs per image; ``--width 8``: 2.2 M, the first
measurement, where channel steps of 12.5 % leave uniform and budgeted allocations nearly the
same; ``--width 32``: 34.7 M), on mnist-10k's digits resized to
16x16 (Learn 7,200, Validation 800, Test 2,000 images, as networks/lenet.ini splits them), 3
epochs of SGD (momentum 0.9, weight decay 5e-4, lr 0.05 with cosine decay, batch 64).
``--task cluttered``: a harder task from the same images, cluttered MNIST (``digit_tasks``:
each 28x28 digit at a random place on a 40x40 canvas under 6 crops of 6x6 of other digits).

The pruned cells are each BasicBlock's first convolution (``blocks.i.conv1``): its output
channels feed only the block's second convolution, so compaction (``n2prune.compact``) removes
the rows and the next convolution's inputs; the residual sums stay whole. ``--coupled`` also
prunes the four residual streams, each one *unit* of cells pruned together with the Coupled
scope (``n2prune.prune.coupled``): stage k's stream is produced by the stem (stage 0) or the
stage's shortcut convolution and by both blocks' second convolutions, which zero the same
channels, chosen by their summed L1 norms; compaction then removes them from every layer
the stream feeds. Both methods prune
by channel L1 norm (pattern ``Channel``) along a Cubic schedule from the end of epoch 1 to 75 %
of the run, a mask step every quarter epoch, each cell in its own (Layer) scope
(``--analyse E``: from the end of epoch E instead, both methods, the analysis then):

- uniform: every cell (and stream) at the least sparsity whose compacted network keeps at
  most ``--macs``
  of the dense MACs (bisection on the compacted network's MACs). Channel counts are coarse at
  these widths (16 channels: steps of 6.25 %), so it keeps somewhat less than ``--macs``;
- sensitivity: at the end of epoch 1, ``n2prune.sensitivity`` prunes each cell (or stream:
  ``units=``) alone at
  0.1 ... 0.9, 0.95 (L1Norm, Channel) scored on Validation (``--metric``: minus the loss, the
  default, as ``n2prune-train --budget sensitivity`` scores, or the accuracy);
  ``measure_latency`` with the compacted network's MACs as its clock gives each cell's saving
  at widths 0.25 ... 0.9, and ``allocate(result, target, "Latency")`` chooses per-cell
  targets whose compacted network is measured whole (so the MACs target holds with the
  interactions between neighbours). Its target is what the uniform network removes (at least
  ``1 - macs``): it prunes at least as much.

``--one-shot``: the dense network learns every epoch, then each method prunes it at once
(Static) and it is tested without retraining (``--recalibrate N``: after BatchNorm statistics
are re-estimated on N Learn batches, the analysis scoring every point so too). Retrained (no
``--one-shot``), ``--recalibrate N`` changes only the analysis: each point scored after its
BatchNorm statistics are re-estimated, as the training that follows the masks re-estimates them.

Global Magnitude and LAMP rank weights, not MACs: they do not apply to this row. ``--dense``
also trains the unpruned network on each seed (same loop, no pruner): the room there is, i.e.
how much uniform pruning loses at all. Prints the test accuracy per seed, each method's
compacted MACs, the mean and the paired difference (sensitivity minus each other method,
mean ± standard error), and the analysis time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import n2prune  # noqa: E402
from bench_prune_accuracy import (BATCH, DEFAULT_DATA, _environ,  # noqa: E402
                                  learn_epoch, paired_difference)
from digit_tasks import SIZE, TASKS, add_arguments  # noqa: E402
from n2prune.compact.compaction import compact  # noqa: E402
from n2prune.compact.costs import macs  # noqa: E402
from n2prune.prune.coupled import coupled_units  # noqa: E402
from n2prune.prune.recalibration import recalibrate  # noqa: E402
from n2prune.prune.schedules import HORIZON_FRACTION  # noqa: E402
from n2prune.sensitivity import DEFAULT_SPARSITIES, allocate, measure_latency  # noqa: E402

EXAMPLE = torch.zeros(1, 1, SIZE, SIZE)
PRUNE = dict(prune_filler="L1Norm", pattern="Channel")


class Block(nn.Module):
    """A BasicBlock: conv-BN-ReLU, conv-BN, plus the (projected) input, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                  nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class ResNet18(nn.Module):
    """CIFAR ResNet-18's layout at base width ``width``."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for index in range(2):
                blocks.append(Block(cin, cout, 2 if index == 0 and stage > 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


CELLS = [f"blocks.{i}.conv1" for i in range(8)]
STREAM_PRODUCERS = ["stem", "blocks.*.conv2", "blocks.*.skip.0"]
Units = Dict[str, List[str]]


def pruned_units(width: int, coupled: bool = False) -> Units:
    """What each method prunes, by unit: every ``blocks.i.conv1`` alone, and with ``coupled``
    the residual streams ``stream0`` ... ``stream3`` (traced: each stage's cells whose output
    channels are summed)."""
    units = {name: [name] for name in CELLS}
    if coupled:
        found = coupled_units(ResNet18(width), EXAMPLE, include=STREAM_PRODUCERS)
        units.update({f"stream{i}": cells for i, cells in enumerate(found.values())})
    return units


def streams_of(units: Units) -> Units:
    return {name: cells for name, cells in units.items() if cells != [name]}


def attach_units(model: nn.Module, units: Units, thresholds: Dict[str, float],
                 **args) -> Dict[str, n2prune.PruneCell]:
    """A PruneCell on every cell of ``units``, each unit at its threshold: a stream's cells in
    the Coupled scope (traced on EXAMPLE), one attach per unit (seed ``s``: cell i of a unit
    gets ``s + i``, as a single attach gives)."""
    cells: Dict[str, n2prune.PruneCell] = {}
    for name, members in units.items():
        extra = dict(scope="Coupled", example=EXAMPLE) if members != [name] else {}
        cells.update(n2prune.attach(model, include=members, threshold=thresholds[name],
                                    **args, **extra))
    return cells


def example(size: int) -> torch.Tensor:
    """One ``size`` x ``size`` image: compaction folds constants for that size."""
    return torch.zeros(1, 1, size, size)


def compacted_macs(model: nn.Module, size: int = SIZE) -> float:
    """The MACs of ``model`` compacted for ``size`` x ``size`` images."""
    return float(macs(compact(model, example(size), strict=False), (1, size, size))["dense"])


def macs_clock(size: int = SIZE):
    """The 'latency' of each (compacted) network: its MACs on ``size`` x ``size`` images,
    exact and noise-free."""
    def clock(nets) -> Dict[str, float]:
        return {name: float(macs(net, (1, size, size))["dense"]) for name, net in nets.items()}
    return clock


def uniform_sparsity(width: int, keep: float, units: Units = None,
                     size: int = SIZE) -> Tuple[float, float]:
    """The least uniform channel sparsity of ``units`` (default: the conv1s) whose compacted
    network keeps <= ``keep`` MACs on ``size`` x ``size`` images, and the fraction it keeps."""
    units = units or pruned_units(width)
    model = ResNet18(width)
    dense = compacted_macs(model, size)
    low, high = 0.0, 0.99

    def kept(sparsity: float) -> float:
        attach_units(model, units, {name: sparsity for name in units}, prune_mode="Static",
                     **PRUNE)
        fraction = compacted_macs(model, size) / dense
        n2prune.detach(model, bake=False)
        return fraction

    for _ in range(14):
        mid = (low + high) / 2
        low, high = (mid, high) if kept(mid) > keep else (low, mid)
    return high, kept(high)


def minus_loss(model: nn.Module, data) -> float:
    """Minus the cross-entropy on ``data`` (the analysis' metric with --metric loss)."""
    x, labels = data
    was = model.training
    model.eval()
    with torch.no_grad():
        value = float(F.cross_entropy(model(x), labels))
    model.train(was)
    return -value


def accuracy(model: nn.Module, data) -> float:
    x, labels = data
    was = model.training
    model.eval()
    with torch.no_grad():
        correct = int((model(x).argmax(1) == labels).sum())
    model.train(was)
    return correct / len(labels)


METRICS = {"loss": minus_loss, "accuracy": accuracy}


def recalibrated(score, batches: List[torch.Tensor]):
    """``score`` of a network whose BatchNorm statistics are first re-estimated on
    ``batches`` (``n2prune.prune.recalibration``), then put back as they were."""
    def evaluate(model: nn.Module, data) -> float:
        saved = {key: value.clone() for key, value in model.state_dict().items()
                 if key.endswith(("running_mean", "running_var", "num_batches_tracked"))}
        recalibrate(model, batches)
        value = score(model, data)
        model.load_state_dict(saved, strict=False)
        return value
    return evaluate


def sensitivity_budget(model: nn.Module, units: Units, keep: float, sets, metric: str,
                       seed: int, timings: List[float], batches: List[torch.Tensor] = ()
                       ) -> Dict[str, float]:
    """Each unit's sparsity: the analysis of ``model`` on Validation (each point's BatchNorm
    statistics re-estimated on ``batches`` first, when given) and the budget keeping at most
    ``keep`` of the MACs (the seconds it took go to ``timings``)."""
    started = time.perf_counter()
    size = sets["Validation"][0].shape[-1]
    score = recalibrated(METRICS[metric], list(batches)) if batches else METRICS[metric]
    result = n2prune.sensitivity(model, lambda m: score(m, sets["Validation"]),
                                 cells=CELLS, units=streams_of(units),
                                 example=example(size), sparsities=DEFAULT_SPARSITIES,
                                 input_shape=(1, size, size), **_how())
    result.latency = measure_latency(model, result, example=example(size),
                                     timer=macs_clock(size))
    budget = allocate(result, 1.0 - keep, "Latency", ceiling=0.95)
    timings.append(time.perf_counter() - started)
    print(f"  seed {seed} budget: " + ", ".join(
        f"{n.split('.')[1] if n in CELLS else n} {s:.3f}"
        for n, s in budget.sparsities.items()), flush=True)
    return budget.sparsities


def run(method: str, keep: float, uniform: float, seed: int, epochs: int, width: int,
        sets, timings: List[float], metric: str = "loss",
        analyse: int = 1, units: Units = None, one_shot: bool = False,
        recalibration: int = 0) -> Tuple[float, float]:
    """Train once, pruning ``units`` (default: the conv1s) from the end of epoch ``analyse``;
    ``one_shot``: train dense (the same network for every method of a seed), then prune at
    once (Static) and test without retraining, or after re-estimating BatchNorm statistics on
    ``recalibration`` Learn batches (the analysis then scores each point so too; retrained,
    ``recalibration`` changes only the analysis' scores). Returns (test accuracy, compacted
    MACs / dense MACs)."""
    units = units or pruned_units(width)
    torch.manual_seed(seed)
    model = ResNet18(width)
    x, labels = sets["Learn"]
    dense_macs = compacted_macs(model, x.shape[-1])
    size = len(x)
    end = HORIZON_FRACTION * epochs * size
    common = dict(prune_mode="Gradual", schedule="Cubic", start=0.0,
                  frequency=max(1, size // 4), seed=seed, **PRUNE)

    def attach(thresholds: Dict[str, float], begin: float, stop: float):
        cells = attach_units(model, units, thresholds, begin=begin, end=stop, **common)
        return n2prune.Pruner(cells, epoch_size=size, horizon=epochs * size)

    pruner = (attach({n: uniform for n in units}, analyse * size, end)
              if method == "uniform" and not one_shot else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                           epochs * math.ceil(size / BATCH))
    generator = torch.Generator().manual_seed(seed)
    draw = torch.Generator().manual_seed(seed + 7)
    batches = [x[torch.randint(size, (BATCH,), generator=draw)] for _ in range(recalibration)]
    model.train()
    for epoch in range(epochs):
        if epoch == analyse and method == "sensitivity" and not one_shot:
            sparsities = sensitivity_budget(model, units, keep, sets, metric, seed, timings,
                                            batches)
            pruner = attach(sparsities, 0, end - analyse * size)
        learn_epoch(epoch, lambda index: F.cross_entropy(model(x.index_select(0, index)),
                                                         labels[index]),
                    size, optimizer, scheduler, generator, pruner)
    if one_shot and method != "dense":
        sparsities = ({name: uniform for name in units} if method == "uniform" else
                      sensitivity_budget(model, units, keep, sets, metric, seed, timings,
                                         batches))
        attach_units(model, units, sparsities, prune_mode="Static", seed=seed, **PRUNE)
        if batches:
            recalibrate(model, batches)
    return accuracy(model, sets["Test"]), compacted_macs(model, x.shape[-1]) / dense_macs


def _how() -> Dict[str, str]:
    return {"criterion": PRUNE["prune_filler"], "pattern": PRUNE["pattern"]}


LABELS = {"dense": "dense (no pruning)", "uniform": "uniform channel targets",
          "sensitivity": "sensitivity budget"}


def _paired(ours: List[float], theirs: List[float]) -> str:
    """Mean ± standard error of the paired differences, in points."""
    mean, error = paired_difference(ours, theirs)
    return f"{mean:+.2f} ± {0.0 if math.isnan(error) else error:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--macs", type=float, default=0.5, help="MACs kept (fraction)")
    parser.add_argument("--width", type=int, default=16,
                        help="base width (16: 16-32-64-128 channels; CIFAR's ResNet-18 has 64)")
    parser.add_argument("--metric", choices=sorted(METRICS), default="loss",
                        help="the analysis' score on Validation (default: minus the loss)")
    parser.add_argument("--analyse", type=int, default=1, metavar="EPOCH",
                        help="epoch at whose end the analysis runs and both methods start "
                             "pruning (default 1; later: the analysis sees trained weights)")
    parser.add_argument("--coupled", action="store_true",
                        help="also prune the residual streams (stem, second convolutions, "
                             "shortcuts), each one unit pruned with the Coupled scope")
    parser.add_argument("--one-shot", action="store_true",
                        help="train dense for --epochs, then prune at once and test without "
                             "retraining (the analysis on the trained weights)")
    parser.add_argument("--recalibrate", type=int, default=0, metavar="N",
                        help="re-estimate BatchNorm statistics on N Learn batches before "
                             "scoring each analysis point (and, with --one-shot, after "
                             "pruning)")
    add_arguments(parser)
    parser.add_argument("--dense", action="store_true",
                        help="also train the unpruned network on each seed (a reference row)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not args.one_shot and not 1 <= args.analyse < HORIZON_FRACTION * args.epochs:
        parser.error(f"--analyse {args.analyse}: must be an epoch from 1 to before the end of "
                     f"pruning ({HORIZON_FRACTION * args.epochs:g} epochs of --epochs "
                     f"{args.epochs})")
    if not (args.data / "train-images-idx3-ubyte.gz").exists() and \
            not (args.data / "train-images-idx3-ubyte").exists():
        print(f"no MNIST data in {args.data}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    units = pruned_units(args.width, args.coupled)
    task = TASKS[args.task]
    size = task.size(args.canvas)
    uniform, keep = uniform_sparsity(args.width, args.macs, units, size)
    print(f"uniform channel sparsity for at most {100 * args.macs:g} % of the MACs: "
          f"{uniform:.4f}, keeping {100 * keep:.2f} %")
    methods = (["dense"] if args.dense else []) + ["uniform", "sensitivity"]
    results: Dict[str, List[float]] = {method: [] for method in methods}
    kept: Dict[str, List[float]] = {method: [] for method in methods}
    timings: List[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        environ = _environ(args.data, Path(tmp))
        for seed in args.seeds:
            sets = task.load(environ, seed, Path(tmp) / "run", args.canvas)
            for method in results:
                acc, fraction = run(method, keep, uniform, seed, args.epochs, args.width,
                                    sets, timings, args.metric, args.analyse, units,
                                    args.one_shot, args.recalibrate)
                results[method].append(acc)
                kept[method].append(fraction)
                print(f"seed {seed} {method:12} {100 * acc:.2f}  MACs kept "
                      f"{100 * fraction:.2f} %", flush=True)
    pruned = "conv1s and residual streams" if args.coupled else "conv1s"
    print(f"\n| method (ResNet-18 width {args.width}, {pruned} pruned, {task.title(args.canvas)}, "
          f"{args.epochs} epochs, " + ("pruned at once after them, no retraining"
                                       + (f", BatchNorm re-estimated on {args.recalibrate} "
                                          f"batches, " if args.recalibrate else ", ")
                                       if args.one_shot else
                                       f"pruning from epoch {args.analyse}, " +
                                       (f"analysis points after BatchNorm re-estimated on "
                                        f"{args.recalibrate} batches, " if args.recalibrate
                                        else "")) +
          f"{len(args.seeds)} seeds, analysis by {args.metric}) | MACs kept | mean test "
          f"accuracy | sensitivity − method, paired |")
    print("|---|---|---|---|")
    for method in methods:
        paired = "–" if method == "sensitivity" else _paired(results["sensitivity"],
                                                            results[method])
        print(f"| {LABELS[method]} | {100 * max(kept[method]):.1f} % (max) | "
              f"{100 * statistics.mean(results[method]):.2f} % | {paired} |")
    if timings:
        print(f"\nanalysis ({len(units)} units x {len(DEFAULT_SPARSITIES)} points, 800 "
              f"validation images, and the MACs model): median {statistics.median(timings):.1f}"
              f" s, max {max(timings):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
