"""N2D2's ``SGDSolver`` (spec §3.4): Caffe-style momentum, decay, learning-rate policies and
``IterationSize`` (see ``n2prune.solvers`` for the gradient convention)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch

from n2prune.ini.params import Key
from n2prune.ini.values import read_bool, read_enum, read_float, read_uint
from n2prune.solvers import lr_policies
from n2prune.solvers.base import SOLVERS, Solver, clamp_, defaults_of, read_clamping
from n2prune.solvers.lr_policies import LR_POLICIES, LRParams

SGD_KEYS = (
    Key("LearningRate", "learning_rate", read_float, 0.01),
    Key("LearningRatePolicy", "lr_policy", read_enum(LR_POLICIES), "None"),
    Key("Momentum", "momentum", read_float, 0.0),
    Key("Decay", "decay", read_float, 0.0, "weight decay, not divided by the batch size"),
    Key("Power", "power", read_float, 0.0, "PolyDecay and InvDecay exponent"),
    Key("IterationSize", "iteration_size", read_uint, 1, "batches per update"),
    Key("MaxIterations", "max_iterations", read_uint, 0, "updates; 0 = unbounded"),
    Key("WarmUpDuration", "warm_up_duration", read_uint, 0, "CosineDecay warm-up steps"),
    Key("WarmUpLRFrac", "warm_up_lr_frac", read_float, 0.25),
    Key("LearningRateStepSize", "learning_rate_step_size", read_uint, 1, "in stimuli"),
    Key("LearningRateDecay", "learning_rate_decay", read_float, 0.1),
    Key("Clamping", "clamping", read_clamping, "", "min:max, either side may be empty"),
    Key("PolyakMomentum", "polyak_momentum", read_bool, True, "accepted, unused (as in N2D2)"),
    Key("MinDecay", "min_decay", read_float, 0.0, "CosineDecay floor, fraction of LR"),
)

def _check_policy_needs(owner: str, group: Dict[str, Any]) -> None:
    """The combinations N2D2 rejects at its first update, rejected at construction."""
    policy = group["lr_policy"]
    if policy in lr_policies.STEP_BASED and group["learning_rate_step_size"] == 0:
        raise ValueError(f"{owner}: learning_rate_step_size=0 is not allowed with "
                         f"lr_policy={policy!r}; expected an integer > 0")
    if policy == "PolyDecay" and group["max_iterations"] == 0:
        raise ValueError(f"{owner}: max_iterations=0 is not allowed with "
                         f"lr_policy='PolyDecay'; expected an integer > 0")


def _lr_params(group: Dict[str, Any]) -> LRParams:
    return LRParams(**{name: group[name] for name in LRParams.__dataclass_fields__})


@SOLVERS.register("SGD")
class N2D2SGD(Solver):
    """N2D2's ``SGDSolver``: Caffe-style momentum, decay not divided by B, LR policies.

    Per update (spec §3.4), with ``rate`` from the policy and ``r = rate / (B*IterationSize)``:
    ``W = clamp(W + r*D)`` if Momentum == Decay == 0, else
    ``M = Momentum*M + r*D - Decay*rate*W; W = clamp(W + M)``. This equals
    ``torch.optim.SGD(lr, momentum, weight_decay=Decay)`` only while the rate is constant.
    ``log`` receives N2D2's "Learning rate after N(xK) iteration(s): lr" lines.
    """

    KEYS = SGD_KEYS
    COUNTERS = {"it": 0, "pass": 0, "current_lr": 0.0}
    _log: Optional[Callable[[str], None]] = None  # not pickled by torch: absent after a copy

    def __init__(self, params, batch_size: int, learning_rate: float = 0.01,
                 lr_policy: str = "None", momentum: float = 0.0, decay: float = 0.0,
                 power: float = 0.0, iteration_size: int = 1, max_iterations: int = 0,
                 warm_up_duration: int = 0, warm_up_lr_frac: float = 0.25,
                 learning_rate_step_size: int = 1, learning_rate_decay: float = 0.1,
                 clamping: str = "", polyak_momentum: bool = True, min_decay: float = 0.0,
                 *, log: Optional[Callable[[str], None]] = None):
        arguments = dict(locals())
        self._log = log
        super().__init__(params, defaults_of(SGD_KEYS, arguments))

    def _check_combination(self, group: Dict[str, Any]) -> None:
        _check_policy_needs(type(self).__name__, group)

    @property
    def it(self) -> int:
        """Completed updates of the first group (stops at MaxIterations)."""
        return self.param_groups[0]["it"]

    def _update_group(self, group: Dict[str, Any]) -> None:
        """Skip (a pass of IterationSize, or LearningRate 0), or update with the policy's rate."""
        if group["learning_rate"] == 0.0:  # N2D2 returns before counting passes
            group["current_lr"] = 0.0
            return
        size = group["iteration_size"]
        if size > 1:
            self._accumulate(group)
        rate = self._next_rate(group)
        group["current_lr"] = rate
        if group["pass"] != 0:  # a skipped pass: gradients keep accumulating
            return
        for weight in group["params"]:
            state = self.state[weight]
            grad = state["grad_sum"] if size > 1 else weight.grad
            if rate != 0.0:
                _sgd_update(weight, grad, rate, group, state)
            if size > 1:
                state["grad_sum"].zero_()

    def _accumulate(self, group: Dict[str, Any]) -> None:
        for weight in group["params"]:
            state = self.state[weight]
            if "grad_sum" not in state:
                state["grad_sum"] = torch.zeros_like(weight)
            if weight.grad is not None:
                state["grad_sum"].add_(weight.grad)

    def _next_rate(self, group: Dict[str, Any]) -> float:
        """N2D2's ``getLearningRate``: 0 on a skipped pass, else the policy's rate."""
        if group["pass"] < group["iteration_size"] - 1:
            group["pass"] += 1
            return 0.0
        group["pass"] = 0
        params, it = _lr_params(group), group["it"]
        size, batch = group["iteration_size"], group["batch_size"]
        rate = lr_policies.learning_rate(it, size, batch, params)
        if self._log is not None and lr_policies.step_changed(it, size, batch, params):
            self._log(f"Learning rate after {it}(x{size * batch}) iteration(s): {rate:g}")
        group["it"] = lr_policies.next_it(it, params.max_iterations)
        return rate


def _sgd_update(weight: torch.Tensor, grad: Optional[torch.Tensor], rate: float,
                group: Dict[str, Any], state: Dict[str, Any]) -> None:
    """Spec §3.4 on one tensor. ``r*D`` with ``D = -B*grad`` is ``-rate/IterationSize*grad``."""
    momentum, decay = group["momentum"], group["decay"]
    grad_scale = -rate / group["iteration_size"]  # r * (-B)
    if momentum == 0.0 and decay == 0.0:
        if grad is not None:
            weight.add_(grad, alpha=grad_scale)
    else:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(weight)
        velocity = state["momentum_buffer"]
        velocity.mul_(momentum)
        if grad is not None:
            velocity.add_(grad, alpha=grad_scale)
        if decay != 0.0:
            velocity.add_(weight, alpha=-decay * rate)
        weight.add_(velocity)
    clamp_(weight, group["clamping"])
