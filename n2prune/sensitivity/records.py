"""``sensitivity.csv``: the points of an analysis, written as they finish, read back to resume.

The file starts with one comment line naming what the points belong to (the weights' digest,
the grid, the cells and how each is pruned, and the caller's identity text); a run whose
description differs is refused with one line saying what differs, so a CSV never mixes two
networks or two grids. Each new point rewrites the file atomically (``n2prune.atomic``): a run
killed at any moment leaves the points finished before it.

    # n2prune-sensitivity net=3f2a... grid=0.1 0.2 ... cells=conv1:Magnitude/Unstructured ...
    cell,sparsity,metric,parameters_removed,macs_removed
    (dense),0,0.9825,0,0
    conv1,0.1,0.9825,40,31360
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from n2prune.atomic import atomic_write

DENSE = "(dense)"
COLUMNS = ("cell", "sparsity", "metric", "parameters_removed", "macs_removed")
MAGIC = "# n2prune-sensitivity"
FIELDS = ("net", "grid", "cells", "identity")
WHAT = {"net": "weights (digest) differ", "grid": "sparsity grid differs",
        "cells": "cells, units or their criteria differ",
        "identity": "evaluation (metric, data) differs"}


@dataclass
class Point:
    """One cell at one sparsity (``DENSE`` at 0: the unpruned network)."""

    cell: str
    sparsity: float
    metric: float
    parameters_removed: int
    macs_removed: Optional[int]


@dataclass
class Sensitivity:
    """An analysis: the dense metric, the points of each cell (or unit), each one's connected
    weights and method (``criterion/pattern``), the network's parameters and MACs (None
    without an input shape), the seconds this call spent, a latency model once measured, and
    the cells of each unit."""

    dense: float
    points: Dict[str, List[Point]]
    weights: Dict[str, int]
    methods: Dict[str, str]
    parameters: int
    macs: Optional[int]
    seconds: float = 0.0
    # the measured latency model (n2prune.sensitivity.latency.measure_latency), for a
    # Latency budget target; not written to the CSV
    latency: Optional[Any] = None
    # units pruned as one (sensitivity(units=...)): {unit: [cells]}
    units: Dict[str, List[str]] = field(default_factory=dict)
    # the CSV the points are kept in (None: in memory); its latency model is kept beside it
    csv: Optional[Path] = None

    def cell_targets(self, sparsities: Dict[str, float]) -> Dict[str, float]:
        """Per layer, the sparsity of ``sparsities`` (by cell or unit, a Budget's): each unit's
        for every cell of it."""
        out: Dict[str, float] = {}
        for name, value in sparsities.items():
            for cell in self.units.get(name, [name]):
                out[cell] = value
        return out

    def curve(self, cell: str) -> Tuple[List[float], List[float]]:
        """(sparsities, metrics) of ``cell``, sparsity 0 being the dense metric."""
        points = sorted(self.points[cell], key=lambda p: p.sparsity)
        return [0.0] + [p.sparsity for p in points], [self.dense] + [p.metric for p in points]

    def table(self) -> List[str]:
        """The points as text: one line per cell, one column per sparsity."""
        grid = sorted({p.sparsity for points in self.points.values() for p in points})
        lines = [f"{'cell':16} {'weights':>9} " + " ".join(f"{s:>7g}" for s in grid),
                 f"{'(dense)':16} {'':>9} {self.dense:>7.4f}"]
        for cell, points in self.points.items():
            by = {p.sparsity: p.metric for p in points}
            lines.append(f"{cell:16} {self.weights[cell]:>9,} " +
                         " ".join(f"{by[s]:>7.4f}" if s in by else f"{'':>7}" for s in grid))
        return lines


class Records:
    """The points of one analysis, kept in ``path`` (None: in memory only)."""

    def __init__(self, path: Union[None, str, Path], header: Dict[str, str]):
        self.path = Path(path) if path is not None else None
        self.header = {key: header.get(key, "") for key in FIELDS}
        self.points: Dict[Tuple[str, float], Point] = {}
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        first, _, body = text.partition("\n")
        found = _parse_header(first)
        if found is None:
            raise ValueError(f"{self.path}: not a sensitivity CSV written by n2prune (its first "
                             f"line is not '{MAGIC} ...'); give another output or remove it")
        for key in FIELDS:
            if found.get(key, "") != _encode(self.header[key]):
                raise ValueError(f"{self.path}: holds points of another analysis (its "
                                 f"{WHAT[key]}: {found.get(key, '')!r} there, "
                                 f"{_encode(self.header[key])!r} now); give another output "
                                 f"or --overwrite to start afresh")
        for row in csv.DictReader(io.StringIO(body)):
            point = Point(row["cell"], float(row["sparsity"]), float(row["metric"]),
                          int(row["parameters_removed"]),
                          int(row["macs_removed"]) if row["macs_removed"] else None)
            self.points[(point.cell, point.sparsity)] = point

    def has(self, cell: str, sparsity: float) -> bool:
        return (cell, float(sparsity)) in self.points

    def add(self, point: Point) -> None:
        """Record ``point`` and rewrite the file atomically."""
        self.points[(point.cell, point.sparsity)] = point
        if self.path is not None:
            atomic_write(self.path, lambda out: out.write(self.text().encode("utf-8")))

    def text(self) -> str:
        out = io.StringIO()
        out.write(MAGIC + "".join(f" {key}={_encode(self.header[key])}" for key in FIELDS)
                  + "\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for p in self.points.values():
            writer.writerow([p.cell, f"{p.sparsity:g}", repr(p.metric), p.parameters_removed,
                             "" if p.macs_removed is None else p.macs_removed])
        return out.getvalue()

    def result(self, weights: Dict[str, int], methods: Dict[str, str], parameters: int,
               macs: Optional[int], seconds: float) -> Sensitivity:
        points: Dict[str, List[Point]] = {cell: [] for cell in weights}
        for (cell, _), point in self.points.items():
            if cell in points:
                points[cell].append(point)
        return Sensitivity(self.points[(DENSE, 0.0)].metric, points, weights, methods,
                           parameters, macs, seconds)


def _parse_header(line: str) -> Optional[Dict[str, str]]:
    if not line.startswith(MAGIC):
        return None
    fields = {}
    for item in line[len(MAGIC):].split():
        key, _, value = item.partition("=")
        fields[key] = value
    return fields


def _encode(value: str) -> str:
    """A header value as one word (spaces become commas)."""
    return ",".join(value.split())
