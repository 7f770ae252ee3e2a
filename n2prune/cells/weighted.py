"""WeightCell: what Conv and Fc share: N2D2's default fillers, the quantizer slot, inputs."""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from n2prune.cells.activation_functions import ActivatedCell
from n2prune.cells.base import tensor_of
from n2prune.cells.mapping import n2d2_zeroes_unconnected


class WeightCell(ActivatedCell):
    """A cell with a ``weight`` (and optional ``bias``) that a PruneCell can be attached to.

    ``cell.quantizer = PruneCell(...)`` attaches (the masks are computed then);
    ``cell.quantizer = None`` detaches. With several inputs (N2D2's ``Input=a,b``) the weight
    holds one block of columns per input (``input_slices``), pruned independently as N2D2's
    separate weight tensors are.
    """

    quantizer: Optional[nn.Module]

    def __init__(self) -> None:
        super().__init__()
        self.quantizer = None
        self.input_slices: List[slice] = [slice(None)]

    def __setattr__(self, name: str, value) -> None:
        if name == "quantizer" and value is not None:
            if not hasattr(value, "attach"):
                raise TypeError(f"quantizer must be a PruneCell or None, not "
                                f"{type(value).__name__}")
            super().__setattr__(name, value)
            value.attach(self)
            return
        if name == "quantizer":   # detached: a plain attribute, fast to read in forward
            self._modules.pop("quantizer", None)
        super().__setattr__(name, value)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        if self.__dict__.get("_modules", {}).get("quantizer") is not None:
            self._modules["quantizer"].rebind(self)

    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass uses: masked when a quantizer is attached."""
        weight = tensor_of(self, "weight")
        connection = self._buffers.get("connection")   # not nn.Module's slow __getattr__
        if connection is not None:
            weight = weight * connection
        quantizer = self._modules.get("quantizer")   # attached: a submodule (else None)
        if quantizer is not None:
            quantizer.rebind(self)
            weight = quantizer.quantize(weight)
        return weight

    @torch.no_grad()
    def zero_unconnected(self) -> None:
        """Zero the kernels the connection map disconnects, in the inputs where N2D2 does
        (:func:`~n2prune.cells.mapping.n2d2_zeroes_unconnected`); elsewhere they keep their
        values, as in N2D2, and the forward's ``weight * connection`` hides them."""
        connection = self._buffers.get("connection")
        if connection is None:
            return
        for part in self.input_slices:
            block = connection[:, part]
            if n2d2_zeroes_unconnected(block[:, :, 0, 0] != 0):
                self.weight[:, part].mul_(block)

    def _set_inputs(self, sizes: Optional[Sequence[int]], total: int, what: str) -> None:
        if sizes is None:
            return
        sizes = [int(size) for size in sizes]
        if sum(sizes) != total or any(size <= 0 for size in sizes):
            raise ValueError(f"{type(self).__name__}: {what} {sizes} must be positive and sum "
                             f"to nb_inputs={total}")
        bounds = [0]
        for size in sizes:
            bounds.append(bounds[-1] + size)
        self.input_slices = [slice(a, b) for a, b in zip(bounds, bounds[1:])]

    def reset_parameters(self, std: float = 0.05, generator: Optional[torch.Generator] = None):
        """N2D2's built-in default fillers: weights and biases N(0, 0.05)."""
        with torch.no_grad():
            self.weight.normal_(0.0, std, generator=generator)
            if self.bias is not None:
                self.bias.normal_(0.0, std, generator=generator)
            self.zero_unconnected()
        if self.quantizer is not None:
            self.quantizer.recompute()
