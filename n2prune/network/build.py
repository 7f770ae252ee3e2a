"""INI sections -> a torch network (spec §2): the ``Input=`` graph, build order, ConfigSection
routing, PruneCells attached, computed properties written back.

>>> net = load_network("networks/lenet.ini")          # doctest: +SKIP
>>> net(torch.zeros(1, *net.input_shape)).shape        # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from n2prune.cells import CELLS, BuildContext
from n2prune.cells.base import direct_calls, own_hooks
from n2prune.errors import ConfigError
from n2prune.registry import did_you_mean
from n2prune.network.routing import (ConfigView, SolverSpec, config_names, routed_prefixes,
                             solver_specs, weight_quantizer)
from n2prune.network.keys import check_config_names, check_global, check_leftovers
from n2prune.network.limits import MAX_NETWORK_ELEMENTS, AllocationGuard, OverLimit
from n2prune.network.onnx_section import import_section
from n2prune.network.scopes import bind_scopes
from n2prune.onnxin import load_description
from n2prune.network.targets import Target, read_targets
from n2prune.ini.values import read_list, read_uint, read_word
from n2prune.network.summary import network_summary

PROVIDERS = ("cenv", "env", "sp")  # the first present is the stimuli provider (§2.2)
FRAME_MODELS = ("Frame", "Frame_CUDA", "Transcode", "Transcode_CUDA")
NOT_YET = ("Unpool", "FMP", "LSTM", "Distance", "Anchor", "RP", "Proposal",
           "ROIPooling", "ObjectDet", "Transformation", "Transpose")


@dataclass
class CellInfo:
    """What the builder learnt about one cell."""

    name: str
    type: str
    inputs: List[str]
    input_shapes: List[Tuple[int, int, int]]
    output_shape: Tuple[int, int, int]
    solvers: Dict[str, SolverSpec] = field(default_factory=dict)


class Network(nn.Module):
    """A network built from an N2D2 INI file.

    ``net.cells`` maps section names (dots allowed: ``fc1.drop``) to cell modules in build
    order; iterating ``net`` yields the cells; ``net(x)`` takes ``(N, *net.input_shape)`` and
    returns the last cell's output. ``net.info`` holds per-cell shapes and solver settings,
    ``net.targets`` the ``[cell.Target]`` sections, ``net.ini`` the parsed file.
    """

    def __init__(self, ini: Any, input_shape: Tuple[int, int, int],
                 cells: "OrderedDict[str, nn.Module]", info: Dict[str, CellInfo],
                 targets: List[Target]):
        super().__init__()
        self.ini, self.input_shape, self.info, self.targets = ini, tuple(input_shape), info, \
            targets
        self.layers = nn.ModuleDict()
        self._keys: Dict[str, str] = {}
        for name, module in cells.items():
            key = _module_key(name, self._keys.values())
            self._keys[name] = key
            self.layers[key] = module
        self._steps = _execution_plan(info, self._keys)

    @property
    def cells(self) -> Mapping[str, nn.Module]:
        return OrderedDict((name, self.layers[key]) for name, key in self._keys.items())

    def __iter__(self):
        return iter(self.cells.values())

    def __len__(self) -> int:
        return len(self._keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = self.outputs(x)[None]
        return last.flatten(1) if last.shape[2:] == (1, 1) else last

    def outputs(self, x: torch.Tensor, keep: Sequence[str] = ()) -> Dict[Any, torch.Tensor]:
        """Run the network; the outputs of the cells named in ``keep`` (NCHW), and under the
        key None the last cell's.

        The execution plan (``_steps``, built once) holds each cell's module key, its inputs'
        slots in a list (0 is the input, i + 1 cell i's output) and the slots to free after
        it, so a pass does no name look-ups and keeps no output longer than needed. A cell
        without hooks is run through its ``forward``
        (see :func:`n2prune.cells.base.direct_calls`)."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"network input must be (N, {', '.join(map(str, self.input_shape))})"
                             f" (NbChannels, SizeY, SizeX), got {tuple(x.shape)}")
        wanted = {index: name for index, name in enumerate(self._keys, 1) if name in keep} \
            if keep else None
        kept: Dict[Any, torch.Tensor] = {}
        modules = self.layers._modules
        direct = direct_calls()
        slots: List[Optional[torch.Tensor]] = [None] * (len(self._steps) + 1)
        slots[0] = last = x
        for index, (key, parents, frees) in enumerate(self._steps, 1):
            cell = modules[key]
            if direct and not (own_hooks(cell) or cell._compiled_call_impl is not None):
                cell = cell.forward
            if len(parents) == 1:
                last = cell(slots[parents[0]])
            else:
                last = cell(*[slots[parent] for parent in parents])
            if last.dim() == 2:  # Fc-like outputs are N2D2's C x 1 x 1 maps (one view op)
                last = last.view(last.shape[0], last.shape[1], 1, 1)
            slots[index] = last
            if wanted and index in wanted:
                kept[wanted[index]] = last
            for done in frees:
                slots[done] = None
        kept[None] = last
        return kept

    def replace_cell(self, name: str, module: nn.Module) -> None:
        """Put ``module`` in place of cell ``name`` (same inputs and output shape)."""
        if name not in self._keys:
            raise KeyError(f"no cell named {name!r} (cells: {', '.join(self._keys)})")
        self.layers[self._keys[name]] = module

    def pruned_cells(self) -> "OrderedDict[str, nn.Module]":
        """The cells that carry a PruneCell."""
        return OrderedDict((name, cell) for name, cell in self.cells.items()
                           if getattr(cell, "quantizer", None) is not None)

    def summary(self) -> List[str]:
        """One line per cell (name, type, inputs, output shape, parameters, pruning), totals."""
        return network_summary(self)


