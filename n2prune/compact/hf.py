"""Compacted Hugging Face models: :func:`save_pretrained` writes a folder that
``transformers.AutoModel.from_pretrained(folder, trust_remote_code=True)`` reloads at the
compacted widths (n2prune not needed); :func:`from_pretrained` reloads it, or a folder written by
the model's own ``save_pretrained``, without running the folder's code.

transformers 4.x had ``PreTrainedModel.prune_heads`` and ``config.pruned_heads``, which
``from_pretrained`` replayed to rebuild a smaller model. transformers 5 removed both, and its
``from_pretrained`` builds every layer at the widths of the config, so a checkpoint with 10
heads in one layer and 12 in the next cannot load there. The closest thing that round-trips:
compaction records ``config.pruned_heads`` (``{layer: [heads]}``, as 4.x did) and every
layer's width is in the checkpoint itself; :func:`from_pretrained` builds the model from its
config, gives each layer the shape its saved weights have, updates the head counts, and loads
the weights strictly (nothing missing, nothing left over).

The library's own mechanism for an architecture the stock class cannot express (10 heads
of 32 in a layer whose config says 384 / 12) is code saved with the checkpoint:
:func:`save_pretrained` adds the layer widths and head counts to ``config.json``
(``compacted_layers``, see :mod:`.hf_modeling`), a self-contained ``modeling_compacted.py``
whose ``Compacted<Class>`` subclasses the stock class and resizes its layers in ``__init__``,
and ``auto_map`` entries for the Auto classes that build the stock class.

>>> save_pretrained(small, "small")                                 # doctest: +SKIP
>>> AutoModel.from_pretrained("small", trust_remote_code=True)      # doctest: +SKIP
>>> from_pretrained(AutoModel, "small")                             # doctest: +SKIP
"""

from __future__ import annotations

import copy
import importlib
import inspect
import re
from pathlib import Path
from typing import Dict, List, Union

import torch
from torch import nn

from n2prune.compact import hf_modeling
from n2prune.compact.hf_modeling import COMPACTED_KEY, SHIFT, resize_compacted

MODELING_FILE = "modeling_compacted.py"
CLASS_TEMPLATE = '''

from transformers import {base}


class Compacted{base}({base}):
    """{base} whose layers have the widths and head counts of ``config.compacted_layers``."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        resize_compacted(self, config)
'''


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
    model = from_config(config)              # the stock class: the folder's code is not run
    state = _state_dict(path)
    if getattr(config, COMPACTED_KEY, None):
        resize_compacted(model, config)
    else:
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


def auto_classes(model_class: type) -> Dict[str, str]:
    """The transformers Auto classes that build ``model_class`` for its model type
    (``{"AutoModel": "BertModel"}`` for ``BertModel``), and ``AutoModel`` building the base
    model for a model with a head; from the library's own tables."""
    auto = _optional("transformers.models.auto.modeling_auto")
    model_type = getattr(getattr(model_class, "config_class", None), "model_type", None)
    found = {}
    for name in sorted(dir(auto)):
        names = getattr(getattr(getattr(auto, name), "_model_mapping", None), "_model_mapping",
                        None)
        if not name.startswith("AutoModel") or not isinstance(names, dict):
            continue
        built = names.get(model_type)
        built = [built] if isinstance(built, str) else list(built or ())
        if model_class.__name__ in built or name == "AutoModel" and built:
            found[name] = model_class.__name__ if model_class.__name__ in built else built[0]
    return found


def stock_class(model_class: type) -> type:
    """The transformers class a (possibly ``Compacted...``) model class derives from."""
    for cls in model_class.__mro__:
        if cls.__module__.startswith("transformers.models."):
            return cls
    raise TypeError(f"{model_class.__name__} is not a transformers model class (no base "
                    f"class in transformers.models)")


