"""A layer's calibration Hessian ``H = 2/n Σ x xᵀ`` and its weight as a matrix (for SparseGPT).

A layer *view* (registered in ``LAYER_VIEWS`` under its class's qualified name, found along the
class's MRO) says how a layer's forward arguments become the rows ``x`` that multiply its
weight, and how the weight reads and writes as a matrix of matching columns:

- ``torch.nn.Linear``, n2prune ``Fc``: every leading dimension of the input is a token
  (``[-1, in]``); ``Fc`` flattens each input per sample and concatenates them, as it computes;
- ``torch.nn.Conv2d``, n2prune ``Conv``: the input unfolded with the kernel, stride, padding
  (``'same'`` included; zero padding only) and dilation, every output position a token; the
  columns are ordered (kh, kw, input channel), the weight viewed as ``[out, kh·kw·in]`` alike,
  so the N:M groups run along the input channels as the N:M pattern's do (``segment`` = input
  channels). A grouped convolution gets one Hessian per group (``[groups, cols, cols]``, the
  same memory as its weight's columns squared over ``groups``).

A batch's ``xᵀx`` is computed in the input's precision (float32 at least: float64 would cost
the float64 rate on ``tokens · cols²`` multiply-adds, the largest cost after the forward passes)
and summed in float64; ``hessian`` divides by the tokens (``H`` does not grow with the number
of batches). One layer at a time: the caller keeps one accumulator alive.

>>> import torch
>>> layer = torch.nn.Linear(3, 2)
>>> acc = HessianAccumulator(layer)
>>> acc.add((torch.tensor([[[1.0, 0.0, 2.0]]]),))
>>> acc.hessian[0].tolist(), acc.tokens
([[2.0, 0.0, 4.0], [0.0, 0.0, 0.0], [4.0, 0.0, 8.0]], 1)
"""

from __future__ import annotations

from typing import Any, Hashable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.conv import Conv
from n2prune.cells.fc import Fc
from n2prune.registry import Registry

__all__ = ["LAYER_VIEWS", "HessianAccumulator", "LayerView", "layer_view"]

LAYER_VIEWS: Registry = Registry("SparseGPT layer view")


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def layer_view(layer: nn.Module, name: str = "") -> "LayerView":
    """The registered view of ``layer``'s class or of its nearest registered base class."""
    for cls in type(layer).__mro__:
        if _qualified(cls) in LAYER_VIEWS:
            return LAYER_VIEWS.get(_qualified(cls))
    raise TypeError(f"SparseGPT: layer {name or '?'!r} ({type(layer).__name__}) has no "
                    f"Hessian view; supported: {', '.join(LAYER_VIEWS.names())} (register one "
                    f"in n2prune.prune.sparsegpt.hessian.LAYER_VIEWS)")


class LayerView:
    """A Linear-like layer: ``weight`` [out, in], inputs ``[..., in]``. Subclasses override."""

    def key(self, layer: nn.Module) -> Hashable:
        """Layers with equal keys fed the same input tensor share one Hessian."""
        return (type(self), tuple(layer.weight.shape[1:]))

    def columns(self, layer: nn.Module, args: Sequence[Any]) -> torch.Tensor:
        """The input rows, ``[groups, tokens, cols]``, from the layer's forward arguments."""
        return args[0].reshape(1, -1, layer.weight.shape[1])

    def matrix(self, layer: nn.Module) -> torch.Tensor:
        """The weight as ``[groups, rows, cols]`` with the columns ``columns`` gives."""
        return layer.weight.detach()[None]

    def unmatrix(self, layer: nn.Module, matrix: torch.Tensor) -> torch.Tensor:
        """``matrix``'s inverse: a ``[groups, rows, cols]`` tensor in the weight's shape."""
        return matrix[0]

    def segment(self, layer: nn.Module) -> int:
        """Columns after which N:M groups restart."""
        return layer.weight.shape[1]


class FcView(LayerView):
    """n2prune ``Fc``: each input flattened per sample, then concatenated."""

    def columns(self, layer, args):
        flat = [x.reshape(x.shape[0], -1) for x in args]
        return (flat[0] if len(flat) == 1 else torch.cat(flat, dim=1))[None]