def _module_key(name: str, taken) -> str:
    key = name.replace(".", "_") or "_"
    base, count = key, 1
    while key in taken:
        count += 1
        key = f"{base}_{count}"
    return key


def _execution_plan(info: Dict[str, CellInfo], keys: Dict[str, str]
                    ) -> List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]:
    """Per cell in build order: its module key, its inputs' slots (0 = the network input,
    i + 1 = cell i) and the slots nobody reads after it (freed to save memory), so that
    forward does no name look-ups."""
    slot = {"env": 0, **{name: index for index, name in enumerate(info, 1)}}
    last_use: Dict[str, str] = {}
    for name, cell in info.items():
        for parent in cell.inputs:
            last_use[parent] = name
    frees: Dict[str, List[int]] = {name: [] for name in info}
    names = list(info)
    for parent, user in last_use.items():
        if parent != names[-1]:
            frees[user].append(slot[parent])
    return [(keys[name], tuple(slot[p] for p in cell.inputs), tuple(frees[name]))
            for name, cell in info.items()]


def load_network(path: str, environ: Optional[Mapping[str, str]] = None, seed: int = 0,
                 epoch_size: Optional[int] = None,
                 max_elements: int = MAX_NETWORK_ELEMENTS) -> Network:
    """Parse ``path`` and build its network (see :func:`build_network`); an ONNX file
    (``.onnx``) is wrapped as a network of one ``Type=ONNX`` section."""
    return build_network(load_description(path, environ), seed=seed, epoch_size=epoch_size,
                         max_elements=max_elements)