def compacted_layers(model: nn.Module) -> Dict[str, dict]:
    """What differs in ``model`` from the stock model of its class and config (the
    ``compacted_layers`` config key, :mod:`.hf_modeling`): smaller parameters and buffers,
    changed integer attributes, constant output shifts."""
    config = copy.deepcopy(model.config)
    for key in (COMPACTED_KEY, "auto_map"):
        if hasattr(config, key):
            delattr(config, key)
    with torch.device("meta"):
        stock = stock_class(type(model))(config)
    reference = dict(stock.named_modules())
    layers: Dict[str, dict] = {}
    for name, module in model.named_modules():
        if name not in reference:
            raise ValueError(f"save_pretrained: {type(model).__name__} has a module {name!r} "
                             f"({type(module).__name__}) the stock model lacks; detach "
                             f"n2prune (n2prune.detach(model, bake=True)) before saving")
        spec = _differences(name, module, reference[name])
        if spec:
            layers[name] = spec
    return layers


def _differences(name: str, module: nn.Module, stock: nn.Module) -> dict:
    spec: dict = {}
    tensors = {**module._parameters, **module._buffers}
    stock_tensors = {**stock._parameters, **stock._buffers}
    for key, tensor in tensors.items():
        if key == SHIFT and key not in stock_tensors:
            spec["shift"] = list(tensor.shape)
        elif key not in stock_tensors:
            raise ValueError(f"save_pretrained: {name}.{key} has no counterpart in the stock "
                             f"{type(stock).__name__}; cannot be rebuilt from the config")
        elif tensor is not None and tuple(tensor.shape) != tuple(stock_tensors[key].shape):
            spec.setdefault("shapes", {})[key] = list(tensor.shape)
    for key, value in vars(module).items():
        stock_value = getattr(stock, key, None)
        if _integers(value) and _integers(stock_value) and value != stock_value:
            spec.setdefault("attributes", {})[key] = list(value) \
                if isinstance(value, tuple) else value
    return spec


def _integers(value) -> bool:
    if isinstance(value, tuple):
        return all(_integers(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def save_pretrained(model: nn.Module, path: Union[str, Path], **kwargs) -> List[str]:
    """Write a compacted Hugging Face ``model`` so that
    ``transformers.AutoModel.from_pretrained(path, trust_remote_code=True)`` (or the
    ``AutoModelFor...`` class of its head) rebuilds it: the model's own ``save_pretrained``
    (``kwargs`` passed on) with ``compacted_layers`` and ``auto_map`` added to its config, and
    ``modeling_compacted.py`` (torch and transformers only). ``model`` is left unchanged;
    returns the Auto classes mapped."""
    if not is_hf_model(model):
        raise TypeError(f"save_pretrained: a {type(model).__name__} is not a transformers "
                        f"model; save a compacted torch model with torch.save(model, path)")
    base = stock_class(type(model))
    autos = auto_classes(base)
    if not autos:
        raise ValueError(f"save_pretrained: no transformers Auto class builds "
                         f"{base.__name__}; its folder could not be loaded with auto_map")
    classes = sorted(set(autos.values()))
    source = inspect.getsource(hf_modeling) + "".join(
        CLASS_TEMPLATE.format(base=name) for name in classes)
    config = model.config
    saved = {key: getattr(config, key) for key in (COMPACTED_KEY, "auto_map")
             if hasattr(config, key)}
    layers = compacted_layers(model)
    module = MODELING_FILE[:-3]
    try:
        setattr(config, COMPACTED_KEY, layers)
        config.auto_map = {auto: f"{module}.Compacted{name}" for auto, name in autos.items()}
        model.save_pretrained(str(path), **kwargs)
    finally:
        for key in (COMPACTED_KEY, "auto_map"):
            if key in saved:
                setattr(config, key, saved[key])
            elif hasattr(config, key):
                delattr(config, key)
    (Path(path) / MODELING_FILE).write_text(source)
    return sorted(autos)
