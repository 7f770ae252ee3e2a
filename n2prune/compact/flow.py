"""How channels flow through one ATen operation: the ``OP_RULES`` registry of the recorder
(:mod:`.trace`).

A traced tensor carries its removable channels on at most one dimension, a :class:`Flow`
(``dim`` and one atom id per index of that dimension); a tensor without a flow has no
removable channels (an input, a constant, a mask, token ids...). A rule receives the
recorder, the op's arguments and its real outputs and returns the outputs' flows. Rules run
only when an argument has a flow, so integer and mask arithmetic costs nothing.

Three answers a rule can give: a flow (channels pass, possibly moved to another dim, split
into heads or tied to other operands), ``rec.fix(...)`` (the op mixes these channels: a
normalisation over them, a reduction, a contraction with a constant; they stay), or
``rec.undecided(...)`` (no rule knows: an error with ``strict=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from n2prune.registry import Registry


@dataclass
class Flow:
    """The dimension of a tensor that carries removable channels, with one atom per index."""

    dim: int
    ids: List[int]


# ATen op name (overload packet, e.g. "view") -> rule(rec, args, kwargs, out) -> flows
OP_RULES: Registry = Registry("channel flow rule")


def _rule(*names: str) -> Callable:
    def decorator(fn):
        for name in names:
            OP_RULES.register(name)(fn)
        return fn
    return decorator


def _norm(dim: int, rank: int) -> int:
    return dim + rank if dim < 0 else dim


def _arg(args, kwargs, index: int, name: str, default=None):
    return args[index] if len(args) > index else kwargs.get(name, default)


def _like(out, flow: Optional[Flow]):
    """The same flow for every tensor output of the rank the flow fits."""
    if isinstance(out, (tuple, list)):
        return [flow if isinstance(o, torch.Tensor) and flow is not None and
                o.dim() > flow.dim else None for o in out]
    return flow


# ----------------------------------------------------------------------------- pass-through
@_rule("gelu", "relu", "relu_", "silu", "silu_", "sigmoid", "tanh", "hardtanh", "hardtanh_",
       "hardswish", "hardsigmoid", "leaky_relu", "leaky_relu_", "elu", "clone", "detach",
       "alias", "_to_copy", "lift_fresh", "neg", "abs", "exp", "erf", "sqrt", "log", "clamp",
       "clamp_min", "clamp_max", "native_dropout", "dropout", "contiguous", "mish", "softplus",
       "rsqrt", "square", "reciprocal", "_log_softmax_backward_data")
def _pass(rec, args, kwargs, out):
    first = args[0]
    flow = rec.flow(first)
    result = out[0] if isinstance(out, (tuple, list)) else out
    if result.shape != first.shape:
        return rec.undecided("it changes the shape", [first])
    return _like(out, flow)


@_rule("zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones",
       "new_empty", "new_full", "_local_scalar_dense", "size", "sym_size", "eq", "ne", "lt",
       "le", "gt", "ge", "isnan", "isinf", "argmax", "argmin")
def _no_channels(rec, args, kwargs, out):
    """Shape-only or boolean results: they carry no channel values."""
    return None


# ----------------------------------------------------------------------------- element-wise
@_rule("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "maximum", "minimum",
       "where", "masked_fill", "masked_fill_", "pow", "rsub", "fmod", "remainder", "lerp",
       "addcmul", "addcdiv", "copy_", "bitwise_and", "logical_and")
def _elementwise(rec, args, kwargs, out):
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
    if args and isinstance(args[0], torch.Tensor) and rec.name == "copy_":
        if args[0]._base is not None:
            return rec.undecided("a copy into a view of another tensor", tensors)
        tensors = tensors[1:]  # the old content of the destination is overwritten
    return broadcast(rec, tensors, out)


def broadcast(rec, tensors: Sequence[torch.Tensor], out: torch.Tensor) -> Optional[Flow]:
    """Operands broadcast against each other: their channels on the same output dim are
    tied; a full-size operand without channels (a constant, a parameter) fixes them."""
    rank = out.dim()
    placed = [(t, rec.flow(t)) for t in tensors]
    dims = {f.dim + rank - t.dim() for t, f in placed if f is not None}
    if len(dims) > 1:
        return rec.undecided("operands carry channels on different dims", tensors)
    if not dims:
        return None
    dim = dims.pop()
    first = next(f for _, f in placed if f is not None)
    for t, f in placed:
        local = dim - (rank - t.dim())
        if f is not None:
            rec.tie(first.ids, f.ids)
        elif local >= 0 and t.shape[local] > 1:
            rec.fix(first.ids, "a full-size operand without channels")
    return Flow(dim, first.ids)


# ----------------------------------------------------------------------------- mixing
@_rule("_softmax", "softmax", "_log_softmax", "log_softmax", "cumsum", "logsumexp")
def _along(rec, args, kwargs, out):
    flow = rec.flow(args[0])
    if _norm(_arg(args, kwargs, 1, "dim"), args[0].dim()) == flow.dim:
        rec.fix(flow.ids, "mixed by a softmax over them")
    return _like(out, flow)


@_rule("native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "native_group_norm",
       "group_norm")
def _normalise(rec, args, kwargs, out):
    flow = rec.flow(args[0])
    rec.fix(flow.ids, "normalised together")
    return _like(out, flow)


@_rule("sum", "mean", "amax", "amin", "var", "std", "norm", "linalg_vector_norm", "prod",
       "max", "min", "var_mean", "any", "all")
def _reduce(rec, args, kwargs, out):
    x, flow = args[0], rec.flow(args[0])
    dims = _arg(args, kwargs, 1, "dim")
    if rec.name in ("norm", "linalg_vector_norm"):
        dims = _arg(args, kwargs, 2, "dim")
    keep = bool(_arg(args, kwargs, 2, "keepdim", False)) if rec.name not in (
        "norm", "linalg_vector_norm", "var", "std", "var_mean") else \
        bool(kwargs.get("keepdim", False))
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        dims = list(range(x.dim()))
    dims = [_norm(d, x.dim()) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    if flow.dim in dims:
        rec.fix(flow.ids, "reduced over")
        return None
    new = flow.dim if keep else flow.dim - sum(d < flow.dim for d in dims)
    return _like(out, Flow(new, flow.ids))


@_rule("convolution", "linear", "mm", "addmm", "bmm", "baddbmm", "matmul")
def _contraction(rec, args, kwargs, out):
    """Matrix products: batch dims tie, rows/columns pass, a contracted channel dim stays."""
    if rec.name in ("convolution", "linear"):
        return rec.undecided("a convolution / linear outside an nn.Conv / nn.Linear layer "
                             "(no rule slices its weight)", [args[0]])
    extra = [args[0]] if rec.name in ("addmm", "baddbmm") else []
    a, b = (args[1], args[2]) if extra else (args[0], args[1])
    rank = out.dim()
    fa, fb = rec.flow(a), rec.flow(b)
    result: Optional[Flow] = None
    if fa is not None and fa.dim == a.dim() - 1 or fb is not None and fb.dim == b.dim() - 2:
        for f in (fa, fb):
            if f is not None:
                rec.fix(f.ids, "contracted in a matrix product")
        return None
    if fa is not None and fb is not None and a.dim() - fa.dim == b.dim() - fb.dim:
        rec.tie(fa.ids, fb.ids)                       # the same batch dim
        result = Flow(fa.dim + rank - a.dim(), fa.ids)
    else:
        flows = [(t, f) for t, f in ((a, fa), (b, fb)) if f is not None]
        if len(flows) > 1:
            return rec.undecided("both operands carry channels on different dims", [a, b])
        t, f = flows[0]
        result = Flow(f.dim + rank - t.dim(), f.ids)
        other = b if t is a else a
        local = result.dim - (rank - other.dim())
        if result.dim < rank - 2 and local >= 0 and other.shape[local] > 1:
            rec.fix(f.ids, "a batched product with an operand without channels")
    if extra:
        return broadcast(rec, extra + [out], out) if rec.flow(extra[0]) is not None else result
    return result


@_rule("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
       "_scaled_dot_product_flash_attention", "scaled_dot_product_attention",
       "_scaled_dot_product_attention_math", "_scaled_dot_product_cudnn_attention")
def _attention(rec, args, kwargs, out):
    """q, k, v ``[B, H, T, D]``: heads tie (a K/V head to the query heads sharing it)."""
    q, k, v = args[:3]
    flows = [rec.flow(t) for t in (q, k, v)]
    if any(f is not None and f.dim != t.dim() - 3 for f, t in zip(flows, (q, k, v))) or \
            any(f is None for f in flows):
        for f in flows:
            if f is not None:
                rec.fix(f.ids, "attention over per-channel (not per-head) values")
        return None
    fq, fk, fv = flows
    rec.tie(fk.ids, fv.ids)
    share = max(1, len(fq.ids) // max(1, len(fk.ids)))
    for h, atom in enumerate(fq.ids):
        rec.tie([atom], [fk.ids[h // share]])
    return _like(out, Flow(fq.dim, fq.ids))


@_rule("max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "_adaptive_avg_pool2d",
       "adaptive_avg_pool2d", "adaptive_max_pool2d", "upsample_nearest2d",
       "upsample_bilinear2d", "_upsample_nearest_exact2d", "_upsample_bilinear2d_aa",
       "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "max_pool1d", "avg_pool1d",
       "_adaptive_avg_pool1d")
def _spatial(rec, args, kwargs, out):
    """Per-channel spatial ops: the channel dim (not one of the spatial ones) passes."""
    x, flow = args[0], rec.flow(args[0])
    first = out[0] if isinstance(out, (tuple, list)) else out
    spatial = 2 if "2d" in rec.name else 1
    if rec.name == "constant_pad_nd":
        spatial = len(args[1]) // 2
    if flow.dim >= x.dim() - spatial or first.dim() != x.dim() or \
            first.shape[flow.dim] != x.shape[flow.dim]:
        return rec.undecided("it acts on the channel dim", [x])
    return _like(out, flow)


# ----------------------------------------------------------------------------- shapes
@_rule("view", "_unsafe_view", "reshape", "_reshape_alias", "view_as", "reshape_as",
       "flatten", "unflatten")
def _view(rec, args, kwargs, out):
    x = args[0]
    return regroup(rec, list(x.shape), list(out.shape), rec.flow(x))


@_rule("permute")
def _permute(rec, args, kwargs, out):
    flow, rank = rec.flow(args[0]), args[0].dim()
    order = [_norm(d, rank) for d in args[1]]
    return Flow(order.index(flow.dim), flow.ids)


@_rule("transpose", "t", "swapaxes", "transpose_")
def _transpose(rec, args, kwargs, out):
    flow, rank = rec.flow(args[0]), args[0].dim()
    d0, d1 = (0, 1) if rec.name == "t" else (_norm(args[1], rank), _norm(args[2], rank))
    swap = {d0: d1, d1: d0}
    return Flow(swap.get(flow.dim, flow.dim), flow.ids)


@_rule("unsqueeze", "squeeze", "expand", "select", "slice", "unbind", "split",
       "split_with_sizes", "chunk", "narrow", "repeat", "index_select")
def _reindex(rec, args, kwargs, out):
    x, flow = args[0], rec.flow(args[0])
    rank = x.dim()
    if rec.name in ("unsqueeze", "squeeze", "expand", "repeat"):
        outs = out
        if outs.shape[outs.dim() - rank + flow.dim] != x.shape[flow.dim] or \
                (rec.name == "squeeze" and outs.dim() != rank):
            return regroup(rec, list(x.shape), list(outs.shape), flow) \
                if rec.name != "expand" and rec.name != "repeat" else \
                rec.undecided("it repeats the channel dim", [x])
        if rec.name == "unsqueeze":
            return Flow(flow.dim + (_norm(args[1], rank + 1) <= flow.dim), flow.ids)
        return Flow(flow.dim + outs.dim() - rank, flow.ids)
    dim = _norm(_arg(args, kwargs, 1, "dim", 0), rank)
    if rec.name in ("split", "split_with_sizes", "chunk"):
        dim = _norm(_arg(args, kwargs, 2, "dim", 0), rank) if rec.name != "chunk" else dim
    if dim != flow.dim:
        if rec.name in ("select", "unbind"):
            moved = Flow(flow.dim - (dim < flow.dim), flow.ids)
            return [moved] * len(out) if rec.name == "unbind" else moved
        return _like(out, flow)
    if rec.name in ("split", "split_with_sizes", "chunk"):
        sizes = [o.shape[dim] for o in out]
        if len(set(sizes)) != 1:
            return rec.undecided("a split of the channel dim into unequal parts", [x])
        step = sizes[0]
        pieces = [flow.ids[i * step:(i + 1) * step] for i in range(len(out))]
        for piece in pieces[1:]:   # equal parts stay equal: chunk(n) still splits right
            rec.tie(pieces[0], piece)
        return [Flow(dim, piece) for piece in pieces]
    if rec.name == "slice" and out.shape[dim] == x.shape[dim]:
        return flow
    return rec.undecided(f"{rec.name} along the channel dim", [x])


@_rule("cat", "stack", "concat")
def _cat(rec, args, kwargs, out):
    tensors = [t for t in args[0] if t.numel() or t.dim() > 1]
    dim = _norm(_arg(args, kwargs, 1, "dim", 0), out.dim())
    if rec.name == "stack":
        lifted = [(t, rec.flow(t)) for t in tensors]
        flows = [Flow(f.dim + (dim <= f.dim), f.ids) if f else None for _, f in lifted]
        return _tie_all(rec, [t.unsqueeze(dim) for t in tensors], flows, out)
    flows = [rec.flow(t) for t in tensors]
    if any(f is not None and f.dim == dim for f in flows):
        ids: List[int] = []
        for t, f in zip(tensors, flows):
            if f is not None and f.dim != dim:
                return rec.undecided("operands carry channels on different dims", tensors)
            ids += f.ids if f is not None else rec.fixed_atoms(t.shape[dim], "cat")
        return Flow(dim, ids)
    return _tie_all(rec, tensors, flows, out)


def _tie_all(rec, tensors, flows, out):
    dims = {f.dim for f in flows if f is not None}
    if len(dims) != 1:
        return rec.undecided("operands carry channels on different dims", tensors)
    dim = dims.pop()
    first = next(f for f in flows if f is not None)
    for t, f in zip(tensors, flows):
        if f is None:
            rec.fix(first.ids, "concatenated with a tensor without channels")
        else:
            rec.tie(first.ids, f.ids)
    return Flow(dim, first.ids)


def _dim_groups(a: List[int], b: List[int]):
    """Consecutive dims of two shapes of equal size that map onto each other."""
    groups, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        gi, gj, pa, pb = [], [], 1, 1
        if i < len(a):
            gi.append(i)
            pa, i = pa * a[i], i + 1
        if j < len(b):
            gj.append(j)
            pb, j = pb * b[j], j + 1
        while pa != pb:
            if pa < pb:
                gi.append(i)
                pa, i = pa * a[i], i + 1
            else:
                gj.append(j)
                pb, j = pb * b[j], j + 1
        groups.append((gi, gj))
    return groups


def regroup(rec, shape: List[int], new_shape: List[int], flow: Flow) -> Optional[Flow]:
    """A view/reshape: the channels go to the output dim they vary along. Split into
    ``(heads, head_dim)`` they vary along both, so each head's channels are tied into one
    unit on the heads dim (a head is removed whole); merged with other dims they repeat."""
    for gi, gj in _dim_groups(shape, new_shape):
        if flow.dim in gi:
            break
    sizes_in = [shape[d] for d in gi]
    lift = [1] * len(gi)
    lift[gi.index(flow.dim)] = len(flow.ids)
    grid = np.broadcast_to(np.asarray(flow.ids).reshape(lift), sizes_in)
    sizes_out = [new_shape[d] for d in gj]
    if not gj:
        return None
    roots = np.vectorize(rec.graph.find, otypes=[np.int64])(grid.reshape(-1)).reshape(sizes_out)
    candidates = [p for p, size in enumerate(sizes_out) if size > 1] or [0]
    for p in candidates:
        moved = np.moveaxis(roots, p, 0).reshape(sizes_out[p], -1)
        if (moved == moved[:, :1]).all():
            ids = np.moveaxis(grid.reshape(sizes_out), p, 0).reshape(sizes_out[p], -1)[:, 0]
            return Flow(gj[p], [int(i) for i in ids])
    # heads: the dim before the last varying one ([3, heads, head_dim] of a fused QKV too)
    p = candidates[-2] if len(candidates) > 1 else candidates[0]
    units = np.moveaxis(grid.reshape(sizes_out), p, 0).reshape(sizes_out[p], -1)
    for row in units:
        rec.tie([int(row[0])] * (len(row) - 1), [int(i) for i in row[1:]])
    rec.split_heads(sizes_out[p], units.shape[1], [int(i) for i in units[:, 0]])
    return Flow(gj[p], [int(i) for i in units[:, 0]])
