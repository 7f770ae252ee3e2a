"""N2D2's seed rule, the same in every command: ``-seed 0`` picks a seed from the clock; and
a ``torch.Generator``'s state as a checkpoint holds it.

>>> resolve_seed(7)
7
>>> resolve_seed(0) > 0
True
"""

from __future__ import annotations

import time
from typing import Any

import torch


def resolve_seed(seed: int) -> int:
    """``seed`` itself, or for 0 a time-based one in [1, 2**31 - 2] (as N2D2 does); a
    negative seed is refused."""
    if seed < 0:
        raise ValueError(f"-seed must be >= 0 (0 picks one from the clock), got {seed}")
    if seed == 0:
        return int(time.time()) % (2**31 - 1) or 1
    return seed


def generator_state(generator: torch.Generator) -> torch.Tensor:
    """``generator``'s state as a plain uint8 tensor of its own (contiguous, no shared
    storage), so ``safetensors``, Hugging Face ``save_pretrained`` and ``torch.onnx.export``
    accept a state_dict holding it."""
    return generator.get_state().clone()


def restore_generator(generator: torch.Generator, state: Any, owner: str) -> None:
    """Set ``generator`` from :func:`generator_state`'s tensor, or from the dict
    ``{"generator": tensor}`` older checkpoints hold (nothing when it has no generator);
    anything else is refused with a line naming ``owner``."""
    if isinstance(state, dict):
        state = state.get("generator")
        if state is None:
            return
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.dim() != 1:
        got = (f"a {state.dtype} tensor of shape {tuple(state.shape)}"
               if isinstance(state, torch.Tensor) else f"a {type(state).__name__}")
        raise ValueError(f"{owner}: the saved extra state must be the generator state (a 1-d "
                         f"uint8 tensor), got {got}")
    try:
        generator.set_state(state.detach().cpu().contiguous())
    except RuntimeError as exc:
        raise ValueError(f"{owner}: the saved generator state (uint8 tensor of "
                         f"{state.numel()} bytes) does not fit a CPU torch.Generator "
                         f"({str(exc).splitlines()[0]})") from None
