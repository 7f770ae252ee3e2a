"""Pool: N2D2's pooling cell (spec §2.7) with its channel mapping (spec §2.6).

Each output pools the windows of all the channels its map connects: a max over them, or
their mean counting padding (``count_include_pad=True``). ``Mapping.Size=1`` or
``Mapping.ChannelsPerGroup=1`` gives ordinary per-channel pooling; **no mapping pools across
all channels**, as N2D2 does. Max pooling ignores padding; an output whose windows hold only
padding, or no channel, is 0. Sizes use floor mode: ``out = floor((in + 2p - k + s) / s)``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from n2prune.cells.activation_functions import ActivatedCell, build_activation
from n2prune.cells.base import CELLS, BuildContext, tensor_of
from n2prune.cells.dims import key_of, pair, read_dims, read_kernel_dims
from n2prune.cells.inputs import concat, same_size
from n2prune.cells.mapping import combined_map, parent_key_name, unconnected_outputs
from n2prune.cells.maxpool import max_pool2d
from n2prune.ini.values import read_enum, read_uint

POOLINGS = ["Max", "Average"]


def pool_output_size(size: int, pool: int, stride: int, padding: int) -> int:
    """N2D2's floor-mode size: floor((in + 2p - k + s) / s)."""
    return (size + 2 * padding - pool + stride) // stride


