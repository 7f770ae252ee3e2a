"""SparseGPT over a model: layers pruned one after another in forward order, each from the
inputs that the already pruned layers before it produce (:func:`reconstruct`).

The caller says how to run the model: a list of callables, each pushing one calibration batch
through it. For every layer, a forward pre-hook accumulates the layer's Hessian
(:class:`n2prune.prune.sparsegpt.hessian.HessianAccumulator`) and stops the batch there (a private
exception caught around each call), so a layer costs the forward passes up to itself; then
:func:`n2prune.prune.sparsegpt.obs.obs_prune` prunes and updates its weight in place.

>>> import torch
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
>>> x = torch.randn(32, 8)
>>> done = reconstruct([("0", model[0], 0.5), ("2", model[2], 0.5)], [lambda: model(x)])
>>> [(name, int(r.keep.sum())) for name, r in done.items()]
[('0', 32), ('2', 16)]
>>> int((model[2].weight == 0).sum())
16
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import nn

from n2prune.prune.sparsegpt.hessian import HessianAccumulator, layer_view
from n2prune.prune.sparsegpt.obs import obs_prune

__all__ = ["LayerResult", "SparseGPTLayer", "reconstruct"]

class SparseGPTLayer(NamedTuple):
    """One layer to prune: a plain 6-tuple of these fields is accepted as well."""

    name: str
    layer: nn.Module
    sparsity: float
    nm: Optional[Tuple[int, int]] = None
    blocksize: int = 128
    damp: float = 0.01


@dataclass
class LayerResult:
    """What ``reconstruct`` did to one layer."""

    keep: torch.Tensor   # bool, the weight's shape; the weight is 0 where False
    tokens: int          # calibration tokens (rows of X) in its Hessian
    seconds: float       # its forward passes (or its share of them) and its solve
    step: int            # layers with the same step shared one Hessian (the same input)


class _Stop(Exception):
    """Raised by the Hessian hook once the layer has seen a batch: the rest is not needed.
    An ``Exception`` so that torch runs ``always_call`` forward hooks (PruneCell's restore)."""


def _targets(layers: Iterable[Sequence[Any]]) -> List[SparseGPTLayer]:
    targets = [SparseGPTLayer(*entry) for entry in layers]
    seen: Dict[int, str] = {}
    for t in targets:
        layer_view(t.layer, t.name)
        weight = getattr(t.layer, "weight", None)
        if id(weight) in seen:
            raise ValueError(f"SparseGPT: layers {seen[id(weight)]!r} and {t.name!r} share one "
                             f"weight; prune it once")
        seen[id(weight)] = t.name
        mask = getattr(getattr(t.layer, "quantizer", None), "mask", None)
        if isinstance(mask, torch.Tensor) and mask.numel() and not bool((mask != 0).all()):
            raise ValueError(f"SparseGPT: layer {t.name!r} has a PruneCell mask with zeros; "
                             f"set it to ones first (SparseGPT reconstructs the dense weight)")
    return targets


def _forward_order(targets: List[SparseGPTLayer], batch: Callable[[], Any],
                   blocks: Sequence[nn.Module] = ()
                   ) -> Tuple[List[List[SparseGPTLayer]], Dict[int, int]]:
    """Steps in forward order and each layer's calls per batch, from one pass of ``batch``.
    A layer called once, right after the previous step's layer and on the very same input
    tensor (``is``), joins that step."""
    calls: Dict[int, int] = {}
    order: List[Tuple[SparseGPTLayer, bool]] = []
    last: List[Any] = [None, None]  # the previous call's (layer, input), kept alive so that
    handles = []                    # `is` cannot match a freed tensor's recycled address

    def record(target: SparseGPTLayer) -> Callable[..., None]:
        def hook(module: nn.Module, args: Tuple[Any, ...]) -> None:
            x = args[0] if args else None
            key = id(target.layer)
            calls[key] = calls.get(key, 0) + 1
            if calls[key] == 1:
                same = (x is not None and x is last[1] and bool(order)
                        and order[-1][0].layer is last[0])
                order.append((target, same))
            last[0], last[1] = target.layer, x
        return hook

    def count(module: nn.Module, args: Tuple[Any, ...]) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1

    try:
        for t in targets:
            handles.append(t.layer.register_forward_pre_hook(record(t), prepend=True))
        for block in blocks:
            handles.append(block.register_forward_pre_hook(count, prepend=True))
        with torch.no_grad():
            batch()
    finally:
        for handle in handles:
            handle.remove()
    missing = [t.name for t in targets if id(t.layer) not in calls]
    if missing:
        raise ValueError(f"SparseGPT: the first calibration batch never calls layer(s) "
                         f"{', '.join(map(repr, missing))}; they would get no Hessian")
    steps: List[List[SparseGPTLayer]] = []
    for target, same in order:
        previous = steps[-1][-1] if steps else None
        if (same and calls[id(target.layer)] == 1 and calls[id(previous.layer)] == 1
                and layer_view(previous.layer).key(previous.layer)
                == layer_view(target.layer).key(target.layer)):
            steps[-1].append(target)
        else:
            steps.append([target])
    return steps, calls


def _hessian(layer: nn.Module, name: str, per_batch: int, batches: Sequence[Callable[[], Any]]
             ) -> HessianAccumulator:
    """The Hessian of ``layer`` over every batch, each batch stopped once the layer has
    been called ``per_batch`` times."""
    acc, seen = HessianAccumulator(layer, name), [0]

    def hook(module: nn.Module, args: Tuple[Any, ...]) -> None:
        acc.add(args)
        seen[0] += 1
        if seen[0] == per_batch:
            raise _Stop

    handle = layer.register_forward_pre_hook(hook, prepend=True)
    try:
        _run_until_stopped(batches, lambda: seen.__setitem__(0, 0))
    finally:
        handle.remove()
    return acc


def _run_until_stopped(batches: Sequence[Callable[[], Any]],
                       before: Callable[[], Any] = lambda: None) -> None:
    """Each batch run without autograd, until a hook stops it (``_Stop``)."""
    with torch.no_grad():
        for batch in batches:
            before()
            try:
                batch()
            except _Stop:
                pass


def _block_of(layer: nn.Module, blocks: Sequence[nn.Module]) -> Optional[nn.Module]:
    return next((b for b in blocks if any(m is layer for m in b.modules())), None)


def _block_inputs(block: nn.Module, batches: Sequence[Callable[[], Any]]
                  ) -> List[Callable[[], Any]]:
    """One replay per batch: ``block`` called on (a copy of) the arguments it got."""
    replays: List[Callable[[], Any]] = []

    def copied(value: Any) -> Any:
        return value.clone() if isinstance(value, torch.Tensor) else value

    def hook(module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        args = tuple(copied(a) for a in args)
        kwargs = {k: copied(v) for k, v in kwargs.items()}
        replays.append(lambda: block(*args, **kwargs))
        raise _Stop

    handle = block.register_forward_pre_hook(hook, prepend=True, with_kwargs=True)
    try:
        _run_until_stopped(batches)
    finally:
        handle.remove()
    return replays


def _solve(target: SparseGPTLayer, hessian: torch.Tensor) -> torch.Tensor:
    """Prune ``target``'s weight in place from its Hessian; its keep mask, weight-shaped."""
    view, layer = layer_view(target.layer, target.name), target.layer
    matrix = view.matrix(layer)
    n, m = target.nm if target.nm is not None else (None, None)
    solved = [obs_prune(matrix[g], hessian[g], target.sparsity, n, m, target.blocksize,
                        target.damp, view.segment(layer)) for g in range(matrix.shape[0])]
    with torch.no_grad():
        layer.weight.copy_(view.unmatrix(layer, torch.stack([w for w, _ in solved])))
    return view.unmatrix(layer, torch.stack([k for _, k in solved]))


def reconstruct(layers: Iterable[Sequence[Any]], batches: Iterable[Callable[[], Any]],
                blocks: Sequence[nn.Module] = ()) -> Dict[str, LayerResult]:
    """SparseGPT over a model: each layer pruned from the inputs the already pruned layers
    before it produce; its weight is overwritten in place (the same Parameter).

    ``layers``: ``SparseGPTLayer`` or 6-tuples ``(name, layer, sparsity, (n, m) or None,
    blocksize, damp)``, in any order: the forward order is read from one pass of the first
    batch. ``batches``: a re-iterable collection (a list) of callables, each running one
    calibration batch through the model; each layer reruns them all, stopped as soon as the
    layer has seen its input. Layers fed the same input tensor (attention's query, key and
    value) share one Hessian: pruning one cannot change the others' input. A layer must hold
    its dense weight: a PruneCell mask, if any, all ones (set it to the returned ``keep``
    afterwards). Returns a ``LayerResult`` per name, in forward order.

    ``blocks`` (optional, a speed-up): modules such as a transformer's layers, each called
    once per batch with the arguments alone deciding its output. The model then runs up to a
    block once per block, the block's arguments are kept (one block's inputs for every batch
    in memory), and each layer inside it reruns the block only; a layer takes the first block
    that contains it. The results are those without ``blocks``.
    """
    if iter(batches) is batches:  # type: ignore[comparison-overlap]
        raise TypeError("SparseGPT: batches must be re-iterable (a list of callables): every "
                        "layer runs them again")
    batches = list(batches)
    if not batches:
        raise ValueError("SparseGPT: no calibration batches")
    targets = _targets(layers)
    if not targets:
        return {}
    blocks = [b for b in blocks if any(_block_of(t.layer, [b]) for t in targets)]
    steps, calls = _forward_order(targets, batches[0], blocks)
    for block in blocks:
        if calls.get(id(block)) != 1:
            raise ValueError(f"SparseGPT: block {type(block).__name__} is called "
                             f"{calls.get(id(block), 0)} times per batch; a block must be "
                             f"called once")
    results: Dict[str, LayerResult] = {}
    cached: Tuple[Optional[nn.Module], List[Callable[[], Any]]] = (None, [])
    for index, step in enumerate(steps):
        start = time.perf_counter()
        first = step[0]
        block = _block_of(first.layer, blocks)
        if block is not None and cached[0] is not block:
            cached = (block, _block_inputs(block, batches))
        runs = cached[1] if block is not None else batches
        acc = _hessian(first.layer, first.name, calls[id(first.layer)], runs)
        hessian = acc.hessian
        if hessian is None:
            raise ValueError(f"SparseGPT: layer {first.name!r} saw no calibration tokens")
        share = (time.perf_counter() - start) / len(step)
        for target in step:
            begin = time.perf_counter()
            keep = _solve(target, hessian)
            results[target.name] = LayerResult(keep, acc.tokens,
                                               share + time.perf_counter() - begin, index)
        del acc, hessian  # one layer's Hessian at a time
    return results
