"""Sequence: cells applied one after the other, iterable as in N2D2's Python API."""

from __future__ import annotations

from typing import Iterable

from torch import nn


class Sequence(nn.Sequential):
    """``Sequence([conv, pool, fc])``; ``for cell in seq:`` yields the cells in order."""

    def __init__(self, cells: Iterable[nn.Module]):
        cells = list(cells)
        for index, cell in enumerate(cells):
            if not isinstance(cell, nn.Module):
                raise TypeError(f"Sequence: item {index} is a {type(cell).__name__}, "
                                f"not a cell (torch.nn.Module)")
        super().__init__(*cells)
