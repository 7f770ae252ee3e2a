"""PNG plots of a training run: learning curves and per-cell sparsity (matplotlib, Agg).

matplotlib is imported only when a plot is drawn, so the rest of n2prune does not need it.

>>> plot_learning_curves(rows, "run/learning.png")                     # doctest: +SKIP
>>> plot_sparsity([("conv1", 0.62, 0.9), ("fc1", 0.9, 0.9)], "run/sparsity.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple

from n2prune.atomic import PathLike, atomic_write



def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _number(row: Mapping[str, Any], key: str, index: int) -> Optional[float]:
    """``row[key]`` as a float; None (and '' as log.csv writes it) for a missing value."""
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"rows[{index}][{key!r}]={value!r}: expected a number or None") \
            from None


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> Tuple[list, list]:
    """(epochs, values) of the rows where ``key`` has a value."""
    xs, ys = [], []
    for index, row in enumerate(rows):
        x, y = _number(row, "epoch", index), _number(row, key, index)
        if x is not None and y is not None and not math.isnan(y):
            xs.append(x)
            ys.append(y)
    return xs, ys


def _percent(values: list) -> list:
    """Fractions in [0, 1] as percentages; values already above 1 are taken as percentages."""
    return values if any(abs(v) > 1 for v in values) else [100 * v for v in values]


# (title, y label, [(row key, legend label, colour)]) of each learning-curve panel
_PANELS = (("Loss", "loss", [("loss", "learning loss", "tab:red")]),
           ("Accuracy", "accuracy (%)", [("learn_accuracy", "learning", "tab:blue"),
                                         ("validation_accuracy", "validation", "tab:green")]),
           ("Sparsity (fraction of weights pruned)", "sparsity (%)",
            [("sparsity", "pruned weights", "tab:purple")]))


def plot_learning_curves(rows: Sequence[Mapping[str, Any]], path: PathLike) -> Path:
    """One PNG with three panels against the epoch: loss, accuracies, sparsity.

    ``rows`` are log.csv rows (dicts with ``epoch``, ``loss``, ``learn_accuracy``,
    ``validation_accuracy`` (None when there is no validation set) and ``sparsity``;
    accuracies and sparsity are fractions in [0, 1], drawn as percentages; a series with a
    value above 1 is taken as already in percent). Other keys
    (``stimuli``, ``learning_rate``) are ignored. Written atomically; returns the path.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("plot_learning_curves: rows is empty; nothing to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(len(_PANELS), 1, figsize=(8, 9), sharex=True)
    try:
        for ax, (title, ylabel, series) in zip(axes, _PANELS):
            for key, label, color in series:
                xs, ys = _series(rows, key)
                if xs:
                    ax.plot(xs, ys if key == "loss" else _percent(ys), marker="o",
                            color=color, label=label)
            ax.set_title(title)
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            if ax.get_lines():
                ax.legend(loc="best")
        axes[-1].set_ylim(0, 100)
        axes[-1].set_xlabel("epoch")
        fig.suptitle("Learning curves")
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_sparsity(cells: Sequence[Tuple[str, float, Optional[float]]], path: PathLike) -> Path:
    """A bar chart of the achieved sparsity per cell, each cell's target marked.

    ``cells`` is a list of ``(name, sparsity, target)`` with fractions in [0, 1]; a target of
    None draws no mark. Written atomically; returns the path.
    """
    cells = list(cells)
    if not cells:
        raise ValueError("plot_sparsity: cells is empty; nothing to plot")
    for index, item in enumerate(cells):
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise ValueError(f"plot_sparsity: cells[{index}]={item!r}: expected "
                             f"(name, sparsity, target)")
    names = [str(name) for name, _, _ in cells]
    achieved = [100 * float(value) for _, value, _ in cells]
    targets = [(i, 100 * float(t)) for i, (_, _, t) in enumerate(cells) if t is not None]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(cells) + 2), 4.5))
    try:
        bars = ax.bar(range(len(cells)), achieved, color="tab:blue", label="achieved")
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in achieved], fontsize=8, padding=2)
        if targets:
            ax.hlines([t for _, t in targets], [i - 0.45 for i, _ in targets],
                      [i + 0.45 for i, _ in targets], colors="tab:red", linewidths=2.5,
                      zorder=3, label="target")
        ax.set_xticks(range(len(cells)), names, rotation=45 if len(cells) > 6 else 0,
                      ha="right" if len(cells) > 6 else "center")
        ax.set_ylim(0, 110)
        ax.set_ylabel("sparsity (% of weights pruned)")
        ax.set_xlabel("cell")
        ax.set_title("Sparsity per cell")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides a bar
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)


def _save(fig, path: PathLike) -> Path:
    """Save ``fig`` as PNG atomically."""
    return atomic_write(path, lambda out: fig.savefig(out, format="png", dpi=100))


def plot_find_lr(rates: Sequence[float], losses: Sequence[float], title: str,
                 path: PathLike) -> Path:
    """``-find-lr``'s curve: the loss against the learning rate (log scale), as N2D2's
    gnuplot of ``find_lr_<target>.dat``. Written atomically; returns the path."""
    if not rates or len(rates) != len(losses):
        raise ValueError(f"plot_find_lr: {len(rates)} rates and {len(losses)} losses; "
                         f"expected as many of each, at least one")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        ax.plot(rates, losses, color="tab:red")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)
