"""Nodes computed while reading the file: an operator of ``FOLDS`` whose operands are all
constants gives a constant (exporters write ``Constant -> Cast -> Clip`` for ReLU6, shape
arithmetic for Reshape), so builders see plain constants.

``FOLDS`` maps an op type to ``fold(inputs, attrs) -> tensor``; adding one is one entry."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import torch

Fold = Callable[[List[torch.Tensor], Dict[str, Any]], torch.Tensor]


def _cast(inputs, attrs):
    # ONNX TensorProto: 1 float, 10 float16, 11 double; the others are integers or booleans
    return inputs[0].to(torch.float32 if attrs.get("to") in (1, 10, 11, 16) else torch.int64)


def _axes(inputs, attrs) -> List[int]:
    axes = attrs.get("axes")
    if axes is None and len(inputs) > 1:
        axes = inputs[1].reshape(-1).tolist()
    return [int(a) for a in axes or []]


def _unsqueeze(inputs, attrs):
    x = inputs[0]
    for axis in sorted(a % (x.dim() + len(_axes(inputs, attrs))) for a in _axes(inputs, attrs)):
        x = x.unsqueeze(axis)
    return x


def _squeeze(inputs, attrs):
    axes = _axes(inputs, attrs)
    x = inputs[0]
    if not axes:
        return x.squeeze()
    for axis in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(axis)
    return x


def _reshape(inputs, attrs):
    shape = [int(v) for v in inputs[1].reshape(-1).tolist()]
    shape = [inputs[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return inputs[0].reshape(shape)


def _slice(inputs, attrs):
    x = inputs[0]
    starts, ends = inputs[1].tolist(), inputs[2].tolist()
    axes = inputs[3].tolist() if len(inputs) > 3 else list(range(len(starts)))
    steps = inputs[4].tolist() if len(inputs) > 4 else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        size = x.shape[axis]
        index = list(range(size))[slice(max(min(start, size), -size - 1),
                                        max(min(end, size), -size - 1), step)]
        x = x.index_select(axis, torch.tensor(index, dtype=torch.long))
    return x


def _constant_of_shape(inputs, attrs):
    value = attrs.get("value")
    fill = value.reshape(-1)[0] if isinstance(value, torch.Tensor) else torch.tensor(0.0)
    return torch.full([int(v) for v in inputs[0].reshape(-1).tolist()], fill.item(),
                      dtype=fill.dtype)


FOLDS: Dict[str, Fold] = {
    "Shape": lambda inputs, attrs: torch.tensor(inputs[0].shape, dtype=torch.int64),
    "ConstantOfShape": _constant_of_shape,
    "Slice": _slice,
    "Transpose": lambda inputs, attrs: inputs[0].permute(
        attrs.get("perm") or list(reversed(range(inputs[0].dim())))),
    "Cast": _cast,
    "Identity": lambda inputs, attrs: inputs[0],
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Reshape": _reshape,
    "Concat": lambda inputs, attrs: torch.cat([x.reshape(-1) if x.dim() == 0 else x
                                               for x in inputs], dim=int(attrs.get("axis", 0))),
    "Gather": lambda inputs, attrs: torch.index_select(
        inputs[0], int(attrs.get("axis", 0)), inputs[1].reshape(-1)).reshape(
        inputs[0].shape[:int(attrs.get("axis", 0))] + inputs[1].shape
        + inputs[0].shape[int(attrs.get("axis", 0)) + 1:]),
    "Add": lambda inputs, attrs: inputs[0] + inputs[1],
    "Sub": lambda inputs, attrs: inputs[0] - inputs[1],
    "Mul": lambda inputs, attrs: inputs[0] * inputs[1],
    "Div": lambda inputs, attrs: inputs[0] / inputs[1] if inputs[0].is_floating_point()
    else torch.div(inputs[0], inputs[1], rounding_mode="floor"),
}
