"""Pruning criteria compared in one run: networks/lenet.ini on the MNIST subset.

    python tools/bench_criteria.py [--epochs 10] [--seeds 1] [--sparsities 0.9 0.95 0.98]
        [--criteria Magnitude Snip ...] [--channel-criteria L1Norm FPGM ...] [--scopes Layer Global]
        [--data ../shared/data/mnist-10k] [--markdown]

Unstructured: every criterion at each sparsity (every pruned layer in Layer scope, one ranking
over all of them in Global scope), Gradual with the Cubic schedule from epoch 1 to 60 % of
learning, four steps per epoch, statistics from 8 calibration batches before each step; the
dense network and ``torch.nn.utils.prune.global_unstructured`` (L1, same cubic steps, same
loop) as references. Channels: each channel criterion removes 50 % of the output channels of
conv1, conv2 and fc1 (not the classifier), same schedule; the MACs those channels cost are
reported as saved. Same data order, initial weights and hyper-parameters (lenet.ini's: SGD
0.05, momentum 0.9, decay 1e-4, cosine decay, batch 64) for every row of a seed. Test
accuracy of the final weights on the 2,000 test images, learning on all 8,000 training
images (no validation split, no best-point selection). Takes minutes; not a CI test.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils import prune as torch_prune

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import n2prune  # noqa: E402
from n2prune.data.formats import find_file, read_idx_pair  # noqa: E402
from n2prune.prune.pruner import Pruner  # noqa: E402
from n2prune.prune.schedules import cubic  # noqa: E402

LAYERS = ("conv1", "conv2", "fc1", "fc2")
CHANNEL_LAYERS = ("conv1", "conv2", "fc1")
# MagGrad and Taylor rank single weights exactly as Snip does (|w·g|, (w·g)²), Percentile and
# MagnitudeThreshold with their default ranges as Magnitude: give them with --criteria to see.
UNSTRUCTURED = ("Magnitude", "LAMP", "Snip", "SnipMomentum", "ActivationMagnitude", "MagAct",
                "Random")
CHANNEL = ("L1Norm", "L2Norm", "FPGM", "Taylor", "APoZ", "Entropy", "Variance",
           "ActivationNorm")
BATCH, STEPS_PER_EPOCH, CALIBRATION = 64, 4, 8


def load(data: Path):
    hint = "use --data DIR"
    images, labels = read_idx_pair(find_file(str(data), "train-images-idx3-ubyte", hint),
                                   find_file(str(data), "train-labels-idx1-ubyte", hint))
    test_x, test_y = read_idx_pair(find_file(str(data), "t10k-images-idx3-ubyte", hint),
                                   find_file(str(data), "t10k-labels-idx1-ubyte", hint))
    def prep(x, y):
        x = torch.from_numpy(np.array(x)).float().permute(0, 3, 1, 2) / 255.0
        return x, torch.from_numpy(np.asarray(y)).long()
    return prep(images, labels), prep(test_x, test_y)


def network(seed: int):
    """lenet.ini's layers with its own pruning removed (the rows attach theirs)."""
    torch.manual_seed(seed)
    net = n2prune.load_network(str(ROOT / "networks" / "lenet.ini"))
    for name in LAYERS:
        net.cells[name].quantizer = None
    return net


def macs(net, kept: Optional[Dict[str, int]] = None) -> int:
    """Multiply-accumulates of one image through the weighted layers, with ``kept`` output
    channels per layer (the next layer loses the matching inputs)."""
    kept = kept or {}
    out = {name: kept.get(name, net.cells[name].weight.shape[0]) for name in LAYERS}
    conv1 = net.cells["conv1"].weight
    total = 28 * 28 * out["conv1"] * conv1.shape[1] * 25
    total += 10 * 10 * out["conv2"] * out["conv1"] * 25
    total += out["fc1"] * out["conv2"] * 25
    total += out["fc2"] * out["fc1"]
    return total


