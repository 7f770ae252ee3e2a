"""Sparse stand-ins for Linear, Conv2d and n2prune's Fc / Conv cells: ``SPARSE_LAYERS``.

Each stand-in holds ``layer``, the original layer without its weight (bias, geometry,
activation: everything but the weight, kept once), and ``weight``, a :class:`SparseWeight`.
``to_dense()`` gives the original layer back with its (masked) weight, for ONNX export or
further training. Convolutions run as im2col (``F.unfold``; a 1×1 stride-1 convolution reads
its input as it is) followed by one sparse product per image, whose ``[out, H·W]`` result is
already the NCHW layout. ``PackedLayer``, for any of these kinds, runs the layer dense and
stores its weight packed (:class:`PackedWeight`).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.conv import Conv
from n2prune.cells.fc import Fc
from n2prune.registry import Registry
from n2prune.sparse.matrix import SparseWeight
from n2prune.sparse.storage import PackedWeight

#: The stand-in class for each layer kind, by name; ``stand_in_for(layer)`` picks one.
SPARSE_LAYERS: "Registry[Type[SparseLayer]]" = Registry("sparse layer kind")

ONNX_MESSAGE = ("ONNX export needs the dense form: n2prune.sparse.densify(model) first (the "
                "sparse CSR/BSR products have no ONNX operator; packed weights would be "
                "unpacked inside the exported graph)")


_is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)   # torch.export


def _without_weight(layer: nn.Module) -> nn.Module:
    """A shallow copy of ``layer`` sharing everything but the weight, which it lacks."""
    template = copy.copy(layer)
    template._parameters = OrderedDict(
        (name, p) for name, p in layer._parameters.items() if name != "weight")
    template._buffers = OrderedDict(layer._buffers)
    template._modules = OrderedDict(
        (name, m) for name, m in layer._modules.items() if name != "quantizer")
    return template


class SparseLayer(nn.Module):
    """Base of the stand-ins: ``layer`` (the original without its weight) and ``weight`` (a
    :class:`SparseWeight` the sparse kernels run, or a :class:`PackedWeight` unpacked to run
    dense)."""

    #: The layer classes this stand-in replaces.
    LAYER_TYPES: Tuple[type, ...] = ()

    def __init__(self, layer: nn.Module, weight: Union[SparseWeight, PackedWeight]):
        super().__init__()
        self.weight_shape = tuple(layer.weight.shape)
        self.layer = _without_weight(layer)
        self.weight = weight

    @classmethod
    def unreplaceable(cls, layer: nn.Module) -> Optional[str]:
        """Why ``layer`` cannot be replaced at all, by a sparse or a packed stand-in (None
        when it can)."""
        return None

    @classmethod
    def refusal(cls, layer: nn.Module) -> Optional[str]:
        """Why ``layer`` has no sparse path (None when it has one)."""
        return cls.unreplaceable(layer)

    @classmethod
    def weight_matrix(cls, layer: nn.Module) -> torch.Tensor:
        """The weight the layer's forward uses, as the 2-D ``[out, in]`` matrix."""
        weight = layer.weight
        return weight.detach().reshape(weight.shape[0], -1)

    def _bias(self) -> Optional[torch.Tensor]:
        return self._modules["layer"]._parameters.get("bias")

    def _check_export(self) -> None:
        # torch.onnx.is_in_onnx_export() costs 2 us a call (imports inside), a tenth of a
        # small layer: asked only while tracing (its TorchScript exporter traces)
        if _is_exporting() or (torch.jit.is_tracing() and torch.onnx.is_in_onnx_export()):
            raise RuntimeError(f"{type(self).__name__}: {ONNX_MESSAGE}")

    def to_dense(self) -> nn.Module:
        """The original layer with its weight back (a dense ``nn.Parameter``)."""
        layer = self._modules["layer"]
        layer.weight = nn.Parameter(self._modules["weight"].dense().reshape(self.weight_shape))
        return layer


class PackedLayer(SparseLayer):
    """Any layer computed dense, its weight stored packed (:class:`PackedWeight`): for a
    pruned layer whose sparse kernel does not pay, the speed of dense and the size of sparse.

    The dense weight is unpacked on the first forward pass and cached with a copy of the
    layer, outside ``state_dict`` and pickling; the cache is dropped by ``load_state_dict``,
    ``.to()`` / ``.float()`` (``_apply``) and ``train()`` / ``eval()``, and unpacked again on
    the next pass. The layer's own forward runs: the outputs are the dense layer's, bit for
    bit. ONNX export refuses, as for the sparse stand-ins: ``densify`` first.
    """

    def __init__(self, layer: nn.Module, form: Optional[str] = None):
        if layer._modules.get("quantizer") is not None:
            raise ValueError(f"PackedLayer: the {type(layer).__name__} still has a PruneCell "
                             f"attached (its weight is not yet masked); n2prune.detach(model) "
                             f"first")
        super().__init__(layer, PackedWeight(layer.weight.detach(), form))

    def dense_layer(self) -> nn.Module:
        """The layer with its dense weight (cached; a frozen Parameter)."""
        cached = self.__dict__.get("_dense")
        if cached is None:
            template = self._modules["layer"]
            cached = copy.copy(template)   # shares the bias, buffers and submodules
            cached._parameters = OrderedDict(template._parameters)
            cached._parameters["weight"] = nn.Parameter(self._modules["weight"].dense(),
                                                        requires_grad=False)
            self.__dict__["_dense"] = cached
        return cached

    def forward(self, *args, **kwargs):
        self._check_export()
        dense = self.__dict__.get("_dense")
        if dense is None:
            dense = self.dense_layer()
        return dense.forward(*args, **kwargs)   # not dense(...): one module call, not two

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_dense", None)   # new tensors: unpack again
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> "PackedLayer":
        self.__dict__.pop("_dense", None)   # the copy holds its own ``training`` flag
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.__dict__.pop("_dense", None)   # the packed buffers are overwritten in place
        super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_dense", None)   # unpacked again (and checked) after loading
        return state


