"""Compacted Hugging Face models: saved with ``save_pretrained``, reloaded with
:func:`from_pretrained`.

transformers 4.x had ``PreTrainedModel.prune_heads`` and ``config.pruned_heads``, which
``from_pretrained`` replayed to rebuild a smaller model. transformers 5 removed both, and its
``from_pretrained`` builds every layer at the widths of the config, so a checkpoint with 10
heads in one layer and 12 in the next cannot load there. The closest thing that round-trips:
compaction records ``config.pruned_heads`` (``{layer: [heads]}``, as 4.x did) and every
layer's width is in the checkpoint itself; :func:`from_pretrained` builds the model from its
config, gives each layer the shape its saved weights have, updates the head counts, and loads
the weights strictly (nothing missing, nothing left over).

>>> small.save_pretrained("small")                                  # doctest: +SKIP
>>> again = from_pretrained(transformers.AutoModel, "small")        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Dict, List, Union

import torch
from torch import nn


def _optional(module: str):
    """An optional package of the ``.[hf]`` extra, imported only when used (``import
    n2prune`` stays light: transformers pulls in PIL and more)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RuntimeError(f"this needs {module.split('.')[0]}: pip install 'n2prune[hf]'") \
            from None


def is_hf_model(model: nn.Module) -> bool:
    """A transformers ``PreTrainedModel`` (it has a config and ``save_pretrained``)."""
    return hasattr(model, "config") and hasattr(model, "save_pretrained") and \
        hasattr(model.config, "to_dict")


def record_pruned_heads(model: nn.Module, heads: Dict[str, dict]) -> None:
    """Add the removed heads of each attention module to ``model.config.pruned_heads``,
    keyed by layer index (the first number in the module's name), as transformers 4.x did."""
    pruned = {int(k): set(v) for k, v in (getattr(model.config, "pruned_heads", None)
                                          or {}).items()}
    for module, info in heads.items():
        found = re.search(r"(?:^|\.)(\d+)(?:\.|$)", module)
        if found is None:
            continue
        pruned.setdefault(int(found.group(1)), set()).update(info["removed"])
    model.config.pruned_heads = {k: sorted(v) for k, v in sorted(pruned.items())}


def _state_dict(path: Path) -> Dict[str, torch.Tensor]:
    load_file = _optional("safetensors.torch").load_file
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: no *.safetensors file (write it with "
                                f"save_pretrained)")
    state: Dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


def resize_to(model: nn.Module, state: Dict[str, torch.Tensor]) -> List[str]:
    """Give each Linear / Conv / BatchNorm of ``model`` the shape of its weights in
    ``state``; returns the layers resized."""
    resized = []
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if key not in state or not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d,
                                                      nn.BatchNorm1d, nn.BatchNorm2d)):
            continue
        shape = state[key].shape
        if tuple(module.weight.shape) == tuple(shape):
            continue
        module.weight = nn.Parameter(torch.empty(shape, dtype=module.weight.dtype))
        if getattr(module, "bias", None) is not None:
            module.bias = nn.Parameter(torch.empty(shape[0], dtype=module.bias.dtype))
        if isinstance(module, nn.Linear):
            module.out_features, module.in_features = shape
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.num_features = shape[0]
            module.running_mean = torch.zeros(shape[0])
            module.running_var = torch.ones(shape[0])
        else:
            module.out_channels = shape[0]
            module.in_channels = shape[1] * module.groups
        resized.append(name)
    return resized


def _set_head_counts(model: nn.Module) -> None:
    pruned = {int(k): len(v) for k, v in (getattr(model.config, "pruned_heads", None)
                                          or {}).items()}
    total = getattr(model.config, "num_attention_heads", None)
    for name, module in model.named_modules():
        found = re.search(r"(?:^|\.)(\d+)(?:\.|$)", name)
        if found is None or int(found.group(1)) not in pruned or total is None:
            continue
        if getattr(module, "num_attention_heads", None) == total:
            size = getattr(module, "attention_head_size", None)
            module.num_attention_heads = total - pruned[int(found.group(1))]
            if size is not None and hasattr(module, "all_head_size"):
                module.all_head_size = module.num_attention_heads * size


def from_pretrained(model_class, path: Union[str, Path], **config_kwargs) -> nn.Module:
    """Reload a compacted model written by ``save_pretrained``: ``model_class`` (e.g.
    ``transformers.AutoModel`` or ``BertModel``) built from the saved config, layers resized
    to the saved weights, weights loaded strictly; eval mode."""
    from_config = getattr(model_class, "from_config", None) or model_class._from_config
    config_class = getattr(model_class, "config_class", None) or \
        _optional("transformers").AutoConfig
    path = Path(path)
    config = config_class.from_pretrained(str(path), **config_kwargs)
    model = from_config(config)
    state = _state_dict(path)
    resize_to(model, state)
    _set_head_counts(model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in _non_persistent(model)]
    if missing or unexpected:
        raise ValueError(f"{path}: the checkpoint does not match {type(model).__name__}: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def _non_persistent(model: nn.Module) -> set:
    names = set()
    for name, module in model.named_modules():
        for buffer in getattr(module, "_non_persistent_buffers_set", ()):
            names.add(f"{name}.{buffer}" if name else buffer)
    return names
