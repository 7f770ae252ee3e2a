"""Benchmark: learning throughput with 1 process and with 2 (DistributedDataParallel, gloo),
2 CPU threads in all.

    python tools/bench_ddp.py [--epochs 1] [--repeats 3] [--data DIR]

Each repeat runs ``python -m n2prune NET.ini -learn-epoch E`` three times, alternating: one
process with ``--threads 2``, one with ``--threads 1`` (a baseline that does not depend on
intra-op threading, which suffers most on a busy machine), then ``--nproc 2 --threads 1``
(two processes of one thread). NET is
networks/lenet.ini on MNIST from ``--data`` (default ../shared/data/mnist-10k), else
networks/digits.ini. The throughput is the report's: learning stimuli / learning seconds of
rank 0 (start-up, validation, test and checkpoints excluded; gradient all-reduces and waits
for the other rank included). Printed side by side per repeat, with the ratios of the
2-process throughput to each 1-process one, for the best repeats and as the median of the
repeats' ratios.
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
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist-10k"


def network(data: Path, scratch: Path) -> Tuple[Path, Dict[str, str], str]:
    """The INI, the environment and a description: LeNet on MNIST if present, else digits."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if (data / "train-images-idx3-ubyte.gz").exists() \
            or (data / "train-images-idx3-ubyte").exists():
        link = scratch / "data" / "mnist"
        link.parent.mkdir(parents=True)
        link.symlink_to(data.resolve())
        env["N2D2_DATA"] = str(link.parent)
        return ROOT / "networks" / "lenet.ini", env, f"LeNet on MNIST from {data}"
    return ROOT / "networks" / "digits.ini", env, "digits.ini (no MNIST files found)"


def throughput(ini: Path, env: Dict[str, str], epochs: int, output: Path,
               nproc: int, threads: int) -> float:
    """Learning stimuli per second of one run: ``nproc`` processes of ``threads`` threads."""
    command = [sys.executable, "-m", "n2prune", str(ini), "-learn-epoch", str(epochs),
               "-seed", "1", "--quiet", "--overwrite", "--output", str(output),
               "--threads", str(threads)]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return float(json.loads((output / "report.json").read_text())["throughput"])


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (3)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder of MNIST IDX files")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        ini, env, what = network(Path(args.data), scratch)
        print(f"{what}, {args.epochs} epoch(s) per run, 2 threads in all")
        configs = [("1 process x 2 threads", 1, 2), ("1 process x 1 thread", 1, 1),
                   ("2 processes x 1 thread", 2, 1)]
        print("repeat  " + "  ".join(f"{name:>23}" for name, _, _ in configs)
              + "  2x1 / 1x2  2x1 / 1x1")
        results: List[List[float]] = [[] for _ in configs]
        for repeat in range(1, args.repeats + 1):
            for column, (_, nproc, threads) in zip(results, configs):
                column.append(throughput(ini, env, args.epochs, scratch / "run", nproc,
                                         threads))
            row = [column[-1] for column in results]
            print(f"{repeat:>6}  " + "  ".join(f"{v:>16.0f} stim/s" for v in row)
                  + f"  {row[2] / row[0]:>9.3f}  {row[2] / row[1]:>9.3f}")
        best = [max(column) for column in results]
        print("best    " + "  ".join(f"{v:>16.0f} stim/s" for v in best)
              + f"  {best[2] / best[0]:>9.3f}  {best[2] / best[1]:>9.3f}")
        ratios = [[two / one for one, two in zip(results[k], results[2])] for k in (0, 1)]
        print(f"median of the repeats' ratios: 2x1 / 1x2 {statistics.median(ratios[0]):.3f}, "
              f"2x1 / 1x1 {statistics.median(ratios[1]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
