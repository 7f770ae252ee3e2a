"""``sparsify(model, example)``: each pruned layer in the sparse form that runs fastest on the
example (or dense where none wins), chosen by timing; ``densify`` undoes it.

>>> import torch, n2prune
>>> model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(),
...                             torch.nn.Linear(256, 4))
>>> _ = n2prune.attach(model, include="0", prune_mode="Static", threshold=0.95,
...                    prune_filler="Magnitude")
>>> report = n2prune.sparsify(model, torch.randn(32, 256))
>>> [layer.name for layer in report.layers]
['0']
>>> report.max_difference < 1e-5
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from n2prune.prune.attach import BAKES, detach
from n2prune.sparse.layers import PackedLayer, SparseLayer, stand_in_for
from n2prune.sparse.matrix import FORMATS
from n2prune.sparse.storage import smallest_form
from n2prune.examples import run
from n2prune.sparse.timing import capture_inputs, time_candidates


@dataclass
class LayerChoice:
    """What ``sparsify`` chose for one layer, and why: how it computes (``choice``) and how
    its weight is stored (``storage``), two separate choices."""

    name: str
    kind: str                  #: the stand-in kind (``"Linear"``, ``"Conv2d"``, ...)
    shape: List[int]           #: the 2-D weight ``[out, in·kh·kw]``
    sparsity: float            #: share of zero weights
    choice: str                #: ``"CSR"``, ``"BSR 8x8"`` or ``"dense"``
    speedup: float             #: of the choice over dense, on the example (1.0: dense)
    dense_seconds: float       #: the dense layer's median time on the example
    best: str = ""             #: the fastest sparse form tried (even when not chosen)
    best_speedup: float = 0.0  #: its speed-up
    reason: str = ""           #: why the layer is computed dense ("" when sparse)
    storage: str = "dense"     #: how the weight is stored: the sparse form, ``"bitmask"``, ...
    dense_bytes: int = 0       #: the dense weight's bytes
    stored_bytes: int = 0      #: the stored weight's bytes (``state_dict``)


@dataclass
class SparsifyReport:
    """Per layer the choice and its measured speed-up; ``print(report)`` shows a table."""

    layers: List[LayerChoice] = field(default_factory=list)
    threads: int = 1
    max_difference: float = 0.0   #: max |sparse - masked| / max |masked| over the outputs

    @property
    def sparse(self) -> List[str]:
        """The layers now computed in a sparse form."""
        return [layer.name for layer in self.layers if layer.choice != "dense"]

    @property
    def packed(self) -> List[str]:
        """The layers computed dense but stored packed."""
        return [layer.name for layer in self.layers
                if layer.choice == "dense" and layer.storage != "dense"]

    def stored_ratio(self) -> float:
        """Bytes of the listed layers' weights as stored, over their dense bytes."""
        dense = sum(layer.dense_bytes for layer in self.layers)
        return sum(layer.stored_bytes for layer in self.layers) / dense if dense else 1.0

    def layer_seconds(self) -> tuple:
        """Time of the timed layers on the example, dense and as chosen (seconds)."""
        timed = [layer for layer in self.layers if layer.dense_seconds > 0]
        dense = sum(layer.dense_seconds for layer in timed)
        return dense, sum(layer.dense_seconds / layer.speedup for layer in timed)

    def as_dict(self) -> Dict[str, Any]:
        """Plain data for JSON."""
        return {"threads": self.threads, "max_difference": self.max_difference,
                "layers": [asdict(layer) for layer in self.layers]}

    def __str__(self) -> str:
        width = max([len("layer")] + [len(layer.name) for layer in self.layers])
        lines = [f"{'layer':<{width}}  {'kind':<7} {'weight':>11} {'sparsity':>8}  "
                 f"{'compute':<9} {'speed-up':>8} {'dense us':>9}  {'storage':<9} "
                 f"{'stored':>6}  note"]
        for layer in self.layers:
            note = layer.reason or ""
            if layer.choice == "dense" and layer.best:
                note = f"{note}; " if note else ""
                note += f"best {layer.best} {layer.best_speedup:.2f}x"
            lines.append(f"{layer.name:<{width}}  {layer.kind:<7} "
                         f"{'x'.join(map(str, layer.shape)):>11} "
                         f"{100 * layer.sparsity:7.1f}%  {layer.choice:<9} "
                         f"{layer.speedup:7.2f}x {1e6 * layer.dense_seconds:9.1f}  "
                         f"{layer.storage:<9} "
                         f"{layer.stored_bytes / max(layer.dense_bytes, 1):6.1%}  {note}")
        dense, chosen = self.layer_seconds()
        ratio = dense / chosen if chosen > 0 else 1.0
        lines.append(f"{len(self.sparse)} of {len(self.layers)} layers sparse; their time "
                     f"{1e3 * dense:.3f} ms -> {1e3 * chosen:.3f} ms ({ratio:.2f}x) at "
                     f"{self.threads} thread(s); max output difference "
                     f"{self.max_difference:.2e} (relative)")
        lines.append(f"{len(self.packed)} computed dense but stored packed; the weights "
                     f"listed take {self.stored_ratio():.1%} of their dense size")
        return "\n".join(lines)


