"""The learning loss and accuracy between two log points, counted without a per-step sync.

A step hands over its loss and its target cell's outputs as tensors; the arg-max, the
comparison with the labels and the conversion to Python numbers happen for many steps at once
when the totals are read (a log point, a progress line) or when the kept outputs pass a size
bound. The totals are those of counting step by step: the same Python float sum of
``loss × seen`` in step order, and the same count of correct estimates (the arg-max of each
row does not depend on the rows beside it).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import torch

MAX_KEPT = 1 << 20  # output values kept before they are reduced to a count (4 MB of float32)


class LearnTally:
    """``add`` per step, ``totals()`` when read: ``{"loss", "correct", "seen"}``.

    ``estimate`` maps kept outputs (concatenated along the batch) to estimated labels.
    """

    def __init__(self, estimate: Callable[[torch.Tensor], torch.Tensor]):
        self._estimate = estimate
        self._loss, self._correct, self._seen = 0.0, 0, 0
        self._losses: List[Tuple[torch.Tensor, int]] = []
        self._outputs: List[torch.Tensor] = []
        self._labels: List[torch.Tensor] = []
        self._kept = 0
        self.last_loss = float("nan")

    def add(self, loss: torch.Tensor, outputs: torch.Tensor, labels: torch.Tensor,
            seen: int) -> None:
        """One step: its loss (a detached scalar), the target cell's outputs (detached) and
        labels of its ``seen`` stimuli (none of them counts when ``seen`` is 0)."""
        self._losses.append((loss, seen))
        self._seen += seen
        if seen:
            self._outputs.append(outputs)
            self._labels.append(labels)
            self._kept += outputs.numel()
            if self._kept >= MAX_KEPT:
                self._reduce()

    def _reduce(self) -> None:
        if self._losses:
            values = torch.stack([loss for loss, _ in self._losses]).tolist()
            for value, (_, seen) in zip(values, self._losses):
                self._loss += value * seen
            self.last_loss = values[-1]
            self._losses.clear()
        if self._outputs:
            estimated = self._estimate(torch.cat(self._outputs))
            self._correct += int((estimated == torch.cat(self._labels)).sum())
            self._outputs.clear()
            self._labels.clear()
            self._kept = 0

    def totals(self) -> Dict[str, float]:
        """The summed loss (each step's mean loss × its stimuli), correct estimates and
        stimuli seen since the tally began."""
        self._reduce()
        return {"loss": self._loss, "correct": self._correct, "seen": self._seen}

    def running(self) -> Dict[str, float]:
        """What a progress line shows: the last step's loss and the accuracy so far."""
        totals = self.totals()
        return {"loss": self.last_loss, "acc": totals["correct"] / max(1, totals["seen"])}
