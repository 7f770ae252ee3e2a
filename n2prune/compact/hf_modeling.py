"""A compacted Hugging Face model's layers rebuilt at their compacted widths from its config.

``n2prune.compact.hf.save_pretrained`` copies this file into the folder it writes, as
``modeling_compacted.py``, followed by one small subclass per model class (``CompactedBertModel(
BertModel)``: ``__init__`` builds the stock model, then calls :func:`resize_compacted`), and
points the config's ``auto_map`` at them. The file imports only torch (the classes appended
import transformers), so the folder loads wherever transformers does, n2prune not needed:
``transformers.AutoModel.from_pretrained(folder, trust_remote_code=True)``.

The config key ``compacted_layers`` maps a module's name (in the saved model) to what differs
from the stock model built from the same config::

    {"encoder.layer.0.attention.self": {"attributes": {"num_attention_heads": 10,
                                                       "all_head_size": 320}},
     "encoder.layer.0.attention.self.query": {"shapes": {"weight": [320, 384], "bias": [320]},
                                              "attributes": {"out_features": 320}},
     "some.layer": {"shift": [64, 1, 1]}}

``shapes``: the parameters and buffers of a smaller shape (their values come from the
checkpoint); ``attributes``: integer attributes (widths, head counts); ``shift``: a constant map
added to the module's output (removed channels' contributions that could not be folded into
a bias), a buffer named ``compaction_shift``.
"""

import torch
from torch import nn

COMPACTED_KEY = "compacted_layers"
SHIFT = "compaction_shift"


def _add_shift(module, args, output):
    return output + module.compaction_shift


def _module(model, name, modules, headless):
    """The module ``name`` names in the saved model; a base model loaded from a folder saved
    from a model with a head (``headless``) drops the ``base_model_prefix`` and has no head."""
    if name in modules:
        return modules[name]
    prefix = getattr(model, "base_model_prefix", "") + "."
    if headless and name.startswith(prefix) and name[len(prefix):] in modules:
        return modules[name[len(prefix):]]
    if headless and not name.startswith(prefix):
        return None
    raise ValueError(f"config.{COMPACTED_KEY}: {type(model).__name__} has no module "
                     f"{name!r} (the folder was saved from another architecture)")


def _replace(module, name, shape):
    old = getattr(module, name)
    new = torch.empty(tuple(shape), dtype=old.dtype, device=old.device)
    if name in module._parameters:
        setattr(module, name, nn.Parameter(new, requires_grad=old.requires_grad))
    else:
        module.register_buffer(name, new,
                               persistent=name not in module._non_persistent_buffers_set)


def resize_compacted(model, config):
    """Give ``model`` (built from ``config``) the widths and head counts in
    ``config.compacted_layers``, before its weights are loaded; returns the names of the
    modules changed."""
    layers = getattr(config, COMPACTED_KEY, None) or {}
    modules = dict(model.named_modules())
    prefix = getattr(model, "base_model_prefix", "")
    headless = bool(prefix) and prefix not in modules and \
        any(name.startswith(prefix + ".") for name in layers)
    changed = []
    for name, spec in layers.items():
        module = _module(model, name, modules, headless)
        if module is None:
            continue
        for tensor, shape in spec.get("shapes", {}).items():
            _replace(module, tensor, shape)
        for attribute, value in spec.get("attributes", {}).items():
            setattr(module, attribute, tuple(value) if isinstance(value, list) else value)
        if "shift" in spec:
            module.register_buffer(SHIFT, torch.zeros(tuple(spec["shift"])))
            module.register_forward_hook(_add_shift)
        changed.append(name)
    return changed

