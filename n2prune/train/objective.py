"""What a target learns (spec §2.10): N2D2's output error as a PyTorch loss.

- Softmax with ``WithLoss=1``: cross-entropy on the softmax's input (mean over the batch).
- An output with ``LogisticWithLoss``: binary cross-entropy on the probabilities.
- Otherwise: ½·Σ(t − y)² averaged over the batch, t one-hot with TargetValue/DefaultValue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import torch
import torch.nn.functional as F

from n2prune.errors import ConfigError
from n2prune.network.targets import Target


@dataclass
class Objective:
    """The loss of one target: reads the outputs of ``source`` (a cell name)."""

    target: Target
    source: str
    kind: str  # "cross_entropy", "binary_cross_entropy" or "squared_error"
    nb_outputs: int

    def loss(self, outputs: Dict[Any, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        y = outputs[self.source].flatten(1)
        if self.kind == "cross_entropy":
            return F.cross_entropy(y, labels)
        t = torch.full_like(y, self.target.default_value)
        t.scatter_(1, labels[:, None], self.target.target_value)
        if self.kind == "binary_cross_entropy":
            return F.binary_cross_entropy(y.clamp(1e-7, 1 - 1e-7), t, reduction="sum") / len(y)
        return 0.5 * (t - y).square().sum() / len(y)

    def estimated(self, outputs: Dict[Any, torch.Tensor]) -> torch.Tensor:
        """The estimated label of each stimulus (arg-max over the target cell's outputs)."""
        return self.estimate(outputs[self.target.cell])

    @staticmethod
    def estimate(scores: torch.Tensor) -> torch.Tensor:
        """The estimated labels from the target cell's outputs (the arg-max of each row)."""
        return scores.flatten(1).argmax(1)


def make_objective(net: Any, target: Target, nb_labels: int) -> Objective:
    cell, info = net.cells[target.cell], net.info[target.cell]
    c, h, w = info.output_shape
    if (h, w) != (1, 1):
        raise ConfigError(f"target cell [{target.cell}] outputs {c}x{h}x{w}; only 1x1 "
                          f"classification outputs can be learnt yet", path=net.ini.path)
    if nb_labels > c:
        raise ConfigError(f"the database has {nb_labels} labels but the target cell "
                          f"[{target.cell}] has only {c} outputs (label i goes to output i)",
                          path=net.ini.path)
    if info.type == "Softmax" and getattr(cell, "with_loss", False):
        return Objective(target, info.inputs[0], "cross_entropy", c)
    activation = getattr(cell, "activation", None)
    if activation is not None and type(activation).__name__ == "LogisticWithLoss":
        return Objective(target, target.cell, "binary_cross_entropy", c)
    return Objective(target, target.cell, "squared_error", c)