def train(net, learn, epochs: int, seed: int, pruner=None,
          torch_schedule: Optional[Callable[[int], float]] = None) -> float:
    x, y = learn
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    steps = epochs * math.ceil(len(x) / BATCH)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    step = 0
    if pruner is not None:
        pruner.on_train_begin()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        net.train()
        if pruner is not None:
            pruner.on_epoch_begin(epoch)
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            if pruner is not None:
                pruner.on_step_begin(step)
            out = net(x[idx])
            loss = F.nll_loss(torch.log(out.clamp_min(1e-12)), y[idx])
            if pruner is not None:
                loss = loss + pruner.penalty()
            optimizer.zero_grad()
            loss.backward()
            if pruner is not None:
                pruner.on_before_optimizer_step()
            optimizer.step()
            scheduler.step()
            step += 1
            if pruner is not None:
                pruner.on_step_end(len(idx))
            if torch_schedule is not None:
                torch_schedule(step * BATCH)
        if pruner is not None:
            pruner.on_epoch_end()
    if pruner is not None:
        pruner.on_train_end()
    return step


@torch.no_grad()
def accuracy(net, test) -> float:
    net.eval()
    x, y = test
    correct = sum(int((net(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum())
                  for i in range(0, len(x), 500))
    return correct / len(x)


def schedule_args(epochs: int, epoch_size: int) -> dict:
    return {"prune_mode": "Gradual", "schedule": "Cubic", "start": 0.0, "begin_epochs": 1.0,
            "end_epochs": max(1.0, 0.6 * epochs), "frequency": epoch_size // STEPS_PER_EPOCH}


def run_n2prune(criterion: str, sparsity: float, scope: str, pattern: str, layers, args,
                learn, test, seed: int) -> Dict[str, float]:
    net = network(seed)
    epoch_size = len(learn[0])
    criteria = n2prune.prune.CRITERIA
    extra = {"calibration_batches": CALIBRATION} \
        if criterion in criteria and criteria.get(criterion).needs else {}
    if scope == "Global" and args.min_keep:
        extra["min_keep"] = args.min_keep
    cells = n2prune.attach(net, include=[f"layers.{name}" for name in layers],
                           prune_filler=criterion, threshold=sparsity,
                           scope=scope, pattern=pattern, seed=seed,
                           **schedule_args(args.epochs, epoch_size), **extra)
    pruner = Pruner(cells, epoch_size=epoch_size, epochs=args.epochs)
    train(net, learn, args.epochs, seed, pruner)
    result = {"accuracy": accuracy(net, test), "sparsity": pruner.sparsity()}
    if pattern == "Channel":
        kept = {name.split(".")[-1]: int((cell.mask.reshape(cell.mask.shape[0], -1).sum(1)
                                           > 0).sum()) for name, cell in cells.items()}
        result["macs_saved"] = 1.0 - macs(net, kept) / macs(net)
    return result


def run_torch_global(sparsity: float, args, learn, test, seed: int) -> Dict[str, float]:
    net = network(seed)
    params = [(net.cells[name], "weight") for name in LAYERS]
    sched = schedule_args(args.epochs, len(learn[0]))
    begin = sched["begin_epochs"] * len(learn[0])
    end = sched["end_epochs"] * len(learn[0])
    state = {"pruned": 0.0, "next": begin + sched["frequency"]}

    def step(position: int) -> None:
        if position < state["next"]:
            return
        state["next"] += sched["frequency"]
        target = cubic(position, begin, end, 0.0, sparsity)
        if target <= state["pruned"]:
            return
        amount = (target - state["pruned"]) / (1.0 - state["pruned"])
        torch_prune.global_unstructured(params, torch_prune.L1Unstructured, amount=amount)
        state["pruned"] = target

    train(net, learn, args.epochs, seed, torch_schedule=step)
    zeros = sum(int((getattr(m, "weight") == 0).sum()) for m, _ in params)
    total = sum(m.weight.numel() for m, _ in params)
    return {"accuracy": accuracy(net, test), "sparsity": zeros / total}


def run_dense(args, learn, test, seed: int) -> Dict[str, float]:
    net = network(seed)
    train(net, learn, args.epochs, seed)
    return {"accuracy": accuracy(net, test), "sparsity": 0.0}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.95, 0.98])
    parser.add_argument("--criteria", nargs="*", default=list(UNSTRUCTURED))
    parser.add_argument("--channel-criteria", nargs="*", default=list(CHANNEL))
    parser.add_argument("--scopes", nargs="+", default=["Layer", "Global"])
    parser.add_argument("--min-keep", type=float, default=0.0,
                        help="Global scope: smallest kept fraction of each layer")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist-10k"))
    parser.add_argument("--markdown", action="store_true", help="print README tables")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    learn, test = load(Path(args.data))
    rows: Dict[str, Dict[str, List[float]]] = {}

    def record(row: str, column: str, result: Dict[str, float], started: float) -> None:
        rows.setdefault(row, {}).setdefault(column, []).append(result["accuracy"])
        if "macs_saved" in result:
            rows[row].setdefault("macs", []).append(result["macs_saved"])
        print(f"{row:<28} {column:<6} acc {100 * result['accuracy']:.2f}%  sparsity "
              f"{100 * result['sparsity']:.1f}%"
              + (f"  MACs saved {100 * result['macs_saved']:.1f}%" if "macs_saved" in result
                 else "") + f"  ({time.time() - started:.0f} s)", flush=True)

    columns = [f"{round(100 * s)}%" for s in args.sparsities]
    for seed in args.seeds:
        started = time.time()
        record("dense", "dense", run_dense(args, learn, test, seed), started)
        for sparsity, column in zip(args.sparsities, columns):
            started = time.time()
            record("torch.nn.utils.prune global L1", column,
                   run_torch_global(sparsity, args, learn, test, seed), started)
            for criterion in args.criteria:
                for scope in args.scopes:
                    if criterion not in n2prune.prune.CRITERIA and scope == "Global":
                        continue  # a mask filler (Random) has no scores to rank globally
                    started = time.time()
                    record(f"{criterion} ({scope})", column,
                           run_n2prune(criterion, sparsity, scope, "Unstructured", LAYERS, args,
                                       learn, test, seed), started)
        for criterion in args.channel_criteria:
            started = time.time()
            record(f"channels: {criterion}", "50%",
                   run_n2prune(criterion, 0.5, "Layer", "Channel", CHANNEL_LAYERS, args,
                               learn, test, seed), started)
    if args.markdown:
        print_tables(rows, columns, args)


def print_tables(rows, columns, args) -> None:
    mean = {row: {col: statistics.mean(v) for col, v in cols.items()} for row, cols in rows.items()}
    dense = mean.get("dense", {}).get("dense")
    unstructured = [r for r in mean if not r.startswith("channels:") and r != "dense"]
    best = {c: max((mean[r][c] for r in unstructured if c in mean[r]), default=None)
            for c in columns}
    print(f"\nseeds {args.seeds}, {args.epochs} epochs, Global min_keep {args.min_keep:g}; "
          f"dense: {100 * dense:.2f} %\n")
    print("| criterion (scope) | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for row in unstructured:
        cells = []
        for c in columns:
            value = mean[row].get(c)
            text = "–" if value is None else f"{100 * value:.2f}"
            cells.append(f"**{text}**" if value is not None and value == best[c] else text)
        print(f"| {row} | " + " | ".join(cells) + " |")
    channel = [r for r in mean if r.startswith("channels:")]
    if channel:
        top = max(mean[r]["50%"] for r in channel)
        print("\n| channel criterion (50 % of conv1, conv2, fc1 channels) | accuracy | "
              "MACs saved |\n|---|---|---|")
        for row in channel:
            acc = f"{100 * mean[row]['50%']:.2f}"
            acc = f"**{acc}**" if mean[row]["50%"] == top else acc
            print(f"| {row[len('channels: '):]} | {acc} | {100 * mean[row]['macs']:.1f} % |")


if __name__ == "__main__":
    main()
