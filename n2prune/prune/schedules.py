"""Pruning schedules (``QWeight.PruningSchedule=``, prune_mode Gradual): pure functions from a
position (stimuli seen) to a target fraction of zeros (spec §4.6 for N2D2's Linear).

``Linear`` is N2D2's staircase: each ``update(B)`` adds the first call's batch size to a
counter, and when the counter reaches the period a step fires (at most one per call, the
remainder is kept); a step raises the threshold by gamma, in float32, capped at the target.

The others read a window ``[begin, end]`` in stimuli (``PruningBegin``/``PruningEnd``, or
``PruningBeginEpochs``/``PruningEndEpochs`` in epochs of the training set). Without an end,
the window ends at 75 % of the run (``horizon`` stimuli, which the trainer or Pruner sets),
leaving a quarter to recover. Steps happen every ``PruningFrequency`` stimuli (default: the
Gradual period). With s_i = ``start`` and s_f = ``threshold``:

- ``Cubic`` (Zhu & Gupta 2017): s = s_f + (s_i − s_f)(1 − (t − t0)/(end − t0))³;
- ``OneShot``: 0 before ``end``, s_f from ``end`` on (train, prune once, fine-tune);
- ``Iterative``: ``PruningSteps`` rounds evenly spaced in the window, round k reaching
  1 − (1 − s_f)^(k/n) (each round prunes the same share of the weights left, as the lottery
  ticket experiments do); pair it with ``rewind`` to reset the kept weights after each round.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from n2prune.ini.params import Key, Range
from n2prune.ini.values import read_float, read_uint
from n2prune.registry import Registry

SCHEDULES: Registry = Registry("pruning schedule")
_POSITION = Range(0, math.inf)
_STEPS = Range(1, math.inf, integer=True)
HORIZON_FRACTION = 0.75

# The window keys, shared by the position-based schedules.
WINDOW_KEYS = (
    Key("PruningBegin", "begin", read_float, None, "window start in stimuli (default 0)",
        _POSITION),
    Key("PruningEnd", "end", read_float, None, "window end in stimuli (default 75 % of the "
        "run)", _POSITION),
    Key("PruningBeginEpochs", "begin_epochs", read_float, None, "window start in epochs",
        _POSITION),
    Key("PruningEndEpochs", "end_epochs", read_float, None, "window end in epochs", _POSITION),
    Key("PruningFrequency", "frequency", read_uint, 0, "stimuli between steps (0: the "
        "Gradual period)", Range(0, math.inf, integer=True)),
)


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


class Schedule:
    """A position-based schedule: ``fraction(t, t0, end, s_i, s_f)``; subclasses override."""

    name = ""
    staircase = False  # N2D2's counter-driven Linear staircase
    params: Tuple[Key, ...] = WINDOW_KEYS

    def __init__(self, **params):
        for unit in ("begin", "end"):
            if params.get(unit) is not None and params.get(unit + "_epochs") is not None:
                raise ValueError(f"schedule {self.name}: give {unit} (stimuli) or "
                                 f"{unit}_epochs, not both")
        self.args = params

    def fraction(self, t: float, t0: float, end: float, s_i: float, s_f: float) -> float:
        raise NotImplementedError

    def initial(self, s_i: float, s_f: float) -> float:
        """The fraction before the window opens."""
        return s_i


@SCHEDULES.register("Linear")
class Linear(Schedule):
    """N2D2's staircase: +gamma every period (StepSizeThreshold), from start to threshold."""

    staircase = True
    params = ()


@SCHEDULES.register("Cubic")
class Cubic(Schedule):
    """Zhu & Gupta's cubic ramp from s_i to s_f over the window."""


    def fraction(self, t, t0, end, s_i, s_f):
        return cubic(t, t0, end, s_i, s_f)


@SCHEDULES.register("OneShot")
class OneShot(Schedule):
    """0 before the window's end, the target from then on."""


    def initial(self, s_i, s_f):
        return 0.0

    def fraction(self, t, t0, end, s_i, s_f):
        return s_f if t >= end else 0.0


@SCHEDULES.register("Iterative")
class Iterative(Schedule):
    """``steps`` rounds evenly spaced, each pruning the same share of what is left."""

    params = WINDOW_KEYS + (Key("PruningSteps", "steps", read_uint, 5, "rounds", _STEPS),)

    def initial(self, s_i, s_f):
        return 0.0

    def fraction(self, t, t0, end, s_i, s_f):
        n = self.args["steps"]
        if end <= t0:
            done = n if t >= end else 0
        else:
            done = min(n, max(0, int(math.floor((t - t0) / ((end - t0) / n) + 1e-9))))
        return 1.0 - (1.0 - s_f) ** (done / n)


def cubic(t: float, t0: float, end: float, s_i: float, s_f: float) -> float:
    """s_f + (s_i − s_f)(1 − (t − t0)/(end − t0))³, s_i before t0 and s_f after end."""
    if t <= t0:
        return s_i
    if t >= end:
        return s_f
    return s_f + (s_i - s_f) * (1.0 - (t - t0) / (end - t0)) ** 3


def _window_point(args, name: str, epoch_size: int, schedule: str):
    if args.get(name) is not None:
        return float(args[name])
    epochs = args.get(name + "_epochs")
    if epochs is None:
        return None
    if epoch_size <= 0:
        raise ValueError(f"schedule {schedule}: {name}_epochs needs the epoch size (set by the "
                         f"trainer or Pruner; else give {name} in stimuli)")
    return float(epochs) * epoch_size


def scheduled_fraction(schedule: Schedule, position: int, start: float, target: float,
                       period: int, horizon: int, epoch_size: int) -> float:
    """The fraction a position-based schedule asks for after ``position`` stimuli.

    Window: ``begin`` (default 0) to ``end`` (default 75 % of ``horizon``); positions are
    rounded down to a multiple of the frequency (default ``period``) from ``begin``.
    """
    args = schedule.args
    begin = _window_point(args, "begin", epoch_size, schedule.name) or 0.0
    end = _window_point(args, "end", epoch_size, schedule.name)
    if end is None:
        if horizon <= 0:
            raise ValueError(f"schedule {schedule.name}: no window end: give end (INI "
                             f"PruningEnd) or end_epochs, or set the PruneCell's horizon "
                             f"(stimuli in the run; the trainer and Pruner set it)")
        end = HORIZON_FRACTION * horizon
    end = max(end, begin)
    frequency = args.get("frequency") or period
    t = float(position)
    if frequency > 0 and t > begin:
        t = begin + math.floor((t - begin) / frequency) * frequency
    return schedule.fraction(t, begin, end, start, target)
