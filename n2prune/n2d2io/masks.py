"""N2D2's ``<cell>_masks.syntxt`` text format (spec §4.7), written atomically: one line per
output for each input block in turn, each 0/1 value followed by a space."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Sequence

import numpy as np
import torch

from n2prune.atomic import PathLike, atomic_write_text


def format_masks(masks: Iterable[torch.Tensor]) -> str:
    """One line per output for each mask in turn; each 0/1 value followed by a space."""
    lines: List[str] = []
    for mask in masks:
        rows = mask.detach().reshape(mask.shape[0], -1).ne(0).to(torch.uint8).cpu().numpy()
        table = np.where(rows == 0, "0 ", "1 ")
        lines.extend("".join(row) for row in table)
    return "\n".join(lines) + "\n" if lines else ""


def write_masks(path: PathLike, masks: Iterable[torch.Tensor]) -> None:
    atomic_write_text(path, format_masks(masks))


def read_masks(path: PathLike) -> np.ndarray:
    """Every whitespace-separated value of a masks file, checked to be 0 or 1, in file order."""
    path = Path(path)
    try:
        words = path.read_text().split()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read masks file: {exc.strerror}") from None
    bad = next((i for i, w in enumerate(words) if w not in ("0", "1")), None)
    if bad is not None:
        raise ValueError(f"{path}: value {bad + 1} is {words[bad]!r}; a masks file holds only "
                         f"0 and 1 separated by whitespace")
    return np.array([w == "1" for w in words], dtype=np.float32)


def import_cell_masks(path: PathLike, mask: torch.Tensor, parts: Sequence[slice]) -> float:
    """Read a cell's masks file into its input blocks ``mask[:, part]``: every block, or only
    the first when the file holds just that one (as N2D2 reads it); any other count is
    refused, naming what the cell needs. Returns the float32 zero fraction of the first block
    (N2D2's new current threshold)."""
    values = torch.from_numpy(read_masks(path))
    blocks = [mask[:, part] for part in parts]
    sizes = [block.numel() for block in blocks]
    if values.numel() == sum(sizes):
        count = len(sizes)
    elif values.numel() == sizes[0]:
        count = 1
    else:
        raise ValueError(f"{path}: masks file holds {values.numel()} values, but the cell's "
                         f"weights need {sum(sizes)} (one 0/1 per weight, {mask.shape[0]} "
                         f"lines of {sum(sizes) // mask.shape[0]})")
    offset = 0
    for part, block, size in zip(parts[:count], blocks, sizes):
        mask[:, part] = values[offset:offset + size].reshape(block.shape).to(block)
        offset += size
    first = mask[:, parts[0]]
    return float(np.float32((first == 0).sum().item()) / np.float32(first.numel()))
