"""N2D2's SGD and Adam solvers as ``torch.optim.Optimizer`` subclasses (spec §3).

Gradient convention. N2D2's solvers receive the diff ``D = -sum over the batch of dL/dw``.
PyTorch's ``p.grad`` is the gradient of the caller's loss, which must be the MEAN over the
batch (``CrossEntropyLoss(reduction='mean')``, as N2D2's targets amount to, spec §2.10).
So ``D = -B * p.grad`` and both optimizers take the batch size B:

- SGD: ``r = rate / (B * IterationSize)`` applied to D is ``-rate / IterationSize * p.grad``,
  i.e. exactly lr times the mean gradient.
- Adam: D is NOT divided by B in N2D2, so B changes the result (through epsilon only).

Use the ordinary loop ``zero_grad(); loss.backward(); step()`` every batch, also with
``IterationSize > 1``: the SGD optimizer keeps its own running sum of the gradients of the
skipped passes (N2D2 accumulates its diff buffer instead), so grads may be zeroed freely.

Each parameter group carries its hyper-parameters (python argument names, as in ``SGD_KEYS``)
and its counters (SGD: ``it``, ``pass``; Adam: ``steps``; both: ``current_lr``, the rate used
by the last ``step()``, 0 when it was skipped), so ``state_dict()`` resumes exactly. Put
weights and biases in two groups when their N2D2 solvers differ (``WeightsSolver.*`` /
``BiasSolver.*``). A parameter whose ``grad`` is None is treated as having a zero gradient:
N2D2 updates every tensor every batch, so decay and momentum still move it. Masked (pruned)
weights are not special: their gradient is zero, but decay still shrinks them (spec §4.4).

Deliberate differences: arguments are validated at construction (N2D2 accepts a negative
momentum, reads ``Clamping`` sides with ``atof`` and fails on a zero step size only at the
first update); the scalars (rate, r) are doubles rounded once by torch, where N2D2's CPU
solver rounds them to float first; the ``-find-lr`` global rate override is not provided.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import torch
from torch.optim import Optimizer

from n2prune.solvers import lr_policies
from n2prune.solvers.lr_policies import LR_POLICIES, LRParams
from n2prune.ini.params import Key
from n2prune.registry import Registry
from n2prune.ini.values import read_bool, read_enum, read_float, read_uint, read_word

Clamp = Tuple[Optional[float], Optional[float]]
_CLAMP_FORM = "'min:max' where either side may be empty (e.g. '-1.0:1.0', ':0.5', '')"


def parse_clamping(text: str) -> Clamp:
    """``"min:max"`` -> (min or None, max or None); "" means no clamping."""
    try:
        return _parse_clamping(text)
    except (TypeError, ValueError) as error:
        raise type(error)(f"clamping={text!r}: {error}") from None


def _parse_clamping(text: Any) -> Clamp:
    if not isinstance(text, str):
        raise TypeError(f"expected a string of the form {_CLAMP_FORM}")
    if text == "":
        return None, None
    sides = text.split(":")
    try:
        if len(sides) != 2:
            raise ValueError
        low, high = (read_float(side) if side else None for side in sides)
    except ValueError:
        raise ValueError(f"expected the form {_CLAMP_FORM}") from None
    if low is not None and high is not None and low > high:
        raise ValueError(f"min {low} is greater than max {high}")
    return low, high


def read_clamping(text: str, warn=None) -> str:
    """INI reader for ``Clamping``: one word, checked to be ``min:max``."""
    word = read_word(text, warn)
    _parse_clamping(word)  # the reason only: the caller names key and value
    return word


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

ADAM_KEYS = (
    Key("LearningRate", "learning_rate", read_float, 0.001),
    Key("Beta1", "beta1", read_float, 0.9),
    Key("Beta2", "beta2", read_float, 0.999),
    Key("Epsilon", "epsilon", read_float, 1e-8),
    Key("Clamping", "clamping", read_clamping, "", "min:max, either side may be empty"),
)

SOLVERS: Registry[type] = Registry("solver")


def _real(minimum: Optional[float] = None, below: Optional[float] = None):
    bounds = [f">= {minimum}"] * (minimum is not None) + [f"< {below}"] * (below is not None)
    allowed = " ".join(["expected a finite number", " and ".join(bounds)]).rstrip()

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value) or (minimum is not None and value < minimum) \
                or (below is not None and value >= below):
            raise ValueError(allowed)
        return float(value)
    return check


def _uint(bits: int, minimum: int = 0):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                or not minimum <= value < (1 << bits):
            raise ValueError(f"expected an integer from {minimum} to {(1 << bits) - 1}")
        return int(value)
    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, numbers.Integral) or value not in (0, 1):
        raise ValueError("expected True or False")
    return bool(value)


def _policy(value: Any) -> str:
    LR_POLICIES.get(value)
    return value


def _clamping(value: Any) -> str:
    _parse_clamping(value)
    return value


_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "batch_size": _uint(32, 1), "learning_rate": _real(0.0), "lr_policy": _policy,
    "momentum": _real(0.0), "decay": _real(0.0), "power": _real(),
    "iteration_size": _uint(32, 1), "max_iterations": _uint(64), "warm_up_duration": _uint(32),
    "warm_up_lr_frac": _real(), "learning_rate_step_size": _uint(32),
    "learning_rate_decay": _real(), "clamping": _clamping, "polyak_momentum": _flag,
    "min_decay": _real(), "beta1": _real(0.0, 1.0), "beta2": _real(0.0, 1.0),
    "epsilon": _real(0.0),
}


def _checked(owner: str, group: Dict[str, Any], names: Iterable[str]) -> None:
    """Validate and normalise ``group[name]`` for each name, naming argument and value."""
    for name in names:
        value = group[name]
        try:
            group[name] = _CHECKS[name](value)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{owner}: {name}={value!r} is not allowed; {error}") from None


def _check_policy_needs(owner: str, group: Dict[str, Any]) -> None:
    """The combinations N2D2 rejects at its first update, rejected at construction."""
    policy = group["lr_policy"]
    if policy in lr_policies.STEP_BASED and group["learning_rate_step_size"] == 0:
        raise ValueError(f"{owner}: learning_rate_step_size=0 is not allowed with "
                         f"lr_policy={policy!r}; expected an integer > 0")
    if policy == "PolyDecay" and group["max_iterations"] == 0:
        raise ValueError(f"{owner}: max_iterations=0 is not allowed with "
                         f"lr_policy='PolyDecay'; expected an integer > 0")


def _clamp_(weight: torch.Tensor, clamping: str) -> None:
    low, high = parse_clamping(clamping)
    if low is not None or high is not None:
        weight.clamp_(min=low, max=high)


def _defaults(keys: Tuple[Key, ...], arguments: Dict[str, Any]) -> Dict[str, Any]:
    """A group's hyper-parameters from the constructor's arguments: B and the table's."""
    return {"batch_size": arguments["batch_size"], **{k.arg: arguments[k.arg] for k in keys}}


