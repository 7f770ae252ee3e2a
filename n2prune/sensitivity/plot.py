"""``sensitivity.png``: one labelled curve per cell (metric against the cell's sparsity, the
rest dense) and the dense metric as a horizontal line (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from n2prune.atomic import PathLike, atomic_write


def plot_sensitivity(result, path: PathLike) -> Path:
    """Draw ``result`` (a :class:`~n2prune.sensitivity.records.Sensitivity`) into ``path``."""
    import matplotlib  # a dependency; imported when a plot is drawn, as train/plots.py does
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        for cell in result.points:
            x, y = result.curve(cell)
            ax.plot([100 * s for s in x], [100 * m for m in y], marker="o", markersize=3,
                    label=f"{cell} ({result.weights[cell]:,} weights, {result.methods[cell]})")
        ax.axhline(100 * result.dense, color="black", linestyle="--", linewidth=1,
                   label=f"dense {100 * result.dense:.2f}")
        ax.set_xlabel("sparsity of the cell, the rest dense (%)")
        ax.set_ylabel("metric (%)")
        ax.set_title("Sensitivity of each cell to pruning")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        return atomic_write(path, lambda out: fig.savefig(out, format="png", dpi=100))
    finally:
        plt.close(fig)