def build_network(ini: Any, seed: int = 0, epoch_size: Optional[int] = None,
                  max_elements: int = MAX_NETWORK_ELEMENTS) -> Network:
    """Build the cells of a parsed INI file, level by level in file order (§2.3).

    ``seed`` seeds the weight fillers and the PruneCells; ``epoch_size`` (the Learn set size)
    is written to ``[sp]_EpochSize`` first, for files that refer to it in cell keys.
    The tensors building allocates (parameters, masks, buffers), and each cell's output
    per sample, are bounded by ``max_elements`` (see :mod:`n2prune.network.limits`).
    """
    check_global(ini)
    provider = provider_section(ini)
    input_shape = _input_shape(ini[provider])
    _check_size(ini[provider], input_shape, max_elements, "the input")
    if epoch_size is not None:
        ini[provider].set_computed("_EpochSize", epoch_size)
    order = _build_order(ini)
    generator = torch.Generator().manual_seed(seed)
    shapes: Dict[str, Tuple[int, int, int]] = {"env": input_shape}
    cells: "OrderedDict[str, nn.Module]" = OrderedDict()
    info: Dict[str, CellInfo] = {}
    guard = AllocationGuard(max_elements)
    imported = _Imported()
    for index, name in enumerate(order):
        try:
            with guard:
                if ini[name].get("Type", read_word, "") == "ONNX":
                    built = _import_onnx(ini, name, shapes, generator, seed + 1 + index,
                                         order, imported)
                else:
                    built = [_build_cell(ini, name, shapes, generator, seed + 1 + index,
                                         order, imported)]
        except OverLimit as error:
            raise guard.located(error, ini[name]) from None
        for cell, cell_info in built:
            _check_size(ini[name], cell_info.output_shape, max_elements,
                        "its output" if cell_info.name == name else
                        f"the output of {cell_info.name!r}")
            cells[cell_info.name], info[cell_info.name] = cell, cell_info
            shapes[cell_info.name] = cell_info.output_shape
    if not cells:
        raise ini[provider].error(None, "no cell found (a cell is a section with an Input= "
                                        "key)")
    net = Network(ini, input_shape, cells, info, read_targets(ini, list(cells)))
    bind_scopes(net, ini)   # a scope reading the network's structure (Coupled)
    return net


def _check_size(section: Any, shape: Tuple[int, ...], limit: int, what: str) -> None:
    """One sample of ``shape`` must stay within ``limit`` elements (forward would allocate
    it for every sample of a batch)."""
    count = 1
    for dim in shape:
        count *= dim
    if count > limit:
        raise section.error(None, f"{what} ({' x '.join(map(str, shape))} = {count:.4g} "
                                  f"elements per sample) is over the limit of {limit} "
                                  "elements (build_network(max_elements=...) changes it)")


def provider_section(ini: Any) -> str:
    """The stimuli provider's section name; a ConfigError at the first ``Input=`` naming it
    (or the first cell) when there is none."""
    for name in PROVIDERS:
        if name in ini:
            return name
    message = "missing stimuli provider: add an [sp] section with SizeX, SizeY and NbChannels"
    cells = [ini[name] for name in ini.section_names() if name and "Input" in ini[name]]
    for section in cells:
        if any(part in PROVIDERS for part in section.raw("Input").split(",")):
            raise section.error("Input", message)
    if cells:
        raise cells[0].error(None, message)
    raise ConfigError(message, path=ini.path, line=1)


def _input_shape(section: Any) -> Tuple[int, int, int]:
    if "Size" in section:
        size = section.get("Size", read_list(read_uint))
        if len(size) != 3:
            raise section.error("Size", "expected 'X Y C' (3-D inputs are not supported)")
        return size[2], size[1], size[0]
    shape = (section.get("NbChannels", read_uint, 1), section.get("SizeY", read_uint),
             section.get("SizeX", read_uint))
    if 0 in shape:
        key = ("NbChannels", "SizeY", "SizeX")[shape.index(0)]
        raise section.error(key, "must be at least 1")
    return shape


def _build_order(ini: Any) -> List[str]:
    """Cell sections sorted by level (1 + max parent level), file order within a level."""
    names = [name for name in ini.section_names() if name and "Input" in ini[name]]
    parents = {name: [_alias(p) for p in ini[name].get("Input").split(",")] for name in names}
    levels: Dict[str, int] = {}

    def level(name: str, trail: Tuple[str, ...]) -> int:
        if name in levels:
            return levels[name]
        if name in trail:
            cycle = " -> ".join(trail[trail.index(name):] + (name,))
            raise ini[name].error("Input", f"cells form a cycle through Input=: {cycle}")
        up = [level(p, trail + (name,)) for p in parents[name] if p in parents]
        levels[name] = 1 + max(up, default=0)
        return levels[name]

    for name in names:
        level(name, ())
    return sorted(names, key=lambda name: (levels[name], names.index(name)))


