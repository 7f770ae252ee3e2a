"""The channel benchmark's digit tasks, made in memory from mnist-10k (lenet.ini's split:
Learn 7,200, Validation 800, Test 2,000): ``digits``, resized to 16x16, and ``cluttered_digits``.

Cluttered MNIST, as in Mnih et al. 2014 ("Recurrent Models of Visual Attention") and Jaderberg
et al. 2015 ("Spatial Transformer Networks"): each digit at a random place on a larger black
canvas, under a few small crops of *other* digits as clutter.

Scaled to a 2-core machine: a 40x40 canvas (theirs: 60x60) and 6 crops of 6x6 (the Spatial
Transformer paper's 6 pieces of 6x6; Mnih et al. use 4 of 8x8), each crop taken from the
central 20x20 of its digit (MNIST centres each digit's 20x20 box in the 28x28 image, so a crop
there holds ink). Pixels combine by their maximum, so the order of drawing does not matter.
Clutter for Learn and Validation comes only from Learn images, for Test only from Test images:
nothing of Learn reaches Test. Drawn from one ``torch.Generator`` seeded by ``seed``, so a seed
gives the same sets every time.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F

from bench_prune_accuracy import ROOT
from n2prune.train.trainer import Trainer, TrainOptions

SIZE = 16
CANVAS = 40
PIECES = 6
PIECE = 6
DIGIT = 28
INK = (4, 24)          # rows and columns of the 20x20 box MNIST centres each digit in

Sets = Dict[str, Tuple[torch.Tensor, torch.Tensor]]


def clutter(images: torch.Tensor, pool: torch.Tensor, generator: torch.Generator,
            canvas: int = CANVAS, pieces: int = PIECES, piece: int = PIECE,
            skip_self: bool = False) -> torch.Tensor:
    """``images`` (N, 1, 28, 28), each at a random place on a ``canvas`` x ``canvas`` canvas
    with ``pieces`` random ``piece`` x ``piece`` crops of random images of ``pool`` at random
    places. ``skip_self``: ``pool`` is ``images`` itself, and no image is cluttered with
    pieces of itself."""
    count, size = len(images), images.shape[-1]
    if images.shape[1:] != (1, DIGIT, DIGIT) or pool.shape[1:] != (1, DIGIT, DIGIT):
        raise ValueError(f"clutter: images {tuple(images.shape)} and pool {tuple(pool.shape)} "
                         f"must be (N, 1, {DIGIT}, {DIGIT}) digits")
    if not DIGIT <= canvas or not 1 <= piece <= INK[1] - INK[0] or pieces < 0:
        raise ValueError(f"clutter: canvas {canvas}, piece {piece}, pieces {pieces}: the canvas "
                         f"must hold a digit ({DIGIT}), a piece fit the 20x20 ink box (1-20), "
                         f"pieces be >= 0")
    if skip_self and len(pool) < 2:
        raise ValueError("clutter: skip_self needs a pool of at least 2 images")
    places = torch.randint(canvas - size + 1, (count, 2), generator=generator)
    if skip_self:
        sources = (torch.arange(count)[:, None]
                   + torch.randint(1, len(pool), (count, pieces), generator=generator)) % len(pool)
    else:
        sources = torch.randint(len(pool), (count, pieces), generator=generator)
    crops = INK[0] + torch.randint(INK[1] - INK[0] - piece + 1, (count, pieces, 2),
                                   generator=generator)
    spots = torch.randint(canvas - piece + 1, (count, pieces, 2), generator=generator)
    out = torch.zeros(count, 1, canvas, canvas, dtype=images.dtype)
    for i in range(count):
        y, x = places[i].tolist()
        out[i, :, y:y + size, x:x + size] = images[i]
        for source, (cy, cx), (sy, sx) in zip(sources[i].tolist(), crops[i].tolist(),
                                              spots[i].tolist()):
            region = out[i, :, sy:sy + piece, sx:sx + piece]
            torch.maximum(region, pool[source, :, cy:cy + piece, cx:cx + piece], out=region)
    return out


def cluttered(sets: Sets, seed: int, canvas: int = CANVAS, pieces: int = PIECES,
              piece: int = PIECE) -> Sets:
    """Learn, Validation and Test of ``sets`` (28x28 digits, labels unchanged) cluttered:
    Learn and Validation with pieces of Learn images, Test with pieces of Test images."""
    generator = torch.Generator().manual_seed(seed)
    learn = sets["Learn"][0]
    args = dict(canvas=canvas, pieces=pieces, piece=piece)
    return {"Learn": (clutter(learn, learn, generator, skip_self=True, **args),
                      sets["Learn"][1]),
            "Validation": (clutter(sets["Validation"][0], learn, generator, **args),
                           sets["Validation"][1]),
            "Test": (clutter(sets["Test"][0], sets["Test"][0], generator, skip_self=True,
                             **args), sets["Test"][1])}


def mnist(environ, seed: int, scratch: Path) -> Sets:
    """mnist-10k's Learn, Validation and Test sets (lenet.ini's split), 28x28."""
    trainer = Trainer(str(ROOT / "networks" / "lenet.ini"), TrainOptions(
        learn_epoch=1, seed=seed, threads=1, quiet=True, output=str(scratch / "v"),
        overwrite=True, environ=environ))
    provider = trainer.provider
    sets = {}
    for name in ("Learn", "Validation", "Test"):
        x, labels = provider.batch(name, torch.arange(provider.size(name)))
        sets[name] = (x, labels.reshape(-1).long() if labels.dim() == 1
                      else labels.argmax(1).long())
    trainer.close()
    return sets


def digits(environ, seed: int, scratch: Path) -> Sets:
    """mnist-10k's sets resized to 16x16 (``--task digits``)."""
    return {name: (F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True,
                                 align_corners=False), labels)
            for name, (x, labels) in mnist(environ, seed, scratch).items()}


def cluttered_digits(environ, seed: int, scratch: Path, canvas: int = CANVAS) -> Sets:
    """mnist-10k's 28x28 sets as cluttered MNIST on a ``canvas`` x ``canvas`` canvas, drawn
    from ``seed`` (``--task cluttered``)."""
    return cluttered(mnist(environ, seed, scratch), seed, canvas)


@dataclass(frozen=True)
class Task:
    """A ``--task``: the side of its images for a ``--canvas``, its name in the tables, and
    ``load(environ, seed, scratch, canvas)``, its sets."""

    size: Callable[[int], int]
    title: Callable[[int], str]
    load: Callable[[Dict[str, str], int, Path, int], Sets]


TASKS: Dict[str, Task] = {
    "digits": Task(lambda canvas: SIZE, lambda canvas: f"digits {SIZE}x{SIZE}",
                   lambda environ, seed, scratch, canvas: digits(environ, seed, scratch)),
    "cluttered": Task(lambda canvas: canvas,
                      lambda canvas: f"cluttered MNIST {canvas}x{canvas}, {PIECES} pieces of "
                                     f"{PIECE}x{PIECE}",
                      lambda environ, seed, scratch, canvas: cluttered_digits(
                          environ, seed, scratch, canvas))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--task`` and ``--canvas``."""
    parser.add_argument("--task", choices=sorted(TASKS), default="digits",
                        help="digits: mnist-10k resized to 16x16 (default); cluttered: "
                             "cluttered MNIST, each 28x28 digit at a random place on a "
                             f"--canvas square with {PIECES} crops of {PIECE}x{PIECE} of other "
                             "digits")
    parser.add_argument("--canvas", type=int, default=CANVAS,
                        help=f"with --task cluttered: the canvas side (default {CANVAS})")