class ConvView(LayerView):
    """A 2-D convolution: unfolded inputs, columns ordered (kh, kw, input channel)."""

    def geometry(self, layer: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, tuple, tuple]:
        """``(x padded, stride, dilation)`` for ``F.unfold`` with no padding of its own."""
        raise NotImplementedError

    def key(self, layer):
        return (type(self), tuple(layer.weight.shape[1:]), layer.groups,
                repr(self.geometry(layer, None)[1:]), repr(getattr(layer, "padding", None)),
                repr(getattr(layer, "_geometry", None)))

    def columns(self, layer, args):
        x, stride, dilation = self.geometry(layer, args)
        out, per_group, kh, kw = layer.weight.shape
        groups = layer.groups
        cube = F.unfold(x, (kh, kw), dilation=dilation, stride=stride)  # [N, C·kh·kw, L]
        cube = cube.reshape(x.shape[0], groups, per_group, kh * kw, cube.shape[-1])
        return cube.permute(1, 0, 4, 3, 2).reshape(groups, -1, kh * kw * per_group)

    def matrix(self, layer):
        out, per_group, kh, kw = layer.weight.shape
        groups = layer.groups
        w = layer.weight.detach().reshape(groups, out // groups, per_group, kh, kw)
        return w.permute(0, 1, 3, 4, 2).reshape(groups, out // groups, -1)

    def unmatrix(self, layer, matrix):
        out, per_group, kh, kw = layer.weight.shape
        w = matrix.reshape(layer.groups, out // layer.groups, kh, kw, per_group)
        return w.permute(0, 1, 4, 2, 3).reshape(out, per_group, kh, kw)

    def segment(self, layer):
        return layer.weight.shape[1]


def _same_padding(x: torch.Tensor, kernel: Sequence[int], dilation: Sequence[int]):
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return F.pad(x, (total[1] // 2, total[1] - total[1] // 2, total[0] // 2,
                     total[0] - total[0] // 2))


class TorchConvView(ConvView):
    """``torch.nn.Conv2d`` (zero padding; ``'valid'``, ``'same'`` or numbers)."""

    def geometry(self, layer, args):
        if layer.padding_mode != "zeros":
            raise ValueError(f"SparseGPT: Conv2d with padding_mode={layer.padding_mode!r} is "
                             f"not supported (only 'zeros')")
        if args is None:
            return None, layer.stride, layer.dilation
        x = args[0] if args[0].dim() == 4 else args[0][None]  # an unbatched [C, H, W]
        if layer.padding == "same":
            x = _same_padding(x, layer.kernel_size, layer.dilation)
        elif layer.padding != "valid" and any(layer.padding):
            ph, pw = layer.padding
            x = F.pad(x, (pw, pw, ph, ph))
        return x, layer.stride, layer.dilation


class CellConvView(ConvView):
    """n2prune ``Conv``: inputs concatenated, N2D2's negative padding cropped."""

    def geometry(self, layer, args):
        if layer._buffers.get("connection") is not None:
            raise ValueError("SparseGPT: a Conv with a connection map is not supported (its "
                             "unconnected kernels must stay zero); use groups instead")
        crop, stride, padding, dilation = layer._geometry
        if args is None:
            return None, stride, dilation
        x = args[0] if len(args) == 1 else torch.cat(list(args), dim=1)
        if crop is not None:
            x = F.pad(x, crop)
        if any(padding):
            x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
        return x, stride, dilation


LAYER_VIEWS.register(_qualified(nn.Linear))(LayerView())
LAYER_VIEWS.register(_qualified(Fc))(FcView())
LAYER_VIEWS.register(_qualified(nn.Conv2d))(TorchConvView())
LAYER_VIEWS.register(_qualified(Conv))(CellConvView())


class HessianAccumulator:
    """``H = 2/n Σ x xᵀ`` (float64, ``[groups, cols, cols]``) of one layer's inputs.

    ``add(args)`` takes the layer's forward arguments; ``hook`` is a ready forward pre-hook
    (``layer.register_forward_pre_hook(acc.hook)``).
    """

    def __init__(self, layer: nn.Module, name: str = "", view: Optional[LayerView] = None):
        self.layer, self.name = layer, name
        self.view = view if view is not None else layer_view(layer, name)
        self._sum: Optional[torch.Tensor] = None
        self.tokens = 0

    @property
    def hessian(self) -> Optional[torch.Tensor]:
        """``2/n Σ x xᵀ`` so far (float64), None before any token."""
        return None if self._sum is None else self._sum * (2.0 / self.tokens)

    def add(self, args: Sequence[Any]) -> None:
        """Add one call's inputs."""
        if not args or not isinstance(args[0], torch.Tensor):
            raise TypeError(f"SparseGPT: layer {self.name or '?'!r} was called without a "
                            f"tensor as its first positional argument")
        x = self.view.columns(self.layer, args).detach()
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        if x.shape[1] == 0:
            return
        product = torch.matmul(x.transpose(1, 2), x)
        if self._sum is None:
            self._sum = product.to(torch.float64)
        else:
            self._sum.add_(product)  # float64 += float32: one pass, no float64 copy
        self.tokens += x.shape[1]

    def hook(self, module: nn.Module, args: Tuple[Any, ...]) -> None:
        """Forward pre-hook form of ``add``."""
        self.add(args)
