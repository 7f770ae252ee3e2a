"""Cells that add a constant ``shift`` map before their activation: what compaction makes of a
cell whose removed input channels carried values that do not depend on the input (biases,
BatchNorm shifts passed through activations) and that no bias or BatchNorm could take.

A :class:`~n2prune.cells.kinds.CellKind`'s ``shifted`` is such a class (a :class:`Shifted`
subclass of the kind's cell class): it computes those channels' contribution
(:meth:`Shifted.contribution`), turns a cell into its shifted form
(:meth:`Shifted.attach_shift`) and back (:meth:`Shifted.unshift`, for N2D2 files, which
cannot hold the map).
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.conv import Conv
from n2prune.cells.fc import Fc


def conv_linear(cell: Conv, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """What ``Conv.forward`` computes before bias and activation."""
    crop, stride, padding, dilation = cell._geometry
    if crop is not None:
        x = F.pad(x, crop)
    return F.conv2d(x, weight, None, stride, padding, dilation, cell.groups)


class Shifted:
    """A cell with a ``shift`` buffer added to its output before bias and activation."""

    @staticmethod
    def contribution(cell: nn.Module, inputs: List[torch.Tensor],
                     gone: torch.Tensor) -> torch.Tensor:
        """What the input channels where ``gone`` (bool, concatenated inputs) add to the
        outputs of ``cell`` (before bias and activation), for a batch of one: ``[O, ...]``."""
        raise NotImplementedError

    @classmethod
    def attach_shift(cls, cell: nn.Module, value: torch.Tensor) -> None:
        """Turn ``cell`` (of the class this one derives from) into this class, adding
        ``value`` (``[O, ...]``, as :meth:`contribution` gives it)."""
        raise NotImplementedError

    def unshift(self) -> torch.Tensor:
        """Back to the plain cell class; returns the shift map that was dropped,
        ``[O, ...]``."""
        shift = self._buffers.pop("shift")
        self.__class__ = type(self).__mro__[2]   # (ShiftedX, Shifted, X, ...)
        return shift


class ShiftedConv(Shifted, Conv):
    """A Conv whose removed input channels left a position-dependent constant ``shift``."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        y = conv_linear(self, x, self.effective_weight()) + self.shift
        if self.bias is not None:
            y = y + self.bias[:, None, None]
        return self.activate(y, owned=True)

    @staticmethod
    def contribution(cell, inputs, gone):
        x = torch.cat(inputs, dim=1) if len(inputs) > 1 else inputs[0]
        return conv_linear(cell, x * gone[None, :, None, None], cell.effective_weight())[0]

    @classmethod
    def attach_shift(cls, cell, value):
        cell.__class__ = cls
        cell.register_buffer("shift", value.clone())


class ShiftedFc(Shifted, Fc):
    """An Fc whose removed input channels left a constant ``shift`` and which has no bias."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        flat = [x.reshape(x.shape[0], -1) for x in inputs]
        x = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
        y = F.linear(x, self.effective_weight(), self.bias) + self.shift
        return self.activate(y, owned=True)

    @staticmethod
    def contribution(cell, inputs, gone):
        x = torch.cat([t.reshape(1, -1) for t in inputs], dim=1)
        sizes = [t[0].numel() // t.shape[1] for t in inputs]
        column_gone = torch.cat([g.repeat_interleave(s) for g, s in
                                 zip(gone.split([t.shape[1] for t in inputs]), sizes)])
        return F.linear(x * column_gone, cell.effective_weight())[0]

    @classmethod
    def attach_shift(cls, cell, value):
        cell.__class__ = cls
        cell.register_buffer("shift", value[None])

    def unshift(self) -> torch.Tensor:
        return super().unshift()[0]
