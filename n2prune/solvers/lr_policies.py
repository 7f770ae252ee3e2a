"""N2D2's learning-rate policies (``LearningRatePolicy=``) as pure functions (spec §3.3).

Each member of ``LR_POLICIES`` is ``policy(it, stimuli, p) -> learning rate`` where

- ``it`` is the number of completed updates (N2D2's ``mNbIterations``), which stops growing at
  ``MaxIterations`` (``next_it``);
- ``stimuli`` is ``it * IterationSize * B`` in 32-bit unsigned arithmetic (``stimuli_seen``),
  the "current pattern" from which the step-based policies derive
  ``step = stimuli // LearningRateStepSize``;
- ``p`` is an ``LRParams``.

The skipped passes of ``IterationSize`` and the ``LearningRate == 0`` short cut are state, so
they live in the solver (``n2prune.solvers.sgd``), not here.

>>> p = LRParams(learning_rate=0.1, lr_policy="StepDecay", learning_rate_step_size=60000,
...              learning_rate_decay=0.5)
>>> learning_rate(1875, iteration_size=1, batch_size=32, p=p)  # 60000 stimuli: one decay
0.05
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from n2prune.registry import Registry

UINT32 = 1 << 32
UINT64 = 1 << 64

Policy = Callable[[int, int, "LRParams"], float]
LR_POLICIES: Registry[Policy] = Registry("learning-rate policy")

# Policies whose rate depends on ``step`` (counted in stimuli); N2D2 logs their step changes.
STEP_BASED = ("StepDecay", "ExponentialDecay", "InvTDecay", "CosineDecay")


@dataclass(frozen=True)
class LRParams:
    """The SGD parameters that shape the learning rate, named as the solver's arguments."""

    learning_rate: float = 0.01
    lr_policy: str = "None"
    learning_rate_step_size: int = 1
    learning_rate_decay: float = 0.1
    power: float = 0.0
    max_iterations: int = 0
    warm_up_duration: int = 0
    warm_up_lr_frac: float = 0.25
    min_decay: float = 0.0


def stimuli_seen(it: int, iteration_size: int, batch_size: int) -> int:
    """``it * IterationSize * B`` wrapped to 32 bits, as N2D2's ``unsigned int`` product."""
    return (it * iteration_size * batch_size) % UINT32


def lr_step(stimuli: int, step_size: int) -> int:
    """``floor(stimuli / LearningRateStepSize)``; N2D2 refuses a step size of 0."""
    if step_size <= 0:
        raise ValueError(f"learning_rate_step_size={step_size!r}: must be > 0 for the "
                         f"step-based policies ({', '.join(STEP_BASED)})")
    return stimuli // step_size


def next_it(it: int, max_iterations: int) -> int:
    """The update counter after one more update: it stops at ``MaxIterations`` (0 = never)."""
    if max_iterations == 0 or it < max_iterations:
        return (it + 1) % UINT32
    return it


def learning_rate(it: int, iteration_size: int, batch_size: int, p: LRParams) -> float:
    """The learning rate of the update that follows ``it`` completed updates."""
    policy = LR_POLICIES.get(p.lr_policy)
    return policy(it, stimuli_seen(it, iteration_size, batch_size), p)


def step_changed(it: int, iteration_size: int, batch_size: int, p: LRParams) -> bool:
    """Whether N2D2's CPU solver prints "Learning rate after ..." before this update."""
    if p.lr_policy not in STEP_BASED or it == 0:
        return False
    now = lr_step(stimuli_seen(it, iteration_size, batch_size), p.learning_rate_step_size)
    before = lr_step(stimuli_seen(it - 1, iteration_size, batch_size),
                     p.learning_rate_step_size)
    return now != before


def _cxx(operation: Callable[[], float]) -> float:
    """Evaluate with IEEE semantics (inf, NaN), as C++ does, where ``math`` would raise."""
    with np.errstate(all="ignore"):
        return float(operation())


def _cxx_max0(value: float) -> float:
    """``std::max(0.0, value)``: NaN gives 0.0, like the C++ comparison."""
    return value if 0.0 < value else 0.0


@LR_POLICIES.register("None")
def constant(it: int, stimuli: int, p: LRParams) -> float:
    """lr = LearningRate."""
    return p.learning_rate


@LR_POLICIES.register("StepDecay")
def step_decay(it: int, stimuli: int, p: LRParams) -> float:
    """lr = LR * LearningRateDecay ** step."""
    step = lr_step(stimuli, p.learning_rate_step_size)
    return p.learning_rate * _cxx(lambda: np.power(p.learning_rate_decay, float(step)))


@LR_POLICIES.register("ExponentialDecay")
def exponential_decay(it: int, stimuli: int, p: LRParams) -> float:
    """lr = LR * exp(-LearningRateDecay * step)."""
    step = lr_step(stimuli, p.learning_rate_step_size)
    return p.learning_rate * _cxx(lambda: np.exp(-p.learning_rate_decay * step))


@LR_POLICIES.register("InvTDecay")
def inv_t_decay(it: int, stimuli: int, p: LRParams) -> float:
    """lr = LR / (1 + LearningRateDecay * step)."""
    step = lr_step(stimuli, p.learning_rate_step_size)
    return p.learning_rate * _cxx(lambda: np.float64(1.0) / (1.0 + p.learning_rate_decay * step))


@LR_POLICIES.register("PolyDecay")
def poly_decay(it: int, stimuli: int, p: LRParams) -> float:
    """lr = LR * (1 - it / MaxIterations) ** Power, ``it`` counting updates."""
    if p.max_iterations <= 0:
        raise ValueError(f"max_iterations={p.max_iterations!r}: must be > 0 for the "
                         f"PolyDecay policy")
    return p.learning_rate * _cxx(lambda: np.power(1.0 - it / float(p.max_iterations), p.power))


@LR_POLICIES.register("InvDecay")
def inv_decay(it: int, stimuli: int, p: LRParams) -> float:
    """lr = LR * (1 + LearningRateDecay * it) ** -Power, ``it`` counting updates."""
    return p.learning_rate * _cxx(lambda: np.power(1.0 + p.learning_rate_decay * it, -p.power))


@LR_POLICIES.register("CosineDecay")
def cosine_decay(it: int, stimuli: int, p: LRParams) -> float:
    """Linear warm-up from WarmUpLRFrac, then a cosine from LR down to LR * MinDecay.

    ``MaxIterations`` and ``WarmUpDuration`` are in steps (stimuli when the step size is 1).
    ``MaxIterations - WarmUpDuration`` is unsigned 64-bit in N2D2, so it wraps when negative.
    """
    step = lr_step(stimuli, p.learning_rate_step_size)
    if p.warm_up_duration > step:
        frac = p.warm_up_lr_frac
        return p.learning_rate * ((1.0 - frac) * step / p.warm_up_duration + frac)
    span = float((p.max_iterations - p.warm_up_duration) % UINT64)
    angle = math.pi * (step - p.warm_up_duration) / span if span else math.nan
    cosine = 0.5 * (1.0 + math.cos(angle))
    return p.learning_rate * _cxx_max0((1.0 - p.min_decay) * cosine + p.min_decay)
