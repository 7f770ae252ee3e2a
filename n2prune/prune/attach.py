"""Pruning any PyTorch model: ``attach`` a PruneCell to its Linear / Conv / ConvTranspose layers.

The weight stays the same ``nn.Parameter`` under its usual name (optimisers stay valid); the
PruneCell is the layer's ``quantizer`` submodule, so its mask travels in ``state_dict`` as
``<layer>.quantizer.mask``. A forward pre-hook puts ``weight * mask`` in the weight's slot for
the duration of the layer's forward (one multiply, no other copy) and a forward hook that always
runs puts the Parameter back, so pruned weights get a zero gradient. ``detach`` bakes the zeros
into the weight and leaves a plain torch model with ordinary state_dict keys.

``layer.quantizer = PruneCell(...)`` on a plain torch layer does the same as ``attach`` (a global
module-registration hook sees it); on a layer that cannot be pruned it raises TypeError.

>>> import torch, n2prune
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> cells = n2prune.attach(model, prune_mode="Static", threshold=0.5, prune_filler="Magnitude")
>>> sorted(cells)
['0', '2']
>>> n2prune.detach(model)
['0', '2']
>>> int((model[0].weight == 0).sum())
32
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.nn.modules.module import register_module_module_registration_hook
from torch.nn.utils import parametrize

from n2prune.cells.weighted import WeightCell
from n2prune.prune.prunecell import PruneCell
from n2prune.prune.reached import report as report_missed
from n2prune.prune.ranking import SCOPES, scope_of, teams
from n2prune.registry import Registry

#: Layer types ``attach`` and ``layer.quantizer = PruneCell(...)`` accept.
SUPPORTED: Tuple[Type[nn.Module], ...] = (nn.Linear, _ConvNd, WeightCell)
_SUPPORTED_TEXT = ("nn.Linear, nn.Conv1d/2d/3d, nn.ConvTranspose1d/2d/3d and n2prune Conv/Fc "
                   "(or subclasses)")
_STASH = "_n2prune_weight"
#: ``detach(model, bake=<name>, **options)`` beyond True/False, by name (``"sparse"``:
#: ``n2prune.sparse.convert``, which registers ``sparsify``).
BAKES: "Registry[Any]" = Registry("detach bake mode")
Pattern = Union[str, "re.Pattern[str]"]


def out_channel_dim(layer: nn.Module) -> int:
    """The weight dimension holding output channels: 1 for ConvTranspose ([in, out/groups,
    ...]), 0 for everything else ([out, in/groups, ...])."""
    return 1 if isinstance(layer, _ConvTransposeNd) else 0


def is_supported(layer: nn.Module) -> bool:
    """Whether a PruneCell can be attached to ``layer``."""
    return isinstance(layer, SUPPORTED)


# ---------------------------------------------------------------------------- hooks
def _masked_weight_pre_hook(layer: nn.Module, args: Any) -> None:
    cell = layer._modules.get("quantizer")
    if cell is None:
        return
    weight = layer._parameters["weight"]
    if _STASH in layer.__dict__:  # re-entered (a layer calling itself): already masked
        return
    layer.__dict__[_STASH] = weight
    cell.rebind(layer)
    layer._parameters["weight"] = cell.quantize(weight)


def _restore_weight_hook(layer: nn.Module, args: Any, output: Any) -> None:
    weight = layer.__dict__.pop(_STASH, None)
    if weight is not None:
        layer._parameters["weight"] = weight


def _has_hooks(layer: nn.Module) -> bool:
    return any(hook is _masked_weight_pre_hook for hook in layer._forward_pre_hooks.values())


def _install_hooks(layer: nn.Module) -> None:
    if not _has_hooks(layer):
        layer.register_forward_pre_hook(_masked_weight_pre_hook)
        layer.register_forward_hook(_restore_weight_hook, always_call=True)


def _remove_hooks(layer: nn.Module) -> None:
    for hooks, fn in ((layer._forward_pre_hooks, _masked_weight_pre_hook),
                      (layer._forward_hooks, _restore_weight_hook)):
        for key in [k for k, hook in hooks.items() if hook is fn]:
            del hooks[key]
            layer._forward_hooks_always_called.pop(key, None)


def _on_module_registration(parent: nn.Module, name: str, child: Optional[nn.Module]):
    """Global hook: ``layer.quantizer = PruneCell(...)`` on a plain torch layer attaches."""
    if name != "quantizer" or isinstance(parent, WeightCell):
        return None  # n2prune cells attach their quantizer themselves
    if child is None:
        _remove_hooks(parent)  # layer.quantizer = None detaches without baking
        return None
    if not isinstance(child, PruneCell):
        return None
    if not is_supported(parent):
        raise TypeError(f"PruneCell cannot be attached to {type(parent).__name__}: it prunes "
                        f"{_SUPPORTED_TEXT}; use n2prune.attach(model) to prune every "
                        f"supported layer of a model")
    problem = unprunable(parent)
    if problem:
        raise TypeError(f"PruneCell cannot be attached: {type(parent).__name__} {problem}")
    weight = getattr(parent, "weight", None)
    if isinstance(weight, nn.parameter.UninitializedParameter):
        raise TypeError(f"PruneCell cannot be attached to {type(parent).__name__} before its "
                        f"weight is initialised: run one forward pass first")
    _install_hooks(parent)
    child.out_channel_dim = out_channel_dim(parent)  # public (README); masks see the layer
    child.attach(parent)
    return None


_REGISTRATION = register_module_module_registration_hook(_on_module_registration)


# ---------------------------------------------------------------------------- attach
def _patterns(value: Union[None, Pattern, Iterable[Pattern]], what: str) -> List[Pattern]:
    if value is None:
        return []
    if isinstance(value, (str, re.Pattern)):
        return [value]
    values = list(value)
    for item in values:
        if not isinstance(item, (str, re.Pattern)):
            raise TypeError(f"attach: {what} must hold name globs (str) or re.compile(...) "
                            f"patterns, got {item!r}")
    return values


def _matches(name: str, patterns: Sequence[Pattern]) -> bool:
    return any(p.search(name) is not None if isinstance(p, re.Pattern)
               else fnmatch.fnmatchcase(name, p) for p in patterns)


def _types(types: Union[None, type, Iterable[type]]) -> Tuple[type, ...]:
    if types is None:
        return SUPPORTED
    chosen = (types,) if isinstance(types, type) else tuple(types)
    for kind in chosen:
        if not isinstance(kind, type) or not issubclass(kind, SUPPORTED):
            raise TypeError(f"attach: types={kind!r} cannot be pruned; allowed: "
                            f"{_SUPPORTED_TEXT}")
    return chosen


def select(model: nn.Module, include=None, exclude=None, types=None) -> Dict[str, nn.Module]:
    """The supported layers of ``model`` that ``attach`` would choose, by name.

    ``include`` / ``exclude``: a name glob (``"layer1.*"``, ``fnmatch`` rules, the whole name
    must match), a compiled regular expression (``re.compile("conv")``, searched), or a list of
    them; ``types``: a layer class or tuple of classes (default: every supported one).
    """
    inc, exc, kinds = _patterns(include, "include"), _patterns(exclude, "exclude"), _types(types)
    return {name: layer for name, layer in model.named_modules()
            if isinstance(layer, kinds) and (not inc or _matches(name, inc))
            and not _matches(name, exc)}


def attach(model: nn.Module, include=None, exclude=None, types=None, example: Any = None,
           **prunecell_args: Any) -> Dict[str, PruneCell]:
    """Put a ``PruneCell(**prunecell_args)`` on every supported layer of ``model`` that
    ``select`` chooses; returns ``{layer name: PruneCell}`` (masks computed now).

    With ``seed=s`` the i-th chosen layer's cell gets seed ``s + i`` (distinct Random masks).
    With ``scope="Global"`` the new cells' masks come from one ranking over all of them.
    ``example`` (an input of ``model``: a tensor, tuple or keyword dict) is what a scope that
    reads the model's structure records (``scope="Coupled"``: the channels tied across layers,
    ``n2prune.prune.coupled``).
    A layer that already carries a quantizer is an error: ``detach`` it first; so is a
    chosen layer whose weight another module shares (tied weights).
    """
    layers = select(model, include, exclude, types)
    if not layers:
        raise ValueError(f"attach: no layer of {type(model).__name__} matched "
                         f"(include={include!r}, exclude={exclude!r}, types={types!r}); "
                         f"prunable layers are {_SUPPORTED_TEXT}")
    taken = [name or "<model>" for name, layer in layers.items()
             if getattr(layer, "quantizer", None) is not None]
    if taken:
        raise ValueError(f"attach: {', '.join(taken)} already carr"
                         f"{'ies' if len(taken) == 1 else 'y'} a quantizer; "
                         f"n2prune.detach(model) first")
    tied = _tied_weights(model, layers)
    if tied:
        raise ValueError(tied)
    for name, layer in layers.items():
        problem = unprunable(layer)
        if problem:
            raise ValueError(f"attach: {name or '<model>'} ({type(layer).__name__}) {problem}")
    seed = prunecell_args.pop("seed", None)
    cells: Dict[str, PruneCell] = {}
    try:
        for index, (name, layer) in enumerate(layers.items()):
            extra = {} if seed is None else {"seed": seed + index}
            cell = PruneCell(**prunecell_args, **extra)
            # cells of a shared scope skip their own mask: one ranking of them all follows
            cell.ranked_later = scope_of(cell).shared
            layer.quantizer = cell  # attaches (WeightCell.__setattr__ or the registration hook)
            cells[name] = cell
        ranked = [cell for cell in cells.values() if cell.ranked_later]
        for cell in ranked:
            cell.ranked_later = False
        for name, team in teams(ranked).items():
            scope = SCOPES.get(name)
            if scope.bind is not None:
                scope.bind(model, {n: c for n, c in cells.items() if c in team}, example)
            scope.rank(team)
    except BaseException:
        _undo(layers, cells)  # atomic: no PruneCell stays on the layers done before
        raise
    report_missed(cells)
    return cells


def _undo(layers: Dict[str, nn.Module], cells: Dict[str, PruneCell]) -> None:
    for name in cells:
        layer = layers[name]
        if isinstance(layer, WeightCell):
            layer.quantizer = None
        else:
            layer._modules.pop("quantizer", None)
            _remove_hooks(layer)
    for cell in cells.values():
        cell.ranked_later = False


def unprunable(layer: nn.Module) -> Optional[str]:
    """Why a PruneCell cannot go on ``layer`` although its type is supported (a weight
    computed by a parametrisation or another pruning tool, a weight without data), or None."""
    if parametrize.is_parametrized(layer, "weight"):
        return ("has a parametrised weight (torch.nn.utils.parametrizations: weight_norm, "
                "spectral_norm, ...): remove it first, e.g. "
                "torch.nn.utils.parametrize.remove_parametrizations(layer, 'weight')")
    hooks = [type(hook).__name__ for hook in layer._forward_pre_hooks.values()]
    if "WeightNorm" in hooks or "SpectralNorm" in hooks:
        return ("has a weight computed by torch.nn.utils.weight_norm / spectral_norm: "
                "remove it first (torch.nn.utils.remove_weight_norm(layer))")
    if "weight_orig" in layer._parameters or "weight_mask" in layer._buffers:
        return ("is already pruned by torch.nn.utils.prune (weight_orig, weight_mask): "
                "torch.nn.utils.prune.remove(layer, 'weight') first")
    weight = layer._parameters.get("weight")
    if weight is not None and weight.is_meta:
        return ("has its weight on the meta device (no values to rank): load or "
                "materialise the weights first (model.to_empty(device=...) and "
                "load_state_dict)")
    return None


def _tied_weights(model: nn.Module, layers: Dict[str, nn.Module]) -> Optional[str]:
    """The error for a chosen layer whose weight Parameter another module also holds (tied
    weights): the mask would apply in one forward and not in the other's."""
    owners: Dict[int, List[str]] = {}
    for name, module in model.named_modules():
        for param in module._parameters.values():
            if param is not None:
                owners.setdefault(id(param), []).append(name or "<model>")
    for name, layer in layers.items():
        weight = layer._parameters.get("weight")
        others = [] if weight is None else [
            other for other in owners[id(weight)] if other != (name or "<model>")]
        if others:
            return (f"attach: {name or '<model>'}'s weight is tied to "
                    f"{', '.join(others)}'s (one Parameter): a mask would not follow every "
                    f"use of it; exclude all of them (exclude=[...]) or untie the weights")
    return None


