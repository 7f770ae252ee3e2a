"""An ONNX file given where an INI file is expected (``n2d2 net.onnx``): wrapped as a
network of one ``Type=ONNX`` section fed by an ``[sp]`` of the graph's input size.

The wrapper has no ``[database]`` and no target, so it builds, describes and runs
(``n2prune-info net.onnx``, :func:`n2prune.load_network`) but cannot learn by itself: to
train, write the INI around it (see docs/n2d2.md).

>>> text = wrapper_text("net.onnx", (3, 32, 32))
>>> print(text.splitlines()[1])
[sp]
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Tuple

from n2prune import ini as ini_module
from n2prune.errors import ConfigError
from n2prune.onnxin.graph import OnnxReadError, read_graph

SECTION = "onnx"


def is_onnx_path(path: Any) -> bool:
    """Whether ``path`` names an ONNX file (by its extension, as N2D2 decides)."""
    return str(path).lower().endswith(".onnx")


def wrapper_text(path: str, shape: Tuple[int, int, int]) -> str:
    """The INI text of the wrapper for the ONNX file ``path`` of input (C, H, W) ``shape``."""
    channels, height, width = shape
    return (f"; the ONNX file {os.path.basename(path)} as an N2D2 network (n2prune)\n"
            f"[sp]\nSizeX={width}\nSizeY={height}\nNbChannels={channels}\nBatchSize=1\n\n"
            f"[{SECTION}]\nInput=sp\nType=ONNX\nFile={os.path.abspath(path)}\n")


def onnx_ini(path: str, environ: Optional[Mapping[str, str]] = None):
    """The INI file wrapping the ONNX file ``path`` (one data input of fixed size)."""
    try:
        graph = read_graph(path)
    except OnnxReadError as error:
        raise ConfigError(str(error), path=str(path)) from None
    if len(graph.inputs) != 1:
        raise ConfigError(f"the graph has {len(graph.inputs)} data inputs; an ONNX file used "
                          f"as a network needs exactly one (write an INI file with a "
                          f"Type=ONNX section for more)", path=str(path))
    name, dims = graph.inputs[0]
    if dims is None or None in dims or len(dims) not in (1, 3) or 0 in dims:
        raise ConfigError(f"the input {name!r} has no fixed (C, H, W) or (C,) size "
                          f"({dims}); write an INI file with an [sp] section and a Type=ONNX "
                          f"section with IgnoreInputSize=1", path=str(path))
    shape = tuple(dims) if len(dims) == 3 else (dims[0], 1, 1)
    return ini_module.loads(wrapper_text(str(path), shape), str(path), environ)


def refuse_training(path: Any) -> None:
    """A ConfigError when ``path`` is an ONNX file: it has no database nor target to learn
    or evaluate on (N2D2 would learn on an empty database)."""
    if is_onnx_path(path):
        raise ConfigError("an ONNX file has no database nor target to learn or evaluate on: "
                          "write an "
                          "INI file with [database], [sp], a Type=ONNX section (File=...) and "
                          "a [<cell>.Target] section (docs/n2d2.md, ONNX models); "
                          "n2prune-info and -export ONNX take the ONNX file itself", path=str(path))


def load_description(path: str, environ: Optional[Mapping[str, str]] = None):
    """The parsed network file ``path``: an INI file, or an ONNX file wrapped as one."""
    if is_onnx_path(path):
        return onnx_ini(path, environ)
    return ini_module.load(path, environ)
