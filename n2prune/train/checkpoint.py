"""Checkpoints written atomically and read back with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from n2prune.atomic import atomic_write


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` written atomically (never a half-written checkpoint)."""
    atomic_write(path, lambda out: torch.save(obj, out))


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """A checkpoint written by :func:`save_atomic`; a clear error when it is unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no checkpoint to resume from (run without --resume "
                         f"first)") from None
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise ValueError(f"{path}: unreadable checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'damaged'})") from None
