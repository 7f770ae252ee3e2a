"""Progress while learning: a tqdm bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Dict, Optional, TextIO


class Progress:
    """``update(n, values)`` per batch, ``values()`` giving the numbers to show (loss,
    accuracy, sparsity...) and called only when a line or the bar's postfix is drawn;
    ``line(text)`` logs."""

    POSTFIX_EVERY = 1.0  # seconds between two refreshes of the bar's numbers

    def __init__(self, total: int, quiet: bool = False, stream: Optional[TextIO] = None,
                 every: float = 30.0):
        self.stream = stream or sys.stderr
        self.quiet, self.total, self.every = quiet, total, every
        self.done, self._last = 0, time.monotonic()
        self._postfix_at = -math.inf
        self._bar = None
        if not quiet and self.stream.isatty():
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, unit="stim", unit_scale=True, file=self.stream,
                                 dynamic_ncols=True, desc="Learning")
            except ImportError:  # tqdm is a dependency; plain lines if it is missing
                self._bar = None

    def update(self, count: int, values: Optional[Callable[[], Dict[str, float]]] = None
               ) -> None:
        self.done += count
        if self.quiet:
            return
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(count)
            if values is not None and now - self._postfix_at >= self.POSTFIX_EVERY:
                self._postfix_at = now
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in values().items()},
                                      refresh=False)
        elif now - self._last >= self.every:
            self._last = now
            shown = "  ".join(f"{k} {v:.4g}" for k, v in (values() if values else {}).items())
            percent = 100.0 * self.done / max(1, self.total)
            print(f"Learning {self.done}/{self.total} stimuli ({percent:.1f}%)  {shown}",
                  file=self.stream, flush=True)

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def describe_row(row: Dict[str, Any], metric: str) -> str:
    """The line a log point prints (a row of log.csv)."""
    text = (f"log point {row['log_point']}: epoch {row['epoch']:.2f}, loss "
            f"{row['loss']:.4f}, learn {100 * row['learn_accuracy']:.2f}%")
    if row["validation_score"] is not None:
        text += f", validation {100 * row['validation_score']:.2f}% [{metric}]"
    return text + f", sparsity {100 * row['sparsity']:.1f}%, lr {row['learning_rate']:.3g}"
