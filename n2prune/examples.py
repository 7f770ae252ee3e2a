"""An example input, as compaction, sparsification, costs and export take it: a tensor, a
tuple (or list) of positional arguments, or a dict of keyword arguments (a Hugging Face
tokenizer's output).

>>> import torch
>>> run(torch.nn.Linear(2, 1), {"input": torch.ones(3, 2)}).shape
torch.Size([3, 1])
"""

from __future__ import annotations

from typing import Any, Tuple

import torch
from torch import nn


def as_call(example: Any) -> Tuple[tuple, dict]:
    """``example`` as positional and keyword arguments; a TypeError for anything else."""
    if isinstance(example, torch.Tensor):
        return (example,), {}
    if isinstance(example, (tuple, list)):
        return tuple(example), {}
    if isinstance(example, dict) or hasattr(example, "keys"):
        return (), dict(example)
    raise TypeError(f"example must be a tensor, a tuple of arguments or a dict of keyword "
                    f"arguments, got {type(example).__name__}")


def run(model: nn.Module, example: Any) -> Any:
    """``model`` called on ``example`` (:func:`as_call`)."""
    args, kwargs = as_call(example)
    return model(*args, **kwargs)
