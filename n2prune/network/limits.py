"""Bounding what building a network may allocate, checked before torch allocates it.

An INI file can ask for ``NbOutputs=1000000000`` or ``SizeX=10000000``: torch would try to
allocate terabytes (or fail with an unpacking TypeError on sizes past int64). While a cell is
built, :class:`AllocationGuard` (a ``TorchFunctionMode``) sees every factory call (``empty``,
``zeros``, ``ones``, ``full``, ``rand*``, ``arange``, ``linspace``, ``eye``, ``Tensor.new_*``) with its size *before* the call,
adds the elements up for the whole network, and raises a ConfigError naming the cell when
the total would pass the limit.

``MAX_NETWORK_ELEMENTS`` = 2**31 elements (8 GiB of float32) for parameters, masks and
buffers together: about 15 times VGG-16 (138 M weights, plus as many mask elements when
pruned), the largest stock N2D2 model, and what a 16 GiB machine can still hold.
``build_network(max_elements=...)`` changes it.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch.overrides import TorchFunctionMode

from n2prune.errors import ConfigError

MAX_NETWORK_ELEMENTS = 2 ** 31
# Torch calls while building a network: the stock MobileNet_v1 makes about 6,000, ResNet-18
# 1,300; a Mapping.NbIterations=1e12 loop would never end. 1M calls is a few seconds.
MAX_BUILD_CALLS = 1_000_000

_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn,
              torch.randint, torch.empty_strided, torch.eye, torch.arange, torch.linspace}
_METHODS = {torch.Tensor.new_empty, torch.Tensor.new_zeros, torch.Tensor.new_ones,
            torch.Tensor.new_full}


def _numel(size: Any) -> Optional[int]:
    """Elements of a size given as ints or one sequence of ints; None when not a size."""
    if isinstance(size, (list, tuple, torch.Size)):
        if not all(isinstance(dim, int) for dim in size):
            return None
        return math.prod(size)
    return None


def requested_elements(func: Any, args: tuple, kwargs: dict) -> Optional[int]:
    """How many elements ``func(*args, **kwargs)`` would allocate, when it is a factory."""
    if func in _METHODS:
        args = args[1:]  # self
    elif func not in _FACTORIES:
        return None
    if func is torch.randint:  # randint(high, size) / randint(low, high, size)
        size = kwargs.get("size", next((a for a in args if isinstance(a, (tuple, list))), None))
        return _numel(size) if size is not None else None
    if func is torch.arange:  # arange(end) / arange(start, end[, step])
        numbers = [a for a in args if isinstance(a, (int, float))][:3]
        if not numbers:
            return None
        start, end, step = (0, numbers[0], 1) if len(numbers) == 1 else \
            (numbers[0], numbers[1], numbers[2] if len(numbers) > 2 else 1)
        if step == 0 or not all(math.isfinite(n) for n in (start, end, step)):
            return None  # torch refuses these itself
        return max(0, math.ceil((end - start) / step))
    if func is torch.linspace:
        steps = args[2] if len(args) > 2 else kwargs.get("steps")
        return steps if isinstance(steps, int) else None
    if func is torch.eye:
        return args[0] * (args[1] if len(args) > 1 and isinstance(args[1], int) else args[0]) \
            if args and isinstance(args[0], int) else None
    if "size" in kwargs:
        return _numel(kwargs["size"])
    if func in (torch.full, torch.Tensor.new_full):
        args = args[:1]  # (size, fill_value)
    if func is torch.empty_strided:
        args = args[:1]
    if len(args) == 1 and isinstance(args[0], (list, tuple, torch.Size)):
        return _numel(args[0])
    if args and all(isinstance(arg, int) for arg in args):
        return math.prod(args)
    return None


class OverLimit(Exception):
    """Raised inside a cell's builder (not a ValueError, so builders do not re-word it);
    :meth:`AllocationGuard.located` turns it into a ConfigError. ``count`` is None when the
    limit passed is the number of torch calls."""

    def __init__(self, count: Optional[int], total: int):
        super().__init__(count, total)
        self.count, self.total = count, total


class AllocationGuard(TorchFunctionMode):
    """Counts the elements torch factories are asked for; raises OverLimit past ``limit``."""

    def __init__(self, limit: int = MAX_NETWORK_ELEMENTS, max_calls: Optional[int] = None):
        super().__init__()
        self.limit, self.total, self.calls = limit, 0, 0
        self.max_calls = MAX_BUILD_CALLS if max_calls is None else max_calls

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls += 1
        if self.calls > self.max_calls:
            raise OverLimit(None, self.calls)
        count = requested_elements(func, args, kwargs)
        if count is not None:
            self.charge(count)
        return func(*args, **kwargs)

    def charge(self, count: int) -> None:
        """Add ``count`` elements; OverLimit when past the limit."""
        if count < 0:
            return  # torch reports negative sizes itself
        if self.total + count > self.limit:
            raise OverLimit(count, self.total + count)
        self.total += count

    def located(self, error: OverLimit, section: Any) -> ConfigError:
        """The ConfigError for ``error``, at the header of the cell ``section``."""
        if error.count is None:
            return section.error(None, f"building the network takes more than "
                                       f"{self.max_calls} torch operations (by this cell): "
                                       "a size or iteration count far too large?")
        return section.error(None, f"building this cell would allocate {error.count:.4g} "
                                   f"elements ({error.total:.4g} for the network so far): "
                                   f"over the limit of {self.limit} elements "
                                   f"({self.limit * 4 / 2 ** 30:.4g} GiB of float32; "
                                   "build_network(max_elements=...) changes it)")
