"""Checkpoints: written atomically with a digest of their contents, read back with
``torch.load(weights_only=True)``, the digest verified and the structure checked.

A file whose bytes were altered (a bit flip inside a well-formed zip loads without complaint
from torch) or whose structure is not the expected one is refused with one line naming the
file, never used:

>>> save_atomic({"net": {}, "seed": 1}, path)                              # doctest: +SKIP
>>> load_checkpoint(path, MODEL_KEYS)["seed"]                              # doctest: +SKIP
1
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import torch

from n2prune.atomic import atomic_write

DIGEST = "sha256"  # the key holding the digest of every other entry

Kinds = Union[type, Tuple[type, ...]]
# What each file must hold (key -> accepted types); a missing or mistyped entry is refused.
MODEL_KEYS: Dict[str, Kinds] = {"net": dict, "seed": int}
RUN_KEYS: Dict[str, Kinds] = {
    "format": int, "identity": dict, "seed": int, "net": dict,
    "optimizers": list, "torch_rng": torch.Tensor, "generator": torch.Tensor, "state": dict,
    "pruner": dict}
RUN_FORMAT = 3  # 3: the Pruner's state (calibration window, position) is saved too
STATE_KEYS: Dict[str, Kinds] = {
    "batches": int, "stimuli": int, "rows": list, "learning_seconds": float,
    "best": (dict, type(None)), "order": (torch.Tensor, type(None))}
BEST_KEYS: Dict[str, Kinds] = {"score": float, "log_point": int, "state": dict}
IDENTITY_KEYS: Dict[str, Kinds] = {"files": list, "environ": dict, "options": dict}


def content_digest(obj: Any) -> str:
    """SHA-256 of ``obj``'s contents: tensors (dtype, shape, bytes), containers and scalars,
    in order. Equal for an object and its ``torch.save``/``torch.load`` round trip."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(obj.shape)}:".encode())
        if tensor.numel():
            digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        digest.update(f"D{len(obj)}:".encode())
        for key, value in obj.items():
            _feed(digest, key)
            _feed(digest, value)
    elif isinstance(obj, (list, tuple)):
        digest.update(f"L{type(obj).__name__}{len(obj)}:".encode())
        for value in obj:
            _feed(digest, value)
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        digest.update(f"S{len(data)}:".encode() + data)
    elif isinstance(obj, bytes):
        digest.update(f"Y{len(obj)}:".encode() + obj)
    elif isinstance(obj, float):
        digest.update(f"F{obj.hex()};".encode())
    elif obj is None or isinstance(obj, (bool, int)):
        digest.update(f"{type(obj).__name__}{obj!r};".encode())
    else:  # what weights_only=True can load besides the above (dtype, device, ...)
        text = f"{type(obj).__name__}{obj!r}"
        digest.update(f"O{len(text)}:{text}".encode())


def save_atomic(obj: Dict[str, Any], path: Path) -> None:
    """``torch.save`` of ``obj`` plus the digest of its contents, written atomically."""
    if DIGEST in obj:
        raise ValueError(f"{DIGEST!r} is reserved for the checkpoint digest")
    data = dict(obj)
    data[DIGEST] = content_digest(obj)
    atomic_write(path, lambda out: torch.save(data, out))


def load_checkpoint(path: Path, keys: Mapping[str, Kinds] = MODEL_KEYS) -> Dict[str, Any]:
    """A file written by :func:`save_atomic`, its digest verified and ``keys`` present with
    the right types; anything else is one ValueError line naming the file."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise ValueError(f"{path}: unreadable checkpoint, damaged or truncated "
                         f"({type(exc).__name__}: {_first_sentence(str(exc))})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not an n2prune checkpoint (it holds a "
                         f"{type(data).__name__}, not a dict)")
    recorded = data.pop(DIGEST, None)
    if not isinstance(recorded, str):
        raise ValueError(f"{path}: no integrity digest (damaged, or not written by this "
                         f"version of n2prune); refusing to use it")
    if content_digest(data) != recorded:
        raise ValueError(f"{path}: damaged: its contents do not match the digest recorded "
                         f"when it was written; refusing to use it")
    require_keys(data, keys, str(path))
    return data


def require_keys(data: Mapping[str, Any], keys: Mapping[str, Kinds], where: str) -> None:
    """ValueError naming ``where`` and the first missing or mistyped entry of ``keys``."""
    for key, kinds in keys.items():
        if key not in data:
            raise ValueError(f"{where}: not an n2prune checkpoint of this kind: no {key!r} "
                             f"entry")
        if not isinstance(data[key], kinds) or (kinds is int and isinstance(data[key], bool)):
            raise ValueError(f"{where}: entry {key!r} is a {type(data[key]).__name__}, "
                             f"expected {_names(kinds)}")


def load_state_into(module: torch.nn.Module, state: Mapping[str, Any], where: str) -> None:
    """``module.load_state_dict(state)`` with a mismatch as one ValueError line."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        text = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        if len(text) > 300:
            text = text[:300] + "..."
        raise ValueError(f"{where}: its network does not fit this one ({text})") from None


def _first_sentence(text: str, limit: int = 120) -> str:
    """The first sentence of an exception's text, at most ``limit`` characters (torch's
    own messages for a damaged file run to several sentences of advice)."""
    first = text.strip().splitlines()[0] if text.strip() else "damaged"
    first = first.split(". ")[0].rstrip(".")
    return first if len(first) <= limit else first[:limit - 3] + "..."


def _names(kinds: Kinds) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
