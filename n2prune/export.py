"""ONNX export of any PyTorch model n2prune pruned, attached or already baked.

:func:`export_onnx` exports a baked copy (each PruneCell's mask multiplied into its weight, as
``n2prune.detach(model, bake=True)`` would; the user's model keeps its cells), so the zeros are
in the ONNX initializers. The file is checked in onnxruntime before it is written, atomically:
a failed export or check leaves no file, and an earlier file at ``path`` stays as it was.

The exporter is torch's TorchScript one (``dynamo=False``): it needs only the ``onnx``
package, where the default ``torch.export`` exporter also needs ``onnxscript``. The ONNX
graph is built in memory (protobuf's 2 GB limit applies). INI networks have
:func:`n2prune.compact.onnx_export.export_onnx`, whose input and output names are fixed.

>>> import torch, n2prune
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> cells = n2prune.attach(model, prune_mode="Static", threshold=0.5, prune_filler="Magnitude")
>>> result = n2prune.export_onnx(model, torch.randn(4, 8), "model.onnx")  # doctest: +SKIP
>>> result.max_difference < 1e-5                                          # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from n2prune.atomic import PathLike, atomic_write
from n2prune.compact.onnx_export import OPSET, baked
from n2prune.examples import as_call

__all__ = ["OnnxExport", "export_onnx"]

Example = Union[torch.Tensor, Tuple[Any, ...], List[Any], Mapping[str, Any]]
_SLOT = object()  # where an ONNX input goes in the model's arguments


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: the file, the ONNX input and output names, and the
    largest absolute difference between onnxruntime's outputs and the model's on the example
    (``None`` when not checked)."""
    path: Path
    inputs: List[str]
    outputs: List[str]
    max_difference: Optional[float]