def stand_in_for(layer: nn.Module) -> Optional[Type[SparseLayer]]:
    """The ``SPARSE_LAYERS`` class that replaces ``layer`` (None when none does)."""
    for name in SPARSE_LAYERS:
        kind = SPARSE_LAYERS.get(name)
        if isinstance(layer, kind.LAYER_TYPES):
            return kind
    return None


def conv_by_images(weight: SparseWeight, x: torch.Tensor, bias: Optional[torch.Tensor],
                   kernel: Tuple[int, int], stride: Tuple[int, int],
                   padding: Tuple[int, int], dilation: Tuple[int, int]) -> torch.Tensor:
    """``F.conv2d(x, W, bias, stride, padding, dilation)`` (groups 1) as im2col + W @ cols."""
    n, _, height, width = x.shape
    out_h = (height + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    if kernel == (1, 1) and stride == (1, 1) and padding == (0, 0):
        cols = x.reshape(n, x.shape[1], height * width)
    else:
        cols = F.unfold(x, kernel, dilation, padding, stride)
    if torch.is_grad_enabled():   # out= has no autograd: one more copy then
        out = torch.stack([weight.matmul(cols[image], bias) for image in range(n)])
    else:
        out = x.new_empty(n, weight.shape[0], out_h * out_w)
        for image in range(n):
            weight.matmul(cols[image], bias, out=out[image])
    return out.view(n, weight.shape[0], out_h, out_w)


@SPARSE_LAYERS.register("Linear")
class SparseLinear(SparseLayer):
    """``nn.Linear`` with a sparse weight: the same outputs, any number of leading dims."""

    LAYER_TYPES = (nn.Linear,)

    @classmethod
    def unreplaceable(cls, layer: nn.Module) -> Optional[str]:
        if isinstance(layer, nn.modules.linear.NonDynamicallyQuantizableLinear):
            return "its owner (nn.MultiheadAttention) reads the weight itself"
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_export()
        shape = x.shape
        y = self._modules["weight"].linear(x.reshape(-1, shape[-1]), self._bias())
        return y.view(*shape[:-1], y.shape[-1])


@SPARSE_LAYERS.register("Conv2d")
class SparseConv2d(SparseLayer):
    """``nn.Conv2d`` (groups 1, zero padding given as numbers) with a sparse weight."""

    LAYER_TYPES = (nn.Conv2d,)

    @classmethod
    def refusal(cls, layer: nn.Module) -> Optional[str]:
        if layer.groups != 1:
            return f"grouped convolution (groups={layer.groups})"
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            return f"padding {layer.padding!r} / padding_mode {layer.padding_mode!r}"
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_export()
        conv = self._modules["layer"]
        return conv_by_images(self._modules["weight"], x, self._bias(), conv.kernel_size,
                              conv.stride, conv.padding, conv.dilation)


@SPARSE_LAYERS.register("Fc")
class SparseFc(SparseLayer):
    """n2prune's Fc cell with a sparse weight (inputs flattened and concatenated, activation)."""

    LAYER_TYPES = (Fc,)

    @classmethod
    def weight_matrix(cls, layer: nn.Module) -> torch.Tensor:
        return layer.effective_weight().detach()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        self._check_export()
        flat = [x.reshape(x.shape[0], -1) for x in inputs]
        x = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
        y = self._modules["weight"].linear(x, self._bias())
        return self._modules["layer"].activate(y, owned=True)


@SPARSE_LAYERS.register("Conv")
class SparseConv(SparseLayer):
    """n2prune's Conv cell (groups 1) with a sparse weight; its Mapping is in the weight."""

    LAYER_TYPES = (Conv,)

    @classmethod
    def refusal(cls, layer: nn.Module) -> Optional[str]:
        return f"grouped convolution (groups={layer.groups})" if layer.groups != 1 else None

    @classmethod
    def weight_matrix(cls, layer: nn.Module) -> torch.Tensor:
        weight = layer.effective_weight().detach()   # connection (Mapping) applied
        return weight.reshape(weight.shape[0], -1)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        self._check_export()
        cell = self._modules["layer"]
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        crop, stride, padding, dilation = cell._geometry
        if crop is not None:
            x = F.pad(x, crop)
        kernel = tuple(self.weight_shape[2:])
        y = conv_by_images(self._modules["weight"], x, self._bias(), kernel, stride, padding,
                           dilation)
        return cell.activate(y, owned=True)
