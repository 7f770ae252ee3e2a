"""Time n2prune's INI reader on the largest real model file (ResNet-18 with its templates).

Measures ``load()`` plus evaluating every key of every section, several repeats, and prints
the median together with a baseline measured in the same run: the standard library's
configparser reading the same text (it cannot do N2D2's syntax, but it gives a scale).

    python tools/bench_ini.py [--models ../shared/n2d2-models/models] [--repeats 20]
"""

from __future__ import annotations

import argparse
import configparser
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, List, Optional

from n2prune.errors import ConfigError, ConfigWarning
from n2prune.ini import load

DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "shared" / "n2d2-models" / "models"


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _n2prune(path: Path, models: Path) -> int:
    """Load and evaluate every key (computed references fail as they would before a build)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        ini = load(str(path), environ={"N2D2_MODELS": str(models)})
    count = 0
    for section in ini.sections():
        for key in section.keys():
            try:
                section[key]
            except ConfigError:
                pass
            count += 1
    return count


def _configparser(text: str) -> int:
    parser = configparser.ConfigParser(interpolation=None, strict=False,
                                       comment_prefixes=(";", "#"),
                                       inline_comment_prefixes=(";",))
    parser.optionxform = str
    parser.read_string("[__global__]\n" + text)
    return sum(len(parser[name]) for name in parser.sections())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path(os.environ.get(
        "N2D2_MODELS", DEFAULT_MODELS)), help="folder holding ResNet-18.ini and its template")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    path = args.models / "ResNet-18.ini"
    if not path.exists():
        print(f"{path}: not found (use --models)", file=sys.stderr)
        return 2
    text = path.read_text()
    keys = _n2prune(path, args.models)
    ours = _median_seconds(lambda: _n2prune(path, args.models), args.repeats)
    baseline = _median_seconds(lambda: _configparser(text), args.repeats)
    print(f"n2prune load + evaluate {keys} keys: median {ours:.4f} s over {args.repeats} runs")
    print(f"configparser on the same text:  median {baseline:.4f} s")
    print(f"ratio: {ours / baseline:.1f}x the configparser baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
