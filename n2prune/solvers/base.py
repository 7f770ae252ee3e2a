"""What every solver shares: the ``SOLVERS`` registry, argument checks, ``Clamping``, the
``Solver`` base class (validated parameter groups with counters) and ``describe``.

A new solver subclasses ``Solver``, declares ``KEYS`` and ``COUNTERS``, implements
``_update_group`` and registers itself with ``@SOLVERS.register("Name")`` (the INI spelling);
a check for each of its arguments goes in ``CHECKS``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import torch
from torch.optim import Optimizer

from n2prune.ini.params import Key
from n2prune.ini.values import read_float, read_word
from n2prune.registry import Registry
from n2prune.solvers.lr_policies import LR_POLICIES

SOLVERS: Registry[type] = Registry("solver")

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


CHECKS: Dict[str, Callable[[Any], Any]] = {
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
            group[name] = CHECKS[name](value)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{owner}: {name}={value!r} is not allowed; {error}") from None


def clamp_(weight: torch.Tensor, clamping: str) -> None:
    low, high = parse_clamping(clamping)
    if low is not None or high is not None:
        weight.clamp_(min=low, max=high)


def defaults_of(keys: Tuple[Key, ...], arguments: Dict[str, Any]) -> Dict[str, Any]:
    """A group's hyper-parameters from the constructor's arguments: B and the table's."""
    return {"batch_size": arguments["batch_size"], **{k.arg: arguments[k.arg] for k in keys}}


class Solver(Optimizer):
    """What every solver shares: validated groups with counters, ``step()`` over groups."""

    KEYS: Tuple[Key, ...] = ()  # the INI parameter table (``<Role>Solver.<Key>``)
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



def describe(optimizer: Optimizer) -> str:
    """One line: solver type, B, the settings that differ from N2D2's defaults, counters."""
    for name in SOLVERS:
        if isinstance(optimizer, SOLVERS.get(name)):
            keys = SOLVERS.get(name).KEYS
            break
    else:
        raise TypeError(f"describe: expected a registered solver ({', '.join(SOLVERS)}), got "
                        f"{type(optimizer).__name__}")
    parts = []
    for group in optimizer.param_groups:
        settings = [f"{key.ini}={group[key.arg]}" for key in keys
                    if group[key.arg] != key.default]
        counter = f"it={group['it']}" if "it" in group else f"steps={group['steps']}"
        parts.append(" ".join([f"{name}(B={group['batch_size']})"] + settings
                              + [f"{counter} lr={group['current_lr']:g}"]))
    return "; ".join(parts)