def pruned_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """The layers of ``model`` that carry a PruneCell, by name."""
    return {name: layer for name, layer in model.named_modules()
            if isinstance(layer._modules.get("quantizer"), PruneCell)}


@torch.no_grad()
def detach(model: nn.Module, bake: Union[bool, str] = True, **options: Any) -> Any:
    """Remove every PruneCell from ``model``; returns the names of the layers it was on.

    ``bake=True`` multiplies each weight by its mask in place first (the same Parameter), so the
    zeros stay: what remains is a plain torch model whose ``state_dict`` has ordinary keys.
    ``bake="sparse"`` (``BAKES``) returns ``n2prune.sparsify(model, **options)``'s report.
    """
    if isinstance(bake, str):
        return BAKES.get(bake)(model, **options)
    if options:
        raise TypeError(f"detach: {', '.join(options)} only go with a named bake "
                        f"(one of {', '.join(BAKES.names())})")
    names = []
    for name, layer in pruned_layers(model).items():
        cell = layer._modules["quantizer"]
        if bake:
            layer.weight.mul_(cell.mask.to(layer.weight))
        if isinstance(layer, WeightCell):
            layer.quantizer = None
        else:
            del layer._modules["quantizer"]
            _remove_hooks(layer)
        names.append(name)
    return names
