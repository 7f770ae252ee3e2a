"""ONNX export of an n2prune network, compacted or not (masked weights are exported as the
products weight × mask the forward pass uses).

Needs the ``onnx`` extra (``pip install n2prune[onnx]``). The batch dimension is dynamic.

>>> export_onnx(net, "net.onnx")              # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Union

import torch

from n2prune.atomic import atomic_write
from n2prune.compact.baking import baked

OPSET = 17


def export_onnx(net, path: Union[str, Path], opset: int = OPSET) -> Path:
    """Write ``net`` (eval mode) as ONNX at ``path`` (atomically); input ``input``
    ``(N, *net.input_shape)``, output ``output``."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise RuntimeError("ONNX export needs the onnx package: pip install "
                           "'n2prune[onnx]'") from None
    plain = baked(net).eval()
    example = torch.zeros(1, *net.input_shape)

    def write(stream) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(plain, (example,), stream, input_names=["input"],
                              output_names=["output"], opset_version=opset,
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              dynamo=False)
    return atomic_write(path, write)


def run_onnx(path: Union[str, Path], x: torch.Tensor) -> torch.Tensor:
    """The output of the ONNX file ``path`` on ``x`` in onnxruntime (CPU)."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError("running ONNX needs onnxruntime: pip install 'n2prune[onnx]'") \
            from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (result,) = session.run(None, {"input": x.detach().cpu().numpy()})
    return torch.from_numpy(result)
