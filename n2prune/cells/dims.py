"""N2D2's dimension key families (spec §2.7) and X-first dims for 2-D torch ops.

Kernel-like dims come from ``<Stem>Dims`` (a list), else ``<Stem>Size`` (square 2-D), else
``<Stem>Width`` + ``<Stem>Height`` (+ ``<Stem>Depth``). Stride, padding and dilation come
from ``<Stem>Dims``, else ``<Stem>`` for every kernel dim, else ``<Stem>X/Y/Z`` (with
defaults) cut to the kernel's number of dims. All lists are X first: ``[width, height]``.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

from n2prune.ini.values import read_list, read_uint


def read_kernel_dims(section: Any, stem: str = "Kernel") -> List[int]:
    """``KernelDims`` / ``KernelSize`` / ``KernelWidth`` + ``KernelHeight`` (+ ``Depth``)."""
    if f"{stem}Dims" in section:
        dims = section.get(f"{stem}Dims", read_list(read_uint))
        if not dims:
            raise section.error(f"{stem}Dims", "at least one dimension is required")
        return dims
    if f"{stem}Size" in section:
        return [section.get(f"{stem}Size", read_uint)] * 2
    dims = [section.get(f"{stem}Width", read_uint), section.get(f"{stem}Height", read_uint)]
    if f"{stem}Depth" in section:
        dims.append(section.get(f"{stem}Depth", read_uint))
    return dims


def read_dims(section: Any, stem: str, nb_dims: int, default: int,
              reader: Callable[..., int] = read_uint) -> List[int]:
    """``<Stem>Dims`` / ``<Stem>`` / ``<Stem>X,Y,Z`` for a kernel of ``nb_dims`` dims."""
    if f"{stem}Dims" in section:
        return section.get(f"{stem}Dims", read_list(reader))
    if stem in section:
        return [section.get(stem, reader)] * nb_dims
    axes = [section.get(f"{stem}{axis}", reader, default) for axis in "XYZ"]
    return (axes + [default] * nb_dims)[:nb_dims]


def key_of(section: Any, stem: str) -> str:
    """The key of a family actually present (for locating errors)."""
    for key in (f"{stem}Dims", f"{stem}Size", stem, f"{stem}Width", f"{stem}X"):
        if key in section:
            return key
    return f"{stem}Dims"


def pair(name: str, dims: Sequence[int], fill: int, low: Optional[int]) -> Tuple[int, int]:
    """X-first ``[x]`` or ``[x, y]`` -> (x, y); a 1-D ``[x]`` gets ``y = fill``.

    Values must be >= ``low`` (``None``: any integer, e.g. signed padding).
    """
    dims = [dims] if isinstance(dims, int) else list(dims)
    if len(dims) == 1:
        dims.append(fill)
    if len(dims) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in dims):
        raise ValueError(f"{name}={list(dims)!r}: expected [X] or [X, Y] integers (width "
                         f"first); 3-D dims are not supported")
    if low is not None and any(v < low for v in dims):
        raise ValueError(f"{name}={list(dims)!r}: values must be >= {low}")
    return dims[0], dims[1]