def _alias(name: str) -> str:
    return "env" if name in PROVIDERS else name


@dataclass
class _Imported:
    """The ONNX sections built so far (name -> their last cell) and the ONNX tensor names
    that are another cell's output (Identity, Flatten of a 1x1 map)."""

    last: Dict[str, str] = field(default_factory=dict)
    aliases: Dict[str, str] = field(default_factory=dict)

    def resolve(self, inputs: List[str]) -> List[str]:
        """N2D2 drops an ONNX section's name from ``Input=`` (it only orders the build:
        ``Input=onnx,<output>``); alone, it stands for the graph's last cell."""
        kept = [self.aliases.get(p, p) for p in inputs if p not in self.last]
        if not kept and inputs and all(p in self.last for p in inputs):
            return [self.last[p] for p in inputs]
        return kept


def _import_onnx(ini: Any, name: str, shapes, generator, seed: int, cell_names,
                 imported: _Imported) -> List[Tuple[nn.Module, CellInfo]]:
    section = ini[name]
    inputs = _inputs(section, name, shapes, cell_names, imported)
    model = section.get("Model", read_word, ini[""].get("DefaultModel", read_word, "Frame"))
    section.mark_read("DataType")
    graph = import_section(ini, section, inputs, shapes, generator, seed, model)
    imported.last[name] = graph.cells[-1].name
    imported.aliases.update(graph.aliases)
    return [(cell.module, CellInfo(cell.name, cell.type, cell.inputs, cell.input_shapes,
                                   cell.output_shape, cell.solvers)) for cell in graph.cells]


def _inputs(section: Any, name: str, shapes, cell_names, imported: _Imported) -> List[str]:
    inputs = imported.resolve([_alias(p) for p in section.get("Input").split(",")])
    for parent in inputs:
        if parent not in shapes:
            raise section.error("Input", f"input {parent!r} is not a cell; " + did_you_mean(
                parent, [n for n in cell_names if n != name] + ["sp"], "cell"))
    return inputs


def _build_cell(ini: Any, name: str, shapes, generator, seed: int, cell_names,
                imported: _Imported):
    section = ini[name]
    inputs = _inputs(section, name, shapes, cell_names, imported)
    cell_type = section.get("Type", read_word)
    if cell_type in NOT_YET:
        raise section.error("Type", f"cell type {cell_type!r} is not supported yet")
    if cell_type not in CELLS:
        raise section.error("Type", did_you_mean(cell_type, CELLS.names(), "cell type"))
    model = section.get("Model", read_word, ini[""].get("DefaultModel", read_word, "Frame"))
    section.mark_read("DataType")
    names = config_names(section, model)
    check_config_names(ini, section, model, names)
    view = ini.view(names, context=name) if names else None
    config = ConfigView(view, routed_prefixes(cell_type)) if view is not None else None
    ctx = BuildContext(name, section, config, inputs, [shapes[p] for p in inputs],
                       extras={"generator": generator})
    try:
        cell, shape = CELLS.get(cell_type)(ctx)
    except (OverflowError, MemoryError) as error:  # sizes Python or torch cannot hold
        raise section.error(None, f"cannot build this {cell_type} cell: {error}") from None
    specs = solver_specs(cell_type, section, view)
    quantizer = weight_quantizer(cell_type, section, view, seed)
    if quantizer is not None:
        cell.quantizer = quantizer
    check_leftovers(cell_type, section, config)
    _write_computed(section, ctx.input_shapes, shape)
    return cell, CellInfo(name, cell_type, inputs, ctx.input_shapes, tuple(shape), specs)


def _write_computed(section: Any, input_shapes, shape) -> None:
    channels = sum(c for c, _, _ in input_shapes)
    _, in_h, in_w = input_shapes[0]
    for key, value in (("_NbChannels", channels), ("_ChannelsWidth", in_w),
                       ("_ChannelsHeight", in_h), ("_NbOutputs", shape[0]),
                       ("_OutputsWidth", shape[2]), ("_OutputsHeight", shape[1])):
        section.set_computed(key, value)
