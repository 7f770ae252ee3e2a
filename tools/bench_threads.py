"""Learning throughput with n2prune-train's default thread settings against --threads 1 (and
--threads <cores>, torch's own default), on a quiet machine and while a competing CPU-bound
process runs.

Each measurement is a fresh ``python -m n2prune NET -learn-epoch E`` process (thread settings
are fixed when torch starts) with OMP_NUM_THREADS and MKL_NUM_THREADS removed from its
environment, so "default" means what a user gets. Throughput is report.json's learning
stimuli per second. Variants and conditions alternate within each repeat (the machine is
noisy); the ratios printed are of medians over the repeats.

    python tools/bench_threads.py                      # digits.ini, 3 epochs, 5 repeats
    python tools/bench_threads.py --repeats 3 --competitor train
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.9  # default >= 0.9x --threads 1 under competition (issue 8, item 6)


def _environ() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    return env


def measure(ini: str, epochs: int, flags: List[str], output: Path) -> float:
    """Learning throughput (stimuli/s) of one fresh n2prune-train process."""
    command = [sys.executable, "-m", "n2prune", ini, "-learn-epoch", str(epochs), "-seed", "1",
               "--quiet", "--overwrite", "--output", str(output), *flags]
    subprocess.run(command, check=True, env=_environ(), stdout=subprocess.DEVNULL)
    return json.loads((output / "report.json").read_text())["throughput"]


def start_competitor(kind: str, ini: str, folder: Path) -> subprocess.Popen:
    """A CPU-bound process: a busy Python loop, or another (long) default n2prune run."""
    if kind == "busy":
        command = [sys.executable, "-c", "while True: pass"]
    else:
        command = [sys.executable, "-m", "n2prune", ini, "-learn-epoch", "100000",
                   "--quiet", "--overwrite", "--output", str(folder / "competitor")]
    process = subprocess.Popen(command, env=_environ(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(3.0)  # past its start-up
    return process


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ini", default=str(ROOT / "networks" / "digits.ini"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--competitor", choices=("busy", "train"), default="busy")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    variants = {"default": [], "--threads 1": ["--threads", "1"],
                f"--threads {cores}": ["--threads", str(cores)]}
    results: Dict[str, Dict[str, List[float]]] = {
        c: {v: [] for v in variants} for c in ("quiet", "competing")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for repeat in range(args.repeats):
            order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for condition in ("quiet", "competing") if repeat % 2 == 0 else \
                    ("competing", "quiet"):
                competitor = start_competitor(args.competitor, args.ini, folder) \
                    if condition == "competing" else None
                try:
                    for name in order:
                        rate = measure(args.ini, args.epochs, variants[name],
                                       folder / name.replace(" ", "_"))
                        results[condition][name].append(rate)
                finally:
                    if competitor is not None:
                        competitor.kill()
                        competitor.wait()
            print(f"repeat {repeat + 1}: " + "; ".join(
                f"{c} " + ", ".join(f"{n} {results[c][n][-1]:.0f}" for n in variants)
                for c in results), flush=True)
    print(f"\n{Path(args.ini).name}, {args.epochs} epochs, {args.repeats} repeats, {cores} "
          f"cores, competitor: {args.competitor}, load average before: "
          f"{os.getloadavg()[0]:.2f}")
    for condition, rates in results.items():
        medians = {name: statistics.median(values) for name, values in rates.items()}
        base = medians["--threads 1"]
        shown = ", ".join(f"{name} {rate:.0f} stim/s ({rate / base:.2f}x)"
                          for name, rate in medians.items())
        print(f"{condition:9s}: {shown}")
    ratio = statistics.median(results["competing"]["default"]) / \
        statistics.median(results["competing"]["--threads 1"])
    quiet = statistics.median(results["quiet"]["default"]) / \
        statistics.median(results["quiet"][f"--threads {cores}"])
    print(f"default / --threads 1 while competing: {ratio:.2f} (goal >= {GOAL}); "
          f"default / --threads {cores} (torch's default) when quiet: {quiet:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
