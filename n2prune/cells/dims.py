"""N2D2's dimension key families (spec §2.7) and X-first dims for 2-D torch ops.

Kernel-like dims come from ``<Stem>Dims`` (a list), else ``<Stem>Size`` (square 2-D), else
``<Stem>Width`` + ``<Stem>Height`` (+ ``<Stem>Depth``). Stride, padding and dilation come
from ``<Stem>Dims``, else ``<Stem>`` for every kernel dim, else ``<Stem>X/Y/Z`` (with
defaults) cut to the kernel's number of dims. All lists are X first: ``[width, height]``.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

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


def pair(name: str, dims: Union[None, int, Sequence[int]], fill: int,
         low: Optional[int]) -> Tuple[int, int]:
    """X-first dims of every 2-D cell (Conv, Deconv, Pool) -> (x, y).

    ``[x, y]`` is width first; a 1-D ``[x]`` gets ``y = fill`` (N2D2 extends a 1-D pool or
    stride ``[n]`` to ``[n, 1]`` and a padding ``[p]`` to ``[p, 0]``); a plain int ``n`` is
    square ``(n, n)``, as in PyTorch; None is ``(fill, fill)``. Values must be >= ``low``
    (``None``: any integer, e.g. signed padding).

    >>> pair("kernel_dims", [3], 1, 1), pair("kernel_dims", 3, 1, 1)
    ((3, 1), (3, 3))
    """
    given = dims
    if dims is None:
        dims = [fill, fill]
    elif isinstance(dims, int) and not isinstance(dims, bool):
        dims = [dims, dims]
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
        raise ValueError(f"{name}={given!r}: expected an int, [X] or [X, Y] (width first)")
    dims = list(dims)
    if len(dims) not in (1, 2):
        raise ValueError(f"{name}={dims!r}: expected [X] or [X, Y] (width first); "
                         f"{len(dims)}-D dims are not supported")
    if any(isinstance(v, bool) or not isinstance(v, int) for v in dims):
        raise ValueError(f"{name}={dims!r}: expected integers")
    if low is not None and any(v < low for v in dims):
        raise ValueError(f"{name}={dims!r}: values must be >= {low}")
    return (dims[0], dims[1]) if len(dims) == 2 else (dims[0], fill)
