"""Classification scores from a confusion matrix, N2D2's validation metrics (spec §6).

N2D2 averages each metric over the classes present, so ``Sensitivity`` (its default
``-valid-metric``) is the balanced accuracy; the plain recognition rate is ``accuracy``.
"""

from __future__ import annotations

from typing import Callable, Dict

import torch

MetricFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / b.clamp(min=1e-30), torch.zeros_like(a))


METRICS: Dict[str, MetricFn] = {
    "Sensitivity": lambda tp, tn, fp, fn: _ratio(tp, tp + fn),
    "Specificity": lambda tp, tn, fp, fn: _ratio(tn, tn + fp),
    "Precision": lambda tp, tn, fp, fn: _ratio(tp, tp + fp),
    "NegativePredictiveValue": lambda tp, tn, fp, fn: _ratio(tn, tn + fn),
    "MissRate": lambda tp, tn, fp, fn: _ratio(fn, fn + tp),
    "FallOut": lambda tp, tn, fp, fn: _ratio(fp, fp + tn),
    "FalseDiscoveryRate": lambda tp, tn, fp, fn: _ratio(fp, fp + tp),
    "FalseOmissionRate": lambda tp, tn, fp, fn: _ratio(fn, fn + tn),
    "IU": lambda tp, tn, fp, fn: _ratio(tp, tp + fp + fn),
    "Accuracy": lambda tp, tn, fp, fn: _ratio(tp + tn, tp + tn + fp + fn),
    "F1Score": lambda tp, tn, fp, fn: _ratio(2 * tp, 2 * tp + fp + fn),
    "Informedness": lambda tp, tn, fp, fn: _ratio(tp, tp + fn) + _ratio(tn, tn + fp) - 1,
}


class Confusion:
    """A running confusion matrix ``[target, estimated]``."""

    def __init__(self, nb_classes: int):
        self.matrix = torch.zeros(nb_classes, nb_classes, dtype=torch.int64)

    def add(self, labels: torch.Tensor, estimated: torch.Tensor) -> None:
        n = self.matrix.shape[0]
        index = labels.to("cpu", torch.int64) * n + estimated.to("cpu", torch.int64)
        self.matrix += torch.bincount(index, minlength=n * n).reshape(n, n)

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def accuracy(self) -> float:
        """The plain recognition rate: correct / total (N2D2's "Final recognition rate")."""
        return float(self.matrix.diagonal().sum()) / max(1, self.total)

    def score(self, metric: str) -> float:
        """``metric`` averaged over the classes present in the targets."""
        m = self.matrix.to(torch.float64)
        tp = m.diagonal()
        fn = m.sum(1) - tp
        fp = m.sum(0) - tp
        tn = m.sum() - tp - fn - fp
        values = METRICS[metric](tp, tn, fp, fn)
        present = m.sum(1) > 0
        return float(values[present].mean()) if bool(present.any()) else 0.0
