"""A ``Type=ONNX`` section (N2D2's ONNX import, spec §2.7): the graph of ``File=`` becomes
cells named by their node's first output, configured by N2D2's sections.

Keys of the section: ``File`` (relative paths: the working directory, as N2D2, then the INI
file's folder), ``ONNX_init`` (1: weights from the file; 0: the fillers of the cell's
parameter section), ``Ignore`` (node outputs left out, with every node that reads them),
``IgnoreInputSize``. An imported Conv, Fc or BatchNorm cell is configured by ``[<output>]``,
else ``[<onnx>:<output>]``, else ``[<onnx>:<Type>_def]`` (Conv_def, Fc_def, BatchNorm_def):
solvers, ``ConfigSection``, fillers and ``QWeight=Prune``, read as in a cell section.

The operators themselves live in :mod:`n2prune.onnxin` (its ``OPS`` registry).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from n2prune.cells.conv import CONV_PARAMS
from n2prune.cells.fc import FC_PARAMS
from n2prune.errors import ConfigError
from n2prune.ini.params import kwargs_from
from n2prune.ini.values import read_bool, read_list, read_text
from n2prune.network.keys import COMMON_KEYS, check_config_names, check_leftovers
from n2prune.network.routing import (ConfigView, SolverSpec, config_names, routed_prefixes,
                                     solver_specs, weight_quantizer)
from n2prune.onnxin import (Built, NodeContext, OnnxOpError, OnnxReadError, Value,
                            build_node, read_graph)

Shape = Tuple[int, int, int]
SECTION_KEYS = ("File", "ONNX_init", "Ignore", "IgnoreInputSize", "Transpose", "CNTK")
CONFIGURED = ("Conv", "Fc", "BatchNorm")      # the types N2D2 reads default sections for
CELL_PARAMS = {"Conv": CONV_PARAMS, "Fc": FC_PARAMS}  # read and left as the graph says


@dataclass
class ImportedCell:
    """One cell of the graph, ready for the network (``CellInfo`` fields)."""

    name: str
    module: nn.Module
    type: str
    inputs: List[str]
    input_shapes: List[Shape]
    output_shape: Shape
    solvers: Dict[str, SolverSpec] = field(default_factory=dict)


@dataclass
class ImportedGraph:
    """The cells of one ONNX section, and the ONNX tensor names that are another cell's
    output under a second name (Identity, Flatten of a 1x1 map)."""

    cells: List[ImportedCell]
    aliases: Dict[str, str]


def onnx_file(section: Any) -> str:
    """The ``File=`` path: as written when it exists from the working directory (N2D2),
    else next to the INI file; a located error naming both places otherwise."""
    written = section.get("File", read_text).strip()
    if not written:
        raise section.error("File", "is empty: name the ONNX file to import")
    candidates = [Path(written)]
    if not os.path.isabs(written) and section.path:
        candidates.append(Path(section.path).parent / written)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    tried = ", ".join(repr(str(c)) for c in dict.fromkeys(candidates))
    raise section.error("File", f"ONNX file not found (looked for {tried})")


def import_section(ini: Any, section: Any, inputs: List[str], shapes: Dict[str, Shape],
                   generator: torch.Generator, seed: int, model: str) -> ImportedGraph:
    """Build the cells of the ONNX section ``section`` whose inputs are the cells (or
    ``env``) ``inputs``; ``shapes`` holds the cells built so far (names taken)."""
    for key in ("Transpose", "CNTK"):
        if section.get(key, read_bool, False):
            raise section.error(key, "is not supported (NCHW graphs only)")
    try:
        graph = read_graph(onnx_file(section))
    except OnnxReadError as error:
        raise section.error("File", str(error)) from None
    init = section.get("ONNX_init", read_bool, True)
    ignore = set(section.get("Ignore", read_list(read_text), []))
    values = _graph_inputs(section, graph, inputs, shapes)
    state = _State(ini, section, model, seed)
    taken = set(shapes) | {name for name in ini.section_names() if name and
                           "Input" in ini[name]}
    skipped: List[str] = []
    for node in graph.nodes:
        if node.name in ignore or any(name in state.ignored for name in node.inputs):
            state.ignored.update(node.outputs)
            if node.name not in ignore:
                skipped.append(node.name)
            continue
        ctx = NodeContext(node, graph, values, init, generator,
                          lambda cell_type, node=node: state.settings(node.name, cell_type))
        try:
            result = build_node(ctx)
        except ConfigError:
            raise       # a key of a parameter section, located there
        except (OnnxOpError, ValueError, TypeError, IndexError, KeyError, RuntimeError) as error:
            # a node unlike what its builder expects (a malformed attribute, a shape torch
            # refuses): located at the node rather than a traceback
            raise section.error("File", f"{node.describe()}: {error}") from None
        if isinstance(result, torch.Tensor):
            graph.constants[node.name] = result
            continue
        if isinstance(result, Value):
            values[node.name] = result
            state.aliases[node.name] = result.cell
            continue
        for built in result:
            if built.name in taken:
                raise section.error("File", f"{node.describe()}: its cell name "
                                            f"{built.name!r} is already a cell of the network")
            taken.add(built.name)
            state.add(built, [shapes.get(p) or state.shapes[p] for p in built.inputs])
            state.shapes[built.name] = built.shape
        last = result[-1]
        values[node.name] = Value(last.name, last.shape, last.rank)
    _check_section_keys(section)
    if skipped:
        section.warn("Ignore", f"{len(skipped)} node(s) read an ignored output and are left "
                               f"out too: {', '.join(skipped[:5])}"
                               f"{' ...' if len(skipped) > 5 else ''}")
    if not state.cells:
        raise section.error("File", "the ONNX graph gives no cell (every node ignored?)")
    return ImportedGraph(state.cells, state.aliases)


def _graph_inputs(section: Any, graph, inputs: List[str], shapes: Dict[str, Shape]
                  ) -> Dict[str, Value]:
    """The graph's data inputs mapped, in order, to the section's ``Input=`` cells."""
    if len(graph.inputs) != len(inputs):
        raise section.error("Input", f"the ONNX graph has {len(graph.inputs)} data input(s) "
                                     f"({', '.join(n for n, _ in graph.inputs)}), Input= names "
                                     f"{len(inputs)}")
    ignore_size = section.get("IgnoreInputSize", read_bool, False)
    values = {}
    for (name, dims), parent in zip(graph.inputs, inputs):
        shape = shapes[parent]
        rank = 2 if dims is not None and len(dims) == 1 else 4
        wanted = tuple(dims) + (1, 1) if rank == 2 else dims
        if not ignore_size and wanted is not None and None not in wanted \
                and tuple(wanted) != tuple(shape):
            raise section.error("Input", f"the ONNX input {name!r} is "
                                         f"{' x '.join(map(str, wanted))} (C x H x W), "
                                         f"{'[sp]' if parent == 'env' else repr(parent)} "
                                         f"gives {' x '.join(map(str, shape))} "
                                         f"(IgnoreInputSize=1 uses the given size)")
        values[name] = Value(parent, tuple(shape), rank)
    return values


def _check_section_keys(section: Any) -> None:
    for key in section.unread_keys():
        if key not in COMMON_KEYS:
            raise section.unknown_key(key, "key", " for an ONNX section (keys: "
                                                  f"{', '.join(SECTION_KEYS)})")


class _State:
    """What one import accumulates: cells, aliases, ignored outputs, and the parameter
    sections of the imported cells."""

    def __init__(self, ini: Any, section: Any, model: str, seed: int):
        self.ini, self.onnx, self.model, self.seed = ini, section.name, model, seed
        self.cells: List[ImportedCell] = []
        self.aliases: Dict[str, str] = {}
        self.ignored: set = set()
        self.shapes: Dict[str, Shape] = {}
        self._views: Dict[Tuple[str, str], Tuple[Any, Any, Any]] = {}

    def settings(self, name: str, cell_type: str) -> Tuple[Any, Any]:
        """(parameter section, ConfigSection view) of the cell ``name`` of ``cell_type``."""
        found, config, _ = self._settings(name, cell_type)
        return found, config

    def _settings(self, name: str, cell_type: str) -> Tuple[Any, Any, Any]:
        """Also the plain ConfigSection view, which solvers and the quantizer read (a
        ConfigView hides their keys)."""
        if (name, cell_type) in self._views:
            return self._views[(name, cell_type)]
        found = None
        if cell_type in CONFIGURED:
            for candidate in (name, f"{self.onnx}:{name}", f"{self.onnx}:{cell_type}_def"):
                if candidate in self.ini and "Input" not in self.ini[candidate]:
                    found = self.ini[candidate]
                    break
        config = view = None
        if found is not None:
            names = config_names(found, self.model)
            check_config_names(self.ini, found, self.model, names)
            if names:
                view = self.ini.view(names, context=found.name)
                config = ConfigView(view, routed_prefixes(cell_type))
        self._views[(name, cell_type)] = (found, config, view)
        return found, config, view

    def add(self, built: Built, input_shapes: List[Optional[Shape]]) -> None:
        section, config, view = self._settings(built.name, built.cell_type) \
            if built.cell_type in CONFIGURED else (None, None, None)
        solvers: Dict[str, SolverSpec] = {}
        if section is not None:
            if config is not None and built.cell_type in CELL_PARAMS:
                kwargs_from(config, CELL_PARAMS[built.cell_type])  # read, as an INI cell's
            solvers = solver_specs(built.cell_type, section, view)
            quantizer = weight_quantizer(built.cell_type, section, view,
                                         self.seed + len(self.cells))
            if quantizer is not None:
                built.module.quantizer = quantizer
            section.mark_read("WeightsFiller", "BiasFiller", *section.prefixed("WeightsFiller."),
                              *section.prefixed("BiasFiller."))
            check_leftovers(built.cell_type, section, config)
        self.cells.append(ImportedCell(built.name, built.module, built.cell_type,
                                       list(built.inputs), list(input_shapes), built.shape,
                                       solvers))
