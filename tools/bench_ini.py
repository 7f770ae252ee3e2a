"""Time n2prune's INI reader and network builder on ResNet-sized N2D2 files.

Parsing: ``load()`` plus evaluating every key of every section of N2D2's ``ResNet-18.ini``
(with its template), against the standard library's configparser reading the same text (it
cannot do N2D2's syntax, but it gives a scale). Building: ``load_network()`` of ResNet-18 and
of a ResNet-34-layout file (16 residual blocks, 21.8M weights, made from ResNet-18.ini with
N2D2's own block template: ResNet-50's block count), against allocating and filling the same
parameter tensors with torch alone. Medians of several repeats, measured in the same run.

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
from n2prune.ini.inifile import load

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


def resnet34_text(resnet18: str) -> str:
    """ResNet-18.ini with its 2-2-2-2 blocks replaced by ResNet-34's 3-4-6-3."""
    head, rest = resnet18.split("; conv2.x (x2)", 1)
    tail = rest[rest.index("[pool]\n"):]
    blocks, previous = [], "pool1"
    for stage, (count, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=2):
        for index in range(1, count + 1):
            name = f"conv{stage}.{index}"
            first = index == 1
            blocks.append(f"[{name}@${{N2D2_MODELS}}/ResNet-block.ini.tpl]\nINPUT={previous}\n"
                          f"NB_FILTERS=$(int({width} * ${{ALPHA}}))\n"
                          f"STRIDES={2 if first and stage > 2 else 1}\n"
                          + ("PROJECTION_SHORTCUT=1\n" if first else "") + "\n")
            previous = f"{name}_sum"
    tail = tail.replace("conv5.2_sum", previous)
    return head + "".join(blocks) + tail


def _build(path: Path, models: Path):
    from n2prune.network.build import load_network
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_network(str(path), environ={"N2D2_MODELS": str(models)})


def _torch_alone(shapes) -> None:
    import torch
    for shape in shapes:
        torch.empty(shape).normal_(0.0, 0.05)


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
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        resnet34 = Path(tmp) / "ResNet-34-layout.ini"
        resnet34.write_text(resnet34_text(text))
        for label, file in (("ResNet-18", path), ("ResNet-34 layout", resnet34)):
            net = _build(file, args.models)
            shapes = [tuple(p.shape) for p in net.parameters()]
            count = sum(p.numel() for p in net.parameters())
            repeats = max(3, args.repeats // 4)
            parse = _median_seconds(lambda: _n2prune(file, args.models), repeats)
            build = _median_seconds(lambda: _build(file, args.models), repeats)
            alone = _median_seconds(lambda: _torch_alone(shapes), repeats)
            print(f"{label}: {len(net.cells)} cells, {count:,} parameters: parse "
                  f"{parse:.4f} s, parse + build {build:.3f} s; torch alone allocating and "
                  f"filling the parameters {alone:.3f} s (ratio {build / alone:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