def _tensors(value: Any) -> List[torch.Tensor]:
    """The tensors of a model output (a tensor, tuple, list, dict or ModelOutput)."""
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []


def relative_difference(a: Any, b: Any) -> float:
    """max |a - b| / max |b| over all output tensors (0 when b is all zeros and a == b)."""
    pairs = list(zip(_tensors(a), _tensors(b)))
    if not pairs:
        return 0.0
    diff = max(float((x.double() - y.double()).abs().max()) for x, y in pairs if y.numel())
    scale = max(float(y.double().abs().max()) for _, y in pairs if y.numel())
    return diff / scale if scale > 0 else diff


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    parent._modules[child] = module


def _choose(name: str, layer: nn.Module, inputs: Optional[tuple], formats: Sequence[str],
            min_sparsity: float, min_speedup: float, rounds: int) -> tuple:
    """(LayerChoice, the sparse stand-in to use or None)."""
    kind = stand_in_for(layer)
    weight = kind.weight_matrix(layer)
    sparsity = float((weight == 0).sum()) / weight.numel()
    size = weight.numel() * weight.element_size()
    choice = LayerChoice(name, kind.__name__.replace("Sparse", ""), list(weight.shape),
                         sparsity, "dense", 1.0, 0.0, dense_bytes=size, stored_bytes=size)
    refusal = kind.refusal(layer)
    if refusal is not None:
        choice.reason = f"no sparse path: {refusal}"
    elif sparsity < min_sparsity:
        choice.reason = f"sparsity below min_sparsity={min_sparsity:g}"
    elif inputs is None:
        choice.reason = "not run by the example"
    if choice.reason:
        return choice, None
    stand_ins = [kind(layer, form) for fmt in formats for form in FORMATS.get(fmt)(weight)]
    medians, speedups = time_candidates([layer] + stand_ins, inputs, rounds)
    choice.dense_seconds = medians[0]
    if not stand_ins:
        choice.reason = "no sparse form proposed"
        return choice, None
    best = max(range(1, len(speedups)), key=speedups.__getitem__)
    choice.best, choice.best_speedup = stand_ins[best - 1].weight.format, speedups[best]
    if speedups[best] < min_speedup:
        choice.reason = f"slower than min_speedup={min_speedup:g}"
        return choice, None
    choice.choice, choice.speedup = choice.best, choice.best_speedup
    choice.storage, choice.stored_bytes = choice.best, stand_ins[best - 1].weight.nbytes
    return choice, stand_ins[best - 1]


def _packed(choice: LayerChoice, layer: nn.Module, min_sparsity: float) -> Optional[nn.Module]:
    """A PackedLayer for a pruned layer computed dense, when a packed form is smaller."""
    if choice.sparsity < min_sparsity or stand_in_for(layer).unreplaceable(layer) is not None:
        return None
    form, size = smallest_form(layer.weight.detach())
    if form is None:
        return None
    choice.storage, choice.stored_bytes = form, size
    return PackedLayer(layer, form)