def export_onnx(model: nn.Module, example: Example, path: PathLike, *,
                input_names: Optional[Sequence[str]] = None,
                dynamic_axes: Optional[Mapping[str, Mapping[int, str]]] = None,
                opset: int = OPSET, verify: bool = True, rtol: float = 1e-3,
                atol: float = 1e-4) -> OnnxExport:
    """Write ``model`` (in eval mode, PruneCells baked into a copy) as ONNX at ``path``.

    ``example``: the model's input, a tensor (``model(x)``), a tuple of positional inputs, or
    a dict of keyword inputs (``model(**example)``, Hugging Face's ``input_ids``,
    ``attention_mask``). Tensors become ONNX inputs, named after the dict's keys (else
    ``input`` or ``input_0``, ``input_1``...; ``input_names`` overrides); other values are
    fixed in the graph. Outputs are named after a returned dict's keys (``last_hidden_state``,
    ...; ``<key>_output`` where an input has the name) or ``output`` / ``output_0``...
    ``dynamic_axes`` is torch's (default: dimension 0 of
    every input and output is ``batch``).

    ``verify``: run the file in onnxruntime on ``example`` and require every output within
    ``atol + rtol * |expected|`` of the model's; without onnxruntime it warns that the file is
    unchecked. ``verify=False`` skips the check.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx: model must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    _require("onnx", "ONNX export")
    args, kwargs, tensors, names = _split_example(example, input_names)
    plain = baked(model).eval()
    wrapper = _Flat(plain, args, kwargs)
    with torch.no_grad():
        call_args, call_kwargs = _fill(args, kwargs, tensors)
        output_names, expected = _named_outputs(plain(*call_args, **call_kwargs), names)
    axes = dict(dynamic_axes) if dynamic_axes is not None else {
        name: {0: "batch"} for name, value in zip(names + output_names, tensors + expected)
        if value.dim() > 0}
    data = _onnx_bytes(wrapper, tuple(tensors), names, output_names, axes, opset)
    difference = None
    if verify:
        difference = _check(data, dict(zip(names, tensors)), dict(zip(output_names, expected)),
                            rtol, atol, path)
    written = atomic_write(path, lambda out: out.write(data))
    return OnnxExport(written, names, output_names, difference)


class _Flat(nn.Module):
    """``model`` called with the example's layout, the ONNX inputs in place of its tensors,
    returning its output's tensors as a flat tuple."""

    def __init__(self, model: nn.Module, args: List[Any], kwargs: Dict[str, Any]):
        super().__init__()
        self.model = model
        self._layout = (args, kwargs)

    def forward(self, *tensors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        args, kwargs = _fill(*self._layout, list(tensors))
        return tuple(value for _, value in _flatten(self.model(*args, **kwargs), ""))


def _split_example(example: Example, input_names: Optional[Sequence[str]]):
    """(positional layout, keyword layout, the tensors, their ONNX names)."""
    try:
        args, keywords = as_call(example)
    except TypeError:
        raise TypeError(f"export_onnx: example must be a tensor, a tuple of positional inputs "
                        f"or a dict of keyword inputs, got {type(example).__name__}") from None
    positional = list(args)
    bad = [key for key in keywords if not isinstance(key, str)]
    if bad:
        raise TypeError(f"export_onnx: example's keys must be argument names (str), got "
                        f"{bad[0]!r}")
    tensors = [v for v in positional if isinstance(v, torch.Tensor)] + \
        [v for v in keywords.values() if isinstance(v, torch.Tensor)]
    if not tensors:
        raise ValueError("export_onnx: example holds no tensor; give the model's input "
                         "tensor(s), e.g. torch.randn(1, 3, 32, 32)")
    if input_names is not None:
        names = list(input_names)
        if len(names) != len(tensors) or len(set(names)) != len(names):
            raise ValueError(f"export_onnx: input_names={names!r} must name the example's "
                             f"{len(tensors)} tensor(s) once each")
    else:
        count = sum(isinstance(v, torch.Tensor) for v in positional)
        names = (["input"] if count == 1 else [f"input_{i}" for i in range(count)]) + \
            [key for key, v in keywords.items() if isinstance(v, torch.Tensor)]
    args = [_SLOT if isinstance(v, torch.Tensor) else v for v in positional]
    kwargs = {k: _SLOT if isinstance(v, torch.Tensor) else v for k, v in keywords.items()}
    return args, kwargs, [t.detach() for t in tensors], names


def _fill(args: List[Any], kwargs: Dict[str, Any], tensors: Sequence[torch.Tensor]):
    """The call's (args, kwargs) with ``tensors`` in the slots, in order."""
    feed = iter(tensors)
    return ([next(feed) if v is _SLOT else v for v in args],
            {k: next(feed) if v is _SLOT else v for k, v in kwargs.items()})


def _flatten(value: Any, name: str) -> List[Tuple[str, torch.Tensor]]:
    """An output's tensors with their names (dict keys, positions), ``None`` left out."""
    if isinstance(value, torch.Tensor):
        return [(name or "output", value)]
    if isinstance(value, Mapping):
        items = [(str(key), item) for key, item in value.items()]
    elif isinstance(value, (tuple, list)):
        items = [(f"output_{i}" if not name else str(i), item) for i, item in enumerate(value)]
    elif value is None:
        return []
    else:
        raise TypeError(f"export_onnx: the model's output {name or 'output'} is a "
                        f"{type(value).__name__}; ONNX outputs tensors (or tuples and dicts of "
                        f"them)")
    return [pair for key, item in items
            for pair in _flatten(item, f"{name}.{key}" if name else key)]


def _named_outputs(output: Any, inputs: List[str]) -> Tuple[List[str], List[torch.Tensor]]:
    """The output names and tensors; a name an input has gets ``_output`` (ONNX names every
    value once)."""
    pairs = _flatten(output, "")
    if not pairs:
        raise ValueError("export_onnx: the model returned no tensor on the example")
    names = [f"{name}_output" if name in inputs else name for name, _ in pairs]
    return names, [value.detach() for _, value in pairs]


def _onnx_bytes(wrapper: nn.Module, tensors: Tuple[torch.Tensor, ...], names: List[str],
                output_names: List[str], axes: Dict[str, Any], opset: int) -> bytes:
    stream = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and trace notes
        torch.onnx.export(wrapper, tensors, stream, input_names=names,
                          output_names=output_names, opset_version=opset, dynamic_axes=axes,
                          dynamo=False)
    return stream.getvalue()


def _check(data: bytes, feeds: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor],
           rtol: float, atol: float, path: PathLike) -> Optional[float]:
    """The largest |onnxruntime - torch| over the outputs; an error naming the first output
    out of tolerance (nothing is written then)."""
    try:
        onnxruntime = importlib.import_module("onnxruntime")
    except ImportError:
        warnings.warn(f"export_onnx: {path} is not checked: onnxruntime is not installed "
                      f"(pip install 'n2prune[onnx]'; verify=False silences this)", stacklevel=3)
        return None
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    wanted = {node.name for node in session.get_inputs()}  # unused inputs are dropped
    renamed = sorted(wanted - set(feeds))
    if renamed:
        raise RuntimeError(f"export_onnx: the ONNX graph has inputs {renamed}, not the names "
                           f"given ({sorted(feeds)}); pass other input_names")
    results = _run(session, {k: v.cpu().numpy() for k, v in feeds.items() if k in wanted})
    worst = 0.0
    for name, want in expected.items():
        got = np.asarray(results[name], dtype=np.float64)
        ref = want.cpu().double().numpy()
        if got.shape != ref.shape:
            raise RuntimeError(f"export_onnx: ONNX output {name!r} has shape {got.shape}, the "
                               f"model's {ref.shape}; nothing written to {path}")
        gap = np.abs(got - ref)
        difference = float(gap.max()) if gap.size else 0.0
        if not np.all(gap <= atol + rtol * np.abs(ref)):
            raise RuntimeError(f"export_onnx: ONNX output {name!r} differs from the model's by "
                               f"up to {difference:.3g} (allowed atol={atol:g} + "
                               f"rtol={rtol:g}·|output|); nothing written to {path}")
        worst = max(worst, difference)
    return worst


def _run(session: Any, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    names = [node.name for node in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def _require(module: str, what: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        raise RuntimeError(f"{what} needs the {module} package: pip install "
                           f"'n2prune[onnx]'") from None
