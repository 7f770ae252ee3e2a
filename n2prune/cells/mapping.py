"""Channel mapping (spec §2.6): which input channels feed which outputs of Conv/Pool/Deconv.

A map is a bool tensor ``[outputs, channels]`` for one parent. ``connection_map`` reads it
from a cell section with N2D2's rules, in N2D2's order:

1. ``Mapping.NbGroups`` / ``Mapping.ChannelsPerGroup``: block-diagonal groups;
2. ``Mapping(P)=`` 0/1 matrix, one text row per input channel, one column per output;
3. mapping function ``Mapping(P).k`` falling back to ``Mapping.k`` (Size, SizeX, SizeY,
   Stride, StrideX, StrideY, Offset, OffsetX, OffsetY, NbIterations);
4. nothing: the full (all-to-all) map.

The stimuli provider is the parent ``env`` (``sp`` and ``cenv`` are read as ``env``).

>>> group_map(4, 2, 2).int().tolist()
[[1, 0], [1, 0], [0, 1], [0, 1]]
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch

from n2prune.ini.values import read_text, read_uint

NAME = "Mapping"
_PROVIDER = ("env", "sp", "cenv")
_DEFAULTS = {"size_x": 1, "size_y": 1, "stride_x": 1, "stride_y": 1,
             "offset_x": 0, "offset_y": 0, "nb_iterations": 0}
# (INI key setting both axes, X key, Y key, parameter stem)
_PAIRS = (("Size", "SizeX", "SizeY", "size"), ("Stride", "StrideX", "StrideY", "stride"),
          ("Offset", "OffsetX", "OffsetY", "offset"))


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def full_map(nb_outputs: int, nb_channels: int) -> torch.Tensor:
    """Every output connected to every channel."""
    return torch.ones(nb_outputs, nb_channels, dtype=torch.bool)


def group_map(nb_outputs: int, nb_channels: int, nb_groups: int,
              channels_per_group: Optional[int] = None) -> torch.Tensor:
    """Block-diagonal map of ``nb_groups`` groups, N2D2's way.

    Channels are cut into blocks of ``channels_per_group`` (default
    ``nb_channels // nb_groups``; channels beyond the last block stay unconnected, as in
    N2D2); group g gets ``remaining_outputs // (nb_groups - g)`` outputs, so earlier groups
    get the floor.
    """
    _positive("nb_groups", nb_groups)
    per_group = nb_channels // nb_groups if channels_per_group is None else channels_per_group
    if per_group == 0 or per_group * nb_groups > nb_channels:
        raise ValueError(f"{nb_groups} groups of {per_group} channels do not fit the "
                         f"{nb_channels} input channels")
    result = torch.zeros(nb_outputs, nb_channels, dtype=torch.bool)
    first = 0
    for group in range(nb_groups):
        size = (nb_outputs - first) // (nb_groups - group)
        channel = group * per_group
        result[first:first + size, channel:channel + per_group] = True
        first += size
    return result


def matrix_map(values: Sequence[int], nb_outputs: int, nb_channels: int) -> torch.Tensor:
    """A ``Mapping(P)=`` matrix: values row-major, one row per channel, one column per output."""
    if len(values) != nb_outputs * nb_channels:
        raise ValueError(f"{len(values)} values given, expected {nb_channels} rows (input "
                         f"channels) x {nb_outputs} columns (outputs) = "
                         f"{nb_outputs * nb_channels}")
    if any(value not in (0, 1) for value in values):
        raise ValueError("a mapping matrix holds only 0 and 1")
    table = torch.tensor(list(values), dtype=torch.bool).reshape(nb_channels, nb_outputs)
    return table.t().contiguous()


def function_map(nb_outputs: int, nb_channels: int, size_x: int = 1, size_y: int = 1,
                 stride_x: int = 1, stride_y: int = 1, offset_x: int = 0, offset_y: int = 0,
                 nb_iterations: int = 0) -> torch.Tensor:
    """N2D2's mapping function: stamp a SizeX x SizeY patch, moving by the strides.

    X runs over outputs and Y over channels, both wrapping around. ``nb_iterations=0`` means
    max(outputs, channels); ``size_x=0`` means all outputs, ``size_y=0`` all channels.
    ``size_x=size_y=1`` with equal counts is the identity.
    """
    result = torch.zeros(nb_outputs, nb_channels, dtype=torch.bool)
    if nb_outputs == 0 or nb_channels == 0:
        return result
    iterations = nb_iterations or max(nb_outputs, nb_channels)
    size_x = size_x or nb_outputs
    size_y = size_y or nb_channels
    patch_x, patch_y = torch.arange(size_x), torch.arange(size_y)
    for i in range(iterations):
        rows = (offset_x + i * stride_x + patch_x) % nb_outputs
        cols = (offset_y + i * stride_y + patch_y) % nb_channels
        result[rows[:, None], cols[None, :]] = True
    return result


def groups_of(mapping: torch.Tensor) -> Optional[int]:
    """G when ``mapping`` is exactly a grouped convolution's map (torch ``groups=G``), else None.

    The full map gives 1, a one-to-one diagonal gives the channel count. Groups must split
    outputs and channels evenly (an N2D2 group map with uneven outputs gives None: use a
    connection mask instead).
    """
    nb_outputs, nb_channels = mapping.shape
    if nb_outputs == 0 or nb_channels == 0:
        return None
    per_group = int(mapping[0].sum())
    if per_group == 0 or nb_channels % per_group:
        return None
    groups = nb_channels // per_group
    if nb_outputs % groups:
        return None
    return groups if torch.equal(mapping.bool(), group_map(nb_outputs, nb_channels, groups)) \
        else None


def n2d2_zeroes_unconnected(mapping: torch.Tensor) -> bool:
    """Whether N2D2 sets the kernels one input's ``[outputs, channels]`` map disconnects to 0.

    N2D2's Conv fills every kernel, then zeroes the disconnected ones only when
    ``Cell::getNbGroups`` of that input's map is 0, which is exactly when output 0 is not
    connected to channel 0. Any other map (a hand-made table such as LeNet's conv2, which
    counts as one group) keeps the filler's random values there; its forward and backward
    skip the disconnected kernels, so they change nothing but what a pruning filler ranks.

    >>> n2d2_zeroes_unconnected(torch.tensor([[True, False], [False, True]]))
    False
    >>> n2d2_zeroes_unconnected(torch.tensor([[False, True], [True, True]]))
    True
    """
    return mapping.numel() > 0 and not bool(mapping[0, 0])


def unconnected_outputs(mapping: torch.Tensor) -> List[int]:
    """Outputs no channel reaches (N2D2 warns about each)."""
    return torch.nonzero(~mapping.bool().any(dim=1)).flatten().tolist()


def parent_key_name(parent: str) -> str:
    """The name used in ``Mapping(P)`` keys: ``env`` for the stimuli provider."""
    return "env" if parent in _PROVIDER else parent


def connection_map(section: Any, parent: str, nb_outputs: int, nb_channels: int,
                   name: str = NAME) -> torch.Tensor:
    """The bool map ``[nb_outputs, nb_channels]`` a cell section gives parent ``parent``."""
    groups_key, per_group_key = f"{name}.NbGroups", f"{name}.ChannelsPerGroup"
    if groups_key in section or per_group_key in section:
        return _groups_from(section, groups_key, per_group_key, nb_outputs, nb_channels)
    own = f"{name}({parent_key_name(parent)})"
    if own in section:
        return _matrix_from(section, own, nb_outputs, nb_channels)
    if section.prefixed(name + ".") or section.prefixed(own + "."):
        params = _function_params(section, name, dict(_DEFAULTS))
        params = _function_params(section, own, params)
        return function_map(nb_outputs, nb_channels, **params)
    return full_map(nb_outputs, nb_channels)


def combined_map(section: Any, parents: Sequence[str], nb_outputs: int,
                 channels: Sequence[int], name: str = NAME) -> torch.Tensor:
    """The maps of several parents side by side: ``[nb_outputs, sum(channels)]``."""
    maps = [connection_map(section, parent, nb_outputs, count, name)
            for parent, count in zip(parents, channels)]
    return torch.cat(maps, dim=1)


def _groups_from(section, groups_key, per_group_key, nb_outputs, nb_channels):
    if groups_key in section and per_group_key in section:
        raise section.error(per_group_key, f"{groups_key} and {per_group_key} are mutually "
                                           "exclusive")
    if groups_key in section:
        key, nb_groups = groups_key, section.get(groups_key, read_uint)
        if nb_groups == 0 or nb_groups > nb_channels:
            raise section.error(key, f"must be between 1 and the {nb_channels} input channels")
        per_group = nb_channels // nb_groups
    else:
        key, per_group = per_group_key, section.get(per_group_key, read_uint)
        if per_group == 0 or per_group > nb_channels:
            raise section.error(key, f"must be between 1 and the {nb_channels} input channels")
        nb_groups = nb_channels // per_group
    if nb_channels % nb_groups:
        raise section.error(key, f"{nb_channels} input channels cannot be split into "
                                 f"{nb_groups} groups")
    if nb_groups * per_group != nb_channels:
        section.warn(key, f"{nb_groups} group(s) of {per_group} channels leave input channels "
                          f"{nb_groups * per_group}..{nb_channels - 1} unconnected (as N2D2 does)")
    return group_map(nb_outputs, nb_channels, nb_groups, per_group)


def _matrix_from(section, key, nb_outputs, nb_channels):
    words = section.get(key, read_text).split()
    try:
        values = [int(word) if word in ("0", "1") else -1 for word in words]
        return matrix_map(values, nb_outputs, nb_channels)
    except ValueError as exc:
        bad = [word for word in words if word not in ("0", "1")]
        reason = f"{exc} (found {bad[0]!r})" if bad else str(exc)
        raise section.error(key, reason) from None


def _function_params(section, prefix: str, params: Dict[str, int]) -> Dict[str, int]:
    """Mapping-function parameters under ``prefix``, on top of ``params``."""
    params = dict(params)
    for both, key_x, key_y, stem in _PAIRS:
        if f"{prefix}.{both}" in section:
            params[stem + "_x"] = params[stem + "_y"] = section.get(f"{prefix}.{both}",
                                                                    read_uint)
        else:
            params[stem + "_x"] = section.get(f"{prefix}.{key_x}", read_uint,
                                              params[stem + "_x"])
            params[stem + "_y"] = section.get(f"{prefix}.{key_y}", read_uint,
                                              params[stem + "_y"])
    params["nb_iterations"] = section.get(f"{prefix}.NbIterations", read_uint,
                                          params["nb_iterations"])
    return params
