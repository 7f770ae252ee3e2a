"""What a network costs: parameters, multiply-accumulates (MACs) and measured CPU latency.

MACs count the convolutions (connected kernels only, as N2D2 counts synapses) and the fully
connected layers, per input sample; ``nonzero`` counts only the weights the masks keep (what an
ideal sparse kernel would do; a dense CPU kernel does the dense count). Latency is measured,
never estimated: medians of repeats that alternate between the networks compared, so machine
noise hits them alike.

>>> macs(net)                                     # doctest: +SKIP
{'dense': 2307072, 'nonzero': 412160}
"""

from __future__ import annotations

import functools
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from n2prune.cells.kinds import MacCounter, conv_macs, deconv_macs, fc_macs, kind_of_module
from n2prune.compact.baking import baked, unmasked, used_weight
from n2prune.compact.compaction import compact
from n2prune.examples import run
from n2prune.timing import (CLOCKS, balanced_orders, compare_latency,  # noqa: F401 (public
                             latency_samples)                          # here too)


# Plain torch layers (models given to ``attach``); n2prune cells count by their kind.
TORCH_MACS = ((nn.Linear, fc_macs), (nn.ConvTranspose2d, deconv_macs), (nn.Conv2d, conv_macs))


def mac_counter(module: nn.Module) -> Optional[MacCounter]:
    """How ``module`` counts its multiply-accumulates: its cell kind's ``macs``
    (``n2prune.cells.kinds``), a torch layer's, or None when it has no weights to count."""
    kind = kind_of_module(module)
    if kind is not None:
        return kind.macs
    return next((count for cls, count in TORCH_MACS if isinstance(module, cls)), None)


@torch.no_grad()
def macs(net: nn.Module, input_shape: Optional[Sequence[int]] = None,
         example=None) -> Dict[str, int]:
    """Dense and non-zero MACs of one sample through ``net`` (input ``(1, *input_shape)``,
    default ``net.input_shape``), or of one pass on ``example`` (a tensor, a tuple of
    arguments or a dict of keyword arguments) when given."""
    shape = None if example is not None else tuple(input_shape or net.input_shape)
    totals = {"dense": 0, "nonzero": 0}

    def hook(module, inputs, output, count):
        dense, nonzero = count(module, inputs, output, used_weight(module))
        totals["dense"] += dense
        totals["nonzero"] += nonzero

    counted = [(m, mac_counter(m)) for m in net.modules()]
    hooks = [m.register_forward_hook(functools.partial(hook, count=count))
             for m, count in counted if count is not None]
    was_training = net.training
    try:
        net.eval()
        run(net, torch.zeros(1, *shape) if example is None else example)
    finally:
        net.train(was_training)
        for handle in hooks:
            handle.remove()
    return totals


def parameters(net: nn.Module) -> Dict[str, int]:
    """All parameters, and those not zeroed by a mask or a connection map."""
    total = sum(p.numel() for p in net.parameters())
    zeros = 0
    for module in net.modules():
        if mac_counter(module) is not None and getattr(module, "weight", None) is not None:
            zeros += int((used_weight(module) == 0).sum())
    return {"total": total, "nonzero": total - zeros}


def cost_report(net: nn.Module, small: Optional[nn.Module] = None,
                latency: bool = True, batch: int = 1, repeats: int = 7,
                threads: Optional[int] = 1, min_seconds: float = 0.02,
                example=None, strict: bool = True,
                round_to: int = 1) -> Dict[str, Dict[str, float]]:
    """Parameters, MACs and CPU latency of the dense network (masks off), the masked one and
    the compacted one (default ``n2prune.compact(net, example, strict=strict,
    round_to=round_to)``): ``{"dense": {...}, "masked": ..., ...}``, so a slowdown shows
    before shipping. An INI network gives its input shape (MACs per sample, latency at
    ``batch``); any other torch model (plain, or with PruneCells from ``n2prune.attach``)
    needs ``example``: a tensor (its shape, batch excluded, is the one measured), a tuple of
    arguments or a dict of keyword arguments (MACs and latency of one pass on it)."""
    if example is None and not hasattr(net, "input_shape"):
        raise TypeError(f"cost_report: a {type(net).__name__} has no input_shape; pass an "
                        f"example input: cost_report(model, example=x)")
    if small is None:
        small = compact(net, example, strict=strict, round_to=round_to) \
            if example is not None else compact(net)
    dense = unmasked(net)
    nets = {"dense": dense, "masked": net, "compacted": small}
    tensor = isinstance(example, torch.Tensor) or example is None
    shape = (tuple(example.shape[1:]) if example is not None else tuple(net.input_shape)) \
        if tensor else None
    report: Dict[str, Dict[str, float]] = {}
    for name, model in nets.items():
        count = parameters(model)
        flops = macs(model, shape) if tensor else macs(model, example=example)
        report[name] = {"parameters": count["total"], "nonzero_parameters": count["nonzero"],
                        "macs": flops["dense"], "nonzero_macs": flops["nonzero"]}
    if latency:
        timed = compare_latency({"dense": dense, "masked": net, "compacted": baked(small)},
                                shape, batch=batch, repeats=repeats, threads=threads,
                                min_seconds=min_seconds,
                                example=None if tensor else example)
        for name, seconds in timed.items():
            report[name]["latency_ms"] = round(seconds * 1e3, 4)
            report[name]["batch"] = batch if tensor else None
    return report


def cost_lines(net: nn.Module, small: nn.Module, latency: bool = True) -> List[str]:
    """The cost report as lines of text (for ``n2prune-info --costs`` and
    ``n2prune-compact``)."""
    report = cost_report(net, small, latency=latency)
    lines = [f"{'':10} {'parameters':>12} {'MACs':>14} {'nonzero MACs':>14}"
             + (f" {'CPU ms (b=1)':>13}" if latency else "")]
    for name, row in report.items():
        line = f"{name:10} {row['parameters']:>12,} {row['macs']:>14,} {row['nonzero_macs']:>14,}"
        if latency:
            line += f" {row['latency_ms']:>13.3f}"
        lines.append(line)
    return lines
