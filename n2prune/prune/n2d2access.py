"""PruneCell's N2D2 Python API getters and N2D2 mask files, as a mixin (keeps prunecell.py
short): per-input masks and masked weights, the current threshold, ``<cell>_masks.syntxt``."""

from __future__ import annotations

from typing import List

import numpy as np
import torch

from n2prune.n2d2io.masks import PathLike, read_masks, write_masks


class N2D2Access:
    """Needs ``mask``, ``current_threshold``, ``cell`` and ``input_parts()`` (PruneCell's)."""

    mask: torch.Tensor
    current_threshold: torch.Tensor

    def input_parts(self) -> List[slice]:  # pragma: no cover - PruneCell's
        raise NotImplementedError

    # ----------------------------------------------------------------- N2D2's getters
    def _part(self, input_idx: int) -> slice:
        parts = self.input_parts()
        if isinstance(input_idx, bool) or not isinstance(input_idx, int) \
                or not 0 <= input_idx < len(parts):
            raise IndexError(f"PruneCell: input_idx={input_idx!r} out of range; this cell has "
                             f"{len(parts)} input(s)")
        return parts[input_idx]

    def get_pruned_masks(self, input_idx: int = 0) -> torch.Tensor:
        """The mask (0 = pruned) of input ``input_idx``, same shape as its weight."""
        return self.mask[:, self._part(input_idx)].detach().clone()

    def get_quantized_weights(self, input_idx: int = 0) -> torch.Tensor:
        """The masked weights of input ``input_idx``."""
        part = self._part(input_idx)
        return (self.cell.weight[:, part] * self.mask[:, part]).detach().clone()

    def get_current_threshold(self) -> float:
        return float(self.current_threshold)

    # ----------------------------------------------------------------- files
    def export_masks(self, path: PathLike) -> None:
        """Write N2D2's ``<cell>_masks.syntxt``: for each input, one 0/1 line per output."""
        write_masks(path, [self.mask[:, part] for part in self.input_parts()])

    @torch.no_grad()
    def import_masks(self, path: PathLike) -> None:
        """Read a masks file; the current threshold becomes the zero fraction of mask 0.

        A file holding every input's masks restores them all; one holding only the first
        input's restores that one, as N2D2 does.
        """
        values = torch.from_numpy(read_masks(path))
        parts = self.input_parts()
        sizes = [self.mask[:, part].numel() for part in parts]
        if values.numel() == sum(sizes):
            count = len(parts)
        elif values.numel() == sizes[0]:
            count = 1
        else:
            raise ValueError(f"{path}: masks file holds {values.numel()} values, but the cell's "
                             f"weights need {sum(sizes)} (one 0/1 per weight, "
                             f"{self.mask.shape[0]} lines of {sum(sizes) // self.mask.shape[0]})")
        offset = 0
        for part, size in zip(parts[:count], sizes[:count]):
            target = self.mask[:, part]
            self.mask[:, part] = values[offset:offset + size].reshape(target.shape).to(target)
            offset += size
        first = self.mask[:, parts[0]]
        zeros = np.float32((first == 0).sum().item()) / np.float32(first.numel())
        self.current_threshold.fill_(float(zeros))

