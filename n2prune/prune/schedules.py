"""Pruning schedules: pure functions from counters to thresholds (spec §4.6).

N2D2's Gradual mode counts stimuli: each ``update(B)`` adds the first call's batch size to a
counter, and when the counter reaches the period a step fires (at most one per call, the
remainder is kept). A step raises the current threshold by gamma, in float32, capped at the
target.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def gradual_tick(counter: int, increment: int, period: int) -> Tuple[int, bool]:
    """Advance the stimuli counter by ``increment``; return (new counter, whether a step fires).

    A period of 0 (N2D2's Python API, where nothing sets the log period) fires on every call.
    """
    counter += increment
    if counter >= period:
        return counter - period, True
    return counter, False


def gradual_step(current: float, gamma: float, target: float) -> float:
    """The threshold after one Gradual step: min(cur + gamma, target), accumulated in float32."""
    cur32, target32 = np.float32(current), np.float32(target)
    if not cur32 < target32:
        return float(cur32)
    return float(min(np.float32(cur32 + np.float32(gamma)), target32))


def gradual_thresholds(start: float, gamma: float, target: float, steps: int) -> list:
    """The float32 thresholds after 0, 1, ..., ``steps`` Gradual steps (for reports and tests)."""
    values = [float(np.float32(start))]
    for _ in range(steps):
        values.append(gradual_step(values[-1], gamma, target))
    return values
