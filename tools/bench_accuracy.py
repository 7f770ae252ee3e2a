"""Accuracy benchmark: networks/lenet.ini on the MNIST subset, dense and pruned to 90 %.

    python tools/bench_accuracy.py [--epochs 30] [--seeds 1 2] [--data ../shared/data/mnist-10k]

Trains the LeNet twice per seed with n2prune-train: dense (the same file with
``QWeight.PruningFiller=None``, so every mask stays all ones) and as written (Gradual
IterNonStruct to 90 %), and prints both test accuracies and the difference. Goals: dense at
least 97.5 %, pruned at most 0.5 points below dense. Takes minutes; not a CI test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def train(ini: Path, epochs: int, seed: int, data: Path, output: Path) -> dict:
    env = dict(os.environ, N2D2_DATA=str(data))
    subprocess.run([sys.executable, "-m", "n2prune", str(ini), "-learn-epoch", str(epochs),
                    "-seed", str(seed), "--quiet", "--overwrite", "--output", str(output)],
                   check=True, env=env)
    return json.loads((output / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist-10k"))
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "train-images-idx3-ubyte.gz").exists() and \
            not (data / "train-images-idx3-ubyte").exists():
        raise SystemExit(f"MNIST IDX files not found in {data} (use --data DIR)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        (tmp / "data" / "mnist").symlink_to(data.resolve())
        pruned_ini = ROOT / "networks" / "lenet.ini"
        dense_ini = tmp / "lenet-dense.ini"
        dense_ini.write_text(pruned_ini.read_text().replace(
            "QWeight.PruningFiller=IterNonStruct", "QWeight.PruningFiller=None"))
        dense, pruned = [], []
        for seed in args.seeds:
            d = train(dense_ini, args.epochs, seed, tmp / "data", tmp / f"dense{seed}")
            p = train(pruned_ini, args.epochs, seed, tmp / "data", tmp / f"pruned{seed}")
            dense.append(d["test_accuracy"])
            pruned.append(p["test_accuracy"])
            print(f"seed {seed}: dense {100 * d['test_accuracy']:.2f}%  pruned "
                  f"{100 * p['test_accuracy']:.2f}% at sparsity {100 * p['sparsity']:.1f}%  "
                  f"(difference {100 * (p['test_accuracy'] - d['test_accuracy']):+.2f} points; "
                  f"{p['throughput']:.0f} stimuli/s)", flush=True)
    d, p = statistics.mean(dense), statistics.mean(pruned)
    print(f"mean over {len(args.seeds)} seed(s): dense {100 * d:.2f}% (goal >= 97.5%), "
          f"pruned {100 * p:.2f}%, pruned - dense = {100 * (p - d):+.2f} points "
          f"(goal >= -0.5)")


if __name__ == "__main__":
    main()
