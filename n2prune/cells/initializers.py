"""Weight and bias initialisers, N2D2's "fillers" (spec §2.9): pure fill functions and INI-built
initialisers (not to be confused with the mask fillers of ``n2prune.prune.fillers``).

``WeightsFiller=HeFiller`` with ``WeightsFiller.Scaling=0.5`` becomes ``HeFiller(scaling=0.5)``;
calling it fills a tensor in place: ``filler(weight, generator, fan_in, fan_out)``.

Fans follow N2D2: fan_in = size / outputs, fan_out = size / input channels. For PyTorch
layouts ``fans(weight)`` gives them (``[O, C/G, kH, kW]`` -> ``(C/G·kH·kW, O·kH·kW)``,
``[O, N_in]`` -> ``(N_in, O)``, a bias ``[O]`` -> ``(O, 1)`` as N2D2's ``[1,1,O,1]`` bias).
N2D2 draws from its own MT19937; these draw from a ``torch.Generator`` (same distributions,
not the same numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Tuple

import torch

from n2prune.ini.params import REQUIRED, Key, check_prefixed, kwargs_from
from n2prune.registry import Registry, did_you_mean
from n2prune.ini.values import read_enum, read_float, read_word

# INI name (WeightsFiller= / BiasFiller=) -> Initializer subclass
WEIGHT_INITIALIZERS: Registry = Registry("weight filler")

VARIANCE_NORMS = ["FanIn", "Average", "FanOut"]
DISTRIBUTIONS = ["Uniform", "Normal"]
Generator = Optional[torch.Generator]


def fans(tensor: torch.Tensor) -> Tuple[int, int]:
    """(fan_in, fan_out) of a PyTorch-layout weight (outputs first) or a 1-D bias."""
    size = tensor.numel()
    if tensor.dim() == 0 or size == 0:
        raise ValueError(f"fans: tensor of shape {tuple(tensor.shape)} has no fan")
    if tensor.dim() == 1:
        return size, 1
    return size // tensor.shape[0], size // tensor.shape[1]


def _norm_size(fan_in: int, fan_out: int, variance_norm: str) -> float:
    if variance_norm not in VARIANCE_NORMS:
        raise ValueError(did_you_mean(variance_norm, VARIANCE_NORMS, "variance_norm"))
    if fan_in <= 0 or fan_out <= 0:
        raise ValueError(f"fans must be positive, got fan_in={fan_in}, fan_out={fan_out}")
    if variance_norm == "FanIn":
        return float(fan_in)
    if variance_norm == "FanOut":
        return float(fan_out)
    return (fan_in + fan_out) / 2.0


@torch.no_grad()
def normal_fill(tensor: torch.Tensor, generator: Generator, mean: float = 0.0,
                std_dev: float = 1.0) -> torch.Tensor:
    """Fill with N(mean, std_dev)."""
    if std_dev < 0:
        raise ValueError(f"normal_fill: std_dev must be >= 0, got {std_dev!r}")
    return tensor.normal_(mean, std_dev, generator=generator)


@torch.no_grad()
def uniform_fill(tensor: torch.Tensor, generator: Generator, min: float = 0.0,
                 max: float = 1.0) -> torch.Tensor:
    """Fill with U[min, max]."""
    if min > max:
        raise ValueError(f"uniform_fill: min={min!r} must not exceed max={max!r}")
    return tensor.uniform_(min, max, generator=generator)


@torch.no_grad()
def constant_fill(tensor: torch.Tensor, value: float) -> torch.Tensor:
    """Fill with one value."""
    return tensor.fill_(value)


@torch.no_grad()
def he_fill(tensor: torch.Tensor, generator: Generator, fan_in: int, fan_out: int,
            variance_norm: str = "FanIn", mean_norm: float = 0.0,
            scaling: float = 1.0) -> torch.Tensor:
    """Fill with scaling·N(mean_norm/n, sqrt(2/n)), n chosen by ``variance_norm``."""
    n = _norm_size(fan_in, fan_out, variance_norm)
    tensor.normal_(mean_norm / n, math.sqrt(2.0 / n), generator=generator)
    return tensor if scaling == 1.0 else tensor.mul_(scaling)


@torch.no_grad()
def xavier_fill(tensor: torch.Tensor, generator: Generator, fan_in: int, fan_out: int,
                variance_norm: str = "FanIn", distribution: str = "Uniform",
                scaling: float = 1.0) -> torch.Tensor:
    """Fill with scaling·U[-sqrt(3/n), sqrt(3/n)] or scaling·N(0, sqrt(1/n))."""
    n = _norm_size(fan_in, fan_out, variance_norm)
    if distribution == "Uniform":
        scale = math.sqrt(3.0 / n)
        tensor.uniform_(-scale, scale, generator=generator)
    elif distribution == "Normal":
        tensor.normal_(0.0, math.sqrt(1.0 / n), generator=generator)
    else:
        raise ValueError(did_you_mean(distribution, DISTRIBUTIONS, "distribution"))
    return tensor if scaling == 1.0 else tensor.mul_(scaling)


class Initializer:
    """A configured filler: ``filler(tensor, generator, fan_in, fan_out)`` fills in place.

    Fans default to ``fans(tensor)``; pass them when the layout is not PyTorch's
    outputs-first one (a transposed convolution) or for a grouped or masked weight.
    """

    name: ClassVar[str] = ""  # the registered name (set by the registry)
    KEYS: ClassVar[Tuple[Key, ...]] = ()

    def __call__(self, tensor: torch.Tensor, generator: Generator = None,
                 fan_in: Optional[int] = None, fan_out: Optional[int] = None) -> torch.Tensor:
        if fan_in is None or fan_out is None:
            auto_in, auto_out = fans(tensor)
            fan_in = auto_in if fan_in is None else fan_in
            fan_out = auto_out if fan_out is None else fan_out
        return self.fill(tensor, generator, fan_in, fan_out)

    def fill(self, tensor, generator, fan_in, fan_out):  # pragma: no cover - abstract
        raise NotImplementedError

    def ini_lines(self, prefix: str) -> list:
        """``Prefix=Name`` and ``Prefix.P=value`` lines reproducing this filler."""
        lines = [f"{prefix}={self.name}"]
        lines += [f"{prefix}.{key.ini}={getattr(self, key.arg)}" for key in self.KEYS]
        return lines


@WEIGHT_INITIALIZERS.register("NormalFiller")
@dataclass(frozen=True)
class NormalFiller(Initializer):
    """N(mean, std_dev)."""

    KEYS: ClassVar[Tuple[Key, ...]] = (Key("Mean", "mean", read_float, 0.0),
                                       Key("StdDev", "std_dev", read_float, 1.0))
    mean: float = 0.0
    std_dev: float = 1.0

    def fill(self, tensor, generator, fan_in, fan_out):
        return normal_fill(tensor, generator, self.mean, self.std_dev)


@WEIGHT_INITIALIZERS.register("UniformFiller")
@dataclass(frozen=True)
class UniformFiller(Initializer):
    """U[min, max]."""

    KEYS: ClassVar[Tuple[Key, ...]] = (Key("Min", "min", read_float, 0.0),
                                       Key("Max", "max", read_float, 1.0))
    min: float = 0.0
    max: float = 1.0

    def fill(self, tensor, generator, fan_in, fan_out):
        return uniform_fill(tensor, generator, self.min, self.max)


@WEIGHT_INITIALIZERS.register("ConstantFiller")
@dataclass(frozen=True)
class ConstantFiller(Initializer):
    """Every value = value (``Value`` is required in INI files)."""

    KEYS: ClassVar[Tuple[Key, ...]] = (Key("Value", "value", read_float, REQUIRED),)
    value: float = 0.0

    def fill(self, tensor, generator, fan_in, fan_out):
        return constant_fill(tensor, self.value)


@WEIGHT_INITIALIZERS.register("HeFiller")
@dataclass(frozen=True)
class HeFiller(Initializer):
    """scaling·N(mean_norm/n, sqrt(2/n)), n = fan_in, (fan_in+fan_out)/2 or fan_out."""

    KEYS: ClassVar[Tuple[Key, ...]] = (
        Key("VarianceNorm", "variance_norm", read_enum(VARIANCE_NORMS), "FanIn"),
        Key("MeanNorm", "mean_norm", read_float, 0.0),
        Key("Scaling", "scaling", read_float, 1.0))
    variance_norm: str = "FanIn"
    mean_norm: float = 0.0
    scaling: float = 1.0

    def fill(self, tensor, generator, fan_in, fan_out):
        return he_fill(tensor, generator, fan_in, fan_out, self.variance_norm,
                       self.mean_norm, self.scaling)


@WEIGHT_INITIALIZERS.register("XavierFiller")
@dataclass(frozen=True)
class XavierFiller(Initializer):
    """scaling·U[-sqrt(3/n), sqrt(3/n)] (or scaling·N(0, sqrt(1/n)) with Normal)."""

    KEYS: ClassVar[Tuple[Key, ...]] = (
        Key("VarianceNorm", "variance_norm", read_enum(VARIANCE_NORMS), "FanIn"),
        Key("Distribution", "distribution", read_enum(DISTRIBUTIONS), "Uniform"),
        Key("Scaling", "scaling", read_float, 1.0))
    variance_norm: str = "FanIn"
    distribution: str = "Uniform"
    scaling: float = 1.0

    def fill(self, tensor, generator, fan_in, fan_out):
        return xavier_fill(tensor, generator, fan_in, fan_out, self.variance_norm,
                           self.distribution, self.scaling)


# The cells' built-in filler for weights and biases when no WeightsFiller=/BiasFiller= is given.
DEFAULT_INITIALIZER = NormalFiller(0.0, 0.05)


def build_initializer(section: Any, prefix: str = "WeightsFiller",
                 default: Initializer = DEFAULT_INITIALIZER) -> Initializer:
    """The filler a cell section asks for with ``<prefix>=`` (``WeightsFiller``, ``BiasFiller``).

    ``<prefix>.<P>`` keys are read only when ``<prefix>=`` is present (N2D2 ignores them
    otherwise); then each must be a parameter of that filler.
    """
    if section is None or prefix not in section:
        return default
    name = section.get(prefix, read_word)
    if name not in WEIGHT_INITIALIZERS:
        raise section.error(prefix, did_you_mean(name, WEIGHT_INITIALIZERS.names(), "filler"))
    cls = WEIGHT_INITIALIZERS.get(name)
    dotted = prefix + "."
    check_prefixed(section, cls.KEYS, dotted, name)
    filler = cls(**kwargs_from(section, cls.KEYS, dotted))
    _check(section, prefix, filler)
    return filler


def _check(section: Any, prefix: str, filler: Initializer) -> None:
    """Value errors a filler would only raise when applied, reported at build time."""
    bad = None
    if isinstance(filler, NormalFiller) and filler.std_dev < 0:
        bad = ("StdDev", f"must be >= 0, got {filler.std_dev!r}")
    elif isinstance(filler, UniformFiller) and filler.min > filler.max:
        bad = ("Min", f"{filler.min!r} must not exceed Max={filler.max!r}")
    if bad is not None:
        raise section.error(f"{prefix}.{bad[0]}", bad[1])