def _lr_params(group: Dict[str, Any]) -> LRParams:
    return LRParams(**{name: group[name] for name in LRParams.__dataclass_fields__})


class _Solver(Optimizer):
    """What both solvers share: validated groups with counters, ``step()`` over groups."""

    KEYS: Tuple[Key, ...] = ()
    COUNTERS: Dict[str, Any] = {}

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Add a group (its own hyper-parameters override the defaults), validated."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group={param_group!r}: expected a dict with 'params'")
        for name, value in {**self.defaults, **self.COUNTERS}.items():
            param_group.setdefault(name, value)
        _checked(type(self).__name__, param_group, self.defaults)
        self._check_combination(param_group)
        super().add_param_group(param_group)

    def _check_combination(self, group: Dict[str, Any]) -> None:
        pass

    @property
    def current_lr(self) -> float:
        """The rate used by the last ``step()`` of the first group (0 when SGD skipped)."""
        return self.param_groups[0]["current_lr"]

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One N2D2 ``update()`` call for every group."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: Dict[str, Any]) -> None:
        raise NotImplementedError


@SOLVERS.register("SGD")
class N2D2SGD(_Solver):
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
        super().__init__(params, _defaults(SGD_KEYS, arguments))

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
    _clamp_(weight, group["clamping"])


@SOLVERS.register("Adam")
class N2D2Adam(_Solver):
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
        super().__init__(params, _defaults(ADAM_KEYS, dict(locals())))

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
    _clamp_(weight, group["clamping"])


def describe(optimizer: Optimizer) -> str:
    """One line: solver type, B, the settings that differ from N2D2's defaults, counters."""
    for name in SOLVERS:
        if isinstance(optimizer, SOLVERS.get(name)):
            keys = SOLVERS.get(name).KEYS
            break
    else:
        raise TypeError(f"describe: expected an N2D2SGD or N2D2Adam, got "
                        f"{type(optimizer).__name__}")
    parts = []
    for group in optimizer.param_groups:
        settings = [f"{key.ini}={group[key.arg]}" for key in keys
                    if group[key.arg] != key.default]
        counter = f"it={group['it']}" if "it" in group else f"steps={group['steps']}"
        parts.append(" ".join([f"{name}(B={group['batch_size']})"] + settings
                              + [f"{counter} lr={group['current_lr']:g}"]))
    return "; ".join(parts)
