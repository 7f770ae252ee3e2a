"""N2D2's ``Adam`` solver (spec §3.5) (see ``n2prune.solvers`` for the gradient convention)."""

from __future__ import annotations

import math
from typing import Any, Dict

import torch

from n2prune.ini.params import Key
from n2prune.ini.values import read_float
from n2prune.solvers.base import SOLVERS, Solver, clamp_, defaults_of, read_clamping

ADAM_KEYS = (
    Key("LearningRate", "learning_rate", read_float, 0.001),
    Key("Beta1", "beta1", read_float, 0.9),
    Key("Beta2", "beta2", read_float, 0.999),
    Key("Epsilon", "epsilon", read_float, 1e-8),
    Key("Clamping", "clamping", read_clamping, "", "min:max, either side may be empty"),
)

@SOLVERS.register("Adam")
class N2D2Adam(Solver):
    """N2D2's ``Adam`` solver (spec §3.5), on ``D = -B * grad`` (D is not divided by B).

    At step t: ``alpha = lr*sqrt(1-beta2^t)/(1-beta1^t)``, ``eps' = eps*sqrt(1-beta2^t)``,
    ``m = beta1*m + (1-beta1)*D``, ``v = beta2*v + (1-beta2)*D^2``,
    ``W = clamp(W + alpha*m/(sqrt(v)+eps'))``. No learning-rate policy, no IterationSize.
    This equals ``torch.optim.Adam(lr, (beta1, beta2), eps=epsilon/B)``.
    """

    KEYS = ADAM_KEYS
    COUNTERS = {"steps": 0, "current_lr": 0.0}

    def __init__(self, params, batch_size: int, learning_rate: float = 0.001,
                 beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 clamping: str = ""):
        super().__init__(params, defaults_of(ADAM_KEYS, dict(locals())))

    @property
    def steps(self) -> int:
        """Steps done by the first group (Adam's t)."""
        return self.param_groups[0]["steps"]

    def _update_group(self, group: Dict[str, Any]) -> None:
        group["steps"] += 1
        group["current_lr"] = group["learning_rate"]
        for weight in group["params"]:
            _adam_update(weight, group, self.state[weight])


def _adam_update(weight: torch.Tensor, group: Dict[str, Any], state: Dict[str, Any]) -> None:
    """Spec §3.5 on one tensor, at step ``group['steps']``."""
    t, beta1, beta2 = group["steps"], group["beta1"], group["beta2"]
    alpha = group["learning_rate"] * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
    epsilon = group["epsilon"] * math.sqrt(1.0 - beta2 ** t)
    if "m" not in state:
        state["m"], state["v"] = torch.zeros_like(weight), torch.zeros_like(weight)
    diff = torch.zeros_like(weight) if weight.grad is None \
        else weight.grad * -float(group["batch_size"])
    state["m"].mul_(beta1).add_(diff, alpha=1.0 - beta1)
    state["v"].mul_(beta2).addcmul_(diff, diff, value=1.0 - beta2)
    weight.addcdiv_(state["m"], state["v"].sqrt().add_(epsilon), value=alpha)
    clamp_(weight, group["clamping"])