@torch.no_grad()
def sparsify(model: nn.Module, example: Any, formats: Optional[Sequence[str]] = None,
             min_sparsity: float = 0.5, min_speedup: float = 1.05, rounds: int = 9,
             tolerance: float = 1e-5, compact: bool = True) -> SparsifyReport:
    """Replace, in place, each Linear / Conv2d / Fc / Conv of ``model`` whose (masked) weight
    is at least ``min_sparsity`` zero by the sparse stand-in that runs fastest on its real
    input during ``model(example)``, when that is at least ``min_speedup`` times dense.

    PruneCells are detached first (their masks baked in, as ``detach(model)``), and the model
    is put in eval mode: the result is for inference at the current thread count
    (``torch.get_num_threads()``), which the timings depend on. ``example`` is what the
    model is called with (a tuple: positional arguments; a dict: keyword arguments).
    ``formats``: names from ``FORMATS`` (default all). Each layer is timed over ``rounds``
    alternating rounds (dense, then each candidate; median of per-round ratios). The outputs
    on ``example`` are compared with the masked model's: above ``tolerance`` (relative to
    the largest output) a warning says so. ``densify(model)`` gives the dense layers back.

    Storage is chosen apart from compute: with ``compact``, a layer computed dense whose
    weight is at least ``min_sparsity`` zero becomes a :class:`PackedLayer` when a packed form
    (``STORAGES``: a bitmask and the non-zero values, or CSR) is smaller than the dense weight,
    so the saved model is small whatever runs fastest.
    """
    if stand_in_for(model) is not None:
        raise ValueError(f"sparsify: the model is itself a {type(model).__name__}; pass a "
                         f"container (nn.Sequential(layer)) so the layer can be replaced")
    if not 0.0 <= min_sparsity <= 1.0 or rounds < 1:
        raise ValueError(f"sparsify: min_sparsity={min_sparsity!r} must be in [0, 1] and "
                         f"rounds={rounds!r} at least 1")
    formats = list(FORMATS.names() if formats is None else formats)
    for fmt in formats:
        FORMATS.get(fmt)   # an unknown name fails here, before anything changes
    model.eval()
    layers = {name: layer for name, layer in model.named_modules()   # not a stand-in's own
              if stand_in_for(layer) is not None and torch.is_tensor(getattr(layer, "weight",
                                                                             None))}
    inputs, reference = capture_inputs(model, layers, example)
    detach(model)
    report = SparsifyReport(threads=torch.get_num_threads())
    for name, layer in layers.items():
        choice, stand_in = _choose(name, layer, inputs.get(name), formats, min_sparsity,
                                   min_speedup, rounds)
        report.layers.append(choice)
        if stand_in is None and compact:
            stand_in = _packed(choice, layer, min_sparsity)
        if stand_in is not None:
            _replace(model, name, stand_in)
    report.max_difference = relative_difference(run(model, example), reference)
    if not math.isfinite(report.max_difference) or report.max_difference > tolerance:
        warnings.warn(f"sparsify: outputs differ from the masked model's by "
                      f"{report.max_difference:.2e} (relative), above tolerance={tolerance:g}",
                      stacklevel=2)
    return report


def densify(model: nn.Module) -> List[str]:
    """Put every stand-in of ``model`` (sparse or packed) back as its dense layer (for ONNX
    export or training); returns the names of the layers changed."""
    names = [name for name, module in model.named_modules() if isinstance(module, SparseLayer)]
    for name in names:
        _replace(model, name, model.get_submodule(name).to_dense())
    return names


@BAKES.register("sparse")
def _bake_sparse(model: nn.Module, example: Any = None, **options: Any) -> SparsifyReport:
    """``detach(model, bake="sparse", example=x, ...)``: ``sparsify(model, x, ...)``."""
    if example is None:
        raise ValueError("detach(model, bake='sparse') needs example=<an input of the model>: "
                         "each layer's sparse form is chosen by timing on it")
    return sparsify(model, example, **options)