class Pool(ActivatedCell):
    """Max or average pooling, N2D2 style, with an optional channel map.

    Dims are X first: ``pool_dims=[3, 2]`` is 3 wide, 2 high; a 1-D ``[n]`` means ``[n, 1]``
    (padding ``[p]`` means ``[p, 0]``). ``mapping`` is a bool ``[nb_outputs, channels]``
    over the concatenated inputs; ``None`` is N2D2's default, the full map (every output pools
    all channels). For ordinary pooling pass ``torch.eye(C, dtype=torch.bool)``.
    """

    def __init__(self, nb_outputs: int, pool_dims: Sequence[int],
                 stride_dims: Sequence[int] = (1, 1), padding_dims: Sequence[int] = (0, 0),
                 pooling: str = "Max", activation=None,
                 mapping: Optional[torch.Tensor] = None):
        super().__init__()
        if isinstance(nb_outputs, bool) or not isinstance(nb_outputs, int) or nb_outputs <= 0:
            raise ValueError(f"Pool: nb_outputs must be a positive integer, got {nb_outputs!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"Pool: pooling={pooling!r}, expected one of {POOLINGS}")
        self.nb_outputs, self.pooling = nb_outputs, pooling
        self.pool_dims = list(pair("pool_dims", pool_dims, 1, 1))
        self.stride_dims = list(pair("stride_dims", stride_dims, 1, 1))
        self.padding_dims = list(pair("padding_dims", padding_dims, 0, 0))
        self.activation = activation
        index, self.mode = None, "full"
        if mapping is not None:
            mapping = torch.as_tensor(mapping, dtype=torch.bool)
            if mapping.dim() != 2 or mapping.shape[0] != nb_outputs:
                raise ValueError(f"Pool: mapping must be a bool [nb_outputs={nb_outputs}, "
                                 f"channels] map, got shape {tuple(mapping.shape)}")
            square = mapping.shape[0] == mapping.shape[1]
            if square and torch.equal(mapping, torch.eye(nb_outputs, dtype=torch.bool)):
                self.mode = "identity"
            elif not bool(mapping.all()):
                self.mode, index = "mapped", _gather_index(mapping)
        self.register_buffer("mapping", mapping)
        self.register_buffer("_index", index, persistent=False)

    def output_size(self, height: int, width: int) -> tuple:
        """(H, W) of the output for an input of ``height`` x ``width``."""
        return (pool_output_size(height, self.pool_dims[1], self.stride_dims[1],
                                 self.padding_dims[1]),
                pool_output_size(width, self.pool_dims[0], self.stride_dims[0],
                                 self.padding_dims[0]))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = concat(inputs)
        mapping = tensor_of(self, "mapping")
        if mapping is not None and mapping.shape[1] != x.shape[1]:
            raise ValueError(f"Pool: mapping has {mapping.shape[1]} channels, the input "
                             f"has {x.shape[1]}")
        pooled = self._pool_channels(x)
        if self.mode == "full":
            y = self._across_all(pooled)
        elif self.mode == "identity":
            y = pooled
        else:
            y = self._mapped(pooled)
        return self.activate(y)

    def _pool_channels(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel pooling: max ignoring padding, average dividing by the full window."""
        kernel = (self.pool_dims[1], self.pool_dims[0])
        stride = (self.stride_dims[1], self.stride_dims[0])
        px, py = self.padding_dims
        native = 2 * py <= kernel[0] and 2 * px <= kernel[1]
        if self.pooling == "Average":
            if not native:
                x, py, px = F.pad(x, (px, px, py, py)), 0, 0
            return F.avg_pool2d(x, kernel, stride, (py, px), count_include_pad=True)
        if native:
            return max_pool2d(x, kernel, stride, (py, px))
        # Padding wider than half the window: some windows hold only padding (N2D2: 0).
        pads = (px, px, py, py)
        y = max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)
        real = F.max_pool2d(F.pad(torch.zeros_like(x[:, :1]), pads, value=float("-inf")),
                            kernel, stride) == 0
        return torch.where(real, y, torch.zeros_like(y))

    def _across_all(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.pooling == "Max":
            y = pooled.max(dim=1, keepdim=True).values
        else:
            y = pooled.mean(dim=1, keepdim=True)
        return y.expand(-1, self.nb_outputs, -1, -1).contiguous()

    def _mapped(self, pooled: torch.Tensor) -> torch.Tensor:
        """Each output: max (or mean) over the pooled windows of its mapped channels."""
        fill = float("-inf") if self.pooling == "Max" else 0.0
        extra = torch.full_like(pooled[:, :1], fill)     # index `channels` = no channel
        gathered = torch.cat([pooled, extra], dim=1)[:, self._index]   # N, O, D, H, W
        counts = self.mapping.sum(dim=1).to(pooled.dtype)[None, :, None, None]
        if self.pooling == "Max":
            y = gathered.max(dim=2).values
        else:
            y = gathered.sum(dim=2) / counts.clamp(min=1)
        return torch.where(counts > 0, y, torch.zeros_like(y))

    def extra_repr(self) -> str:
        mapping = self.mode if self.mapping is None or self.mode != "mapped" \
            else f"map {tuple(self.mapping.shape)}"
        return (f"{self.nb_outputs}, pool_dims={self.pool_dims}, stride_dims="
                f"{self.stride_dims}, padding_dims={self.padding_dims}, pooling="
                f"{self.pooling!r}, mapping={mapping}")


def _gather_index(mapping: torch.Tensor) -> torch.Tensor:
    """[outputs, max degree] channel indices, padded with ``channels`` (no channel)."""
    nb_outputs, channels = mapping.shape
    degree = max(int(mapping.sum(dim=1).max()), 1) if nb_outputs else 1
    index = torch.full((nb_outputs, degree), channels, dtype=torch.long)
    for output in range(nb_outputs):
        connected = torch.nonzero(mapping[output]).flatten()
        index[output, :connected.numel()] = connected
    return index


@CELLS.register("Pool")
def build_pool(ctx: BuildContext):
    """[cell] Type=Pool: PoolDims/..., NbOutputs, Stride*, Padding*, Pooling, Mapping..."""
    section = ctx.section
    pool_dims = read_kernel_dims(section, "Pool")
    stride_dims = read_dims(section, "Stride", len(pool_dims), 1)
    padding_dims = read_dims(section, "Padding", len(pool_dims), 0, read_uint)
    nb_outputs = section.get("NbOutputs", read_uint)
    pooling = section.get("Pooling", read_enum(POOLINGS))
    activation = build_activation(section)
    for name, (channels, height, width) in zip(ctx.input_names, ctx.input_shapes):
        if parent_key_name(name) != "env" and width <= 1 and height <= 1:
            raise section.error("Input", f"2D input expected for a Pool cell, {name!r} is "
                                         f"{width}x{height}")
    height, width = same_size(ctx)
    channels = [c for c, _, _ in ctx.input_shapes]
    mapping = combined_map(section, ctx.input_names, nb_outputs, channels)
    for output in unconnected_outputs(mapping):
        section.warn("NbOutputs", f"output map #{output} has no input connection")
    try:
        module = Pool(nb_outputs, pool_dims, stride_dims, padding_dims, pooling, activation,
                      mapping)
    except ValueError as exc:
        raise section.error(key_of(section, "Pool"), str(exc)) from None
    out_h, out_w = module.output_size(height, width)
    if out_h <= 0 or out_w <= 0:
        raise section.error(key_of(section, "Pool"), f"pooling a {width}x{height} input "
                                                     f"gives an empty {out_w}x{out_h} output")
    return module, (nb_outputs, out_h, out_w)
