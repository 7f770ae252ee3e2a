"""ElemWise: N2D2's element-wise combination of several inputs (spec §2.7).

``Sum``: Σ (w_k·x_k + s_k); ``AbsSum``: Σ w_k·|x_k|; ``EuclideanSum``:
sqrt(Σ (w_k·x_k + s_k)²); ``Prod``: Π x_k; ``Max``: max_k x_k (the gradient goes to the
first maximum). Coefficients per ``CoeffMode``: ``PerLayer`` one w and s for all inputs,
``PerInput`` one per input, ``PerChannel`` one per input and channel (input-major: index
k·C + c). Missing coefficients default to 1.0 (weights) and 0.0 (shifts).
"""

from __future__ import annotations

from typing import List, Sequence

import torch

from n2prune.cells.activation_functions import ActivatedCell, build_activation
from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import read_nb_outputs
from n2prune.ini.values import read_enum, read_float, read_list

OPERATIONS = ["Sum", "AbsSum", "EuclideanSum", "Prod", "Max"]
COEFF_MODES = ["PerLayer", "PerInput", "PerChannel"]
_USES_WEIGHTS = ("Sum", "AbsSum", "EuclideanSum")
_USES_SHIFTS = ("Sum", "EuclideanSum")


def coefficient_count(coeff_mode: str, nb_inputs: int, channels: int) -> int:
    """How many weights (or shifts) a CoeffMode takes."""
    return {"PerLayer": 1, "PerInput": nb_inputs, "PerChannel": nb_inputs * channels}[
        coeff_mode]


class ElemWise(ActivatedCell):
    """Combine same-shape inputs element by element (fixed, non-learned coefficients)."""

    def __init__(self, nb_outputs: int, operation: str, weights: Sequence[float] = (),
                 shifts: Sequence[float] = (), coeff_mode: str = "PerInput", activation=None):
        super().__init__()
        if operation not in OPERATIONS:
            raise ValueError(f"ElemWise: operation={operation!r}, expected one of {OPERATIONS}")
        if coeff_mode not in COEFF_MODES:
            raise ValueError(f"ElemWise: coeff_mode={coeff_mode!r}, expected one of "
                             f"{COEFF_MODES}")
        self.nb_outputs, self.operation, self.coeff_mode = nb_outputs, operation, coeff_mode
        self.weights = [float(w) for w in weights]
        self.shifts = [float(s) for s in shifts]
        self.activation = activation

    def _coefficients(self, values: List[float], default: float, k: int, x: torch.Tensor,
                      nb_inputs: int):
        channels = x.shape[1]
        count = coefficient_count(self.coeff_mode, nb_inputs, channels)
        values = (values + [default] * count)[:count]
        if self.coeff_mode == "PerLayer":
            return values[0]
        if self.coeff_mode == "PerInput":
            return values[k]
        row = torch.tensor(values[k * channels:(k + 1) * channels], dtype=x.dtype,
                           device=x.device)
        return row.view(1, channels, 1, 1)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        shape = inputs[0].shape
        for x in inputs[1:]:
            if x.shape != shape:
                shapes = sorted({tuple(int(d) for d in x.shape) for x in inputs})
                raise ValueError(f"ElemWise: inputs must have the same shape, got {shapes}")
        if self.operation == "Sum" and self._default_coefficients():
            y = inputs[0]   # default coefficients: no x*1 + 0 passes
            for x in inputs[1:]:
                y = y + x
            return self.activate(y, owned=len(inputs) > 1)  # one input: y is that input
        return self.activate(self._combine(inputs))

    def _default_coefficients(self) -> bool:
        """Weights all 1 and shifts all 0 (read at each pass: the lists are public)."""
        weights, shifts = self.weights, self.shifts
        return (not weights or weights.count(1.0) == len(weights)) and \
            (not shifts or shifts.count(0.0) == len(shifts))

    def _combine(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        n = len(inputs)
        if self.operation == "Prod":
            y = inputs[0]
            for x in inputs[1:]:
                y = y * x
            return y
        if self.operation == "Max":
            return torch.stack(list(inputs)).max(dim=0).values
        terms = []
        for k, x in enumerate(inputs):
            w = self._coefficients(self.weights, 1.0, k, x, n)
            if self.operation == "AbsSum":
                terms.append(w * x.abs())
            else:
                terms.append(w * x + self._coefficients(self.shifts, 0.0, k, x, n))
        if self.operation == "EuclideanSum":
            squares = sum(t * t for t in terms)
            positive = squares > 0
            # sqrt'(0) is infinite; N2D2 gives a zero gradient there.
            return torch.where(positive, torch.sqrt(torch.where(positive, squares, 1.0)), 0.0)
        return sum(terms[1:], terms[0])

    def extra_repr(self) -> str:
        return (f"{self.nb_outputs}, operation={self.operation!r}, weights={self.weights}, "
                f"shifts={self.shifts}, coeff_mode={self.coeff_mode!r}")


@CELLS.register("ElemWise")
def build_elemwise(ctx: BuildContext):
    """[cell] Type=ElemWise: Operation (required), Weights, Shifts, CoeffMode, NbOutputs..."""
    section = ctx.section
    shapes = set(ctx.input_shapes)
    if len(shapes) != 1:
        described = ", ".join(f"{name} {c}x{h}x{w}" for name, (c, h, w)
                              in zip(ctx.input_names, ctx.input_shapes))
        raise section.error("Input", f"inputs must have the same shape ({described})")
    channels, height, width = ctx.input_shapes[0]
    nb_outputs = read_nb_outputs(ctx, channels, "the inputs' channels")
    operation = section.get("Operation", read_enum(OPERATIONS))
    coeff_mode = section.get("CoeffMode", read_enum(COEFF_MODES), "PerInput")
    count = coefficient_count(coeff_mode, len(ctx.input_shapes), channels)
    coefficients = {}
    for key, used in (("Weights", _USES_WEIGHTS), ("Shifts", _USES_SHIFTS)):
        values = section.get(key, read_list(read_float), [])
        if values and operation not in used:
            section.warn(key, f"ignored by Operation={operation}")
        if len(values) > count:
            section.warn(key, f"{len(values)} values given, {coeff_mode} uses {count}: the "
                              f"extra values are ignored")
        coefficients[key.lower()] = values
    module = ElemWise(nb_outputs, operation, coeff_mode=coeff_mode,
                      activation=build_activation(section), **coefficients)
    return module, (nb_outputs, height, width)
