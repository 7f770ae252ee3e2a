"""N2D2's activation functions (spec §2.8) as modules, keyed by their INI spelling.

``ActivationFunction=Rectifier`` with ``ActivationFunction.LeakSlope=0.1`` in a cell section
becomes ``Rectifier(leak_slope=0.1)``. Each class declares its parameters once, in ``KEYS``;
``build_activation`` derives the INI reading (and its errors) from that table.

>>> build_activation(None) is None
True
>>> Rectifier(clipping=6.0)
Rectifier(leak_slope=0.0, clipping=6.0)
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.base import global_hooks
from n2prune.ini.params import Key, kwargs_from, unknown_key_message
from n2prune.registry import Registry, did_you_mean
from n2prune.ini.values import read_float, read_word

# INI name (ActivationFunction=) -> Activation subclass
ACTIVATIONS: Registry = Registry("activation function")

KEY = "ActivationFunction"
# Parameters of N2D2's old activation-quantization code: files using them no longer load.
_REMOVED = ("Quantization", "MovingAverage", "MA_Window", "EMA_Alpha", "Log2Rounding")


class Activation(nn.Module):
    """Base of the activation modules: an INI name and a parameter table."""

    name: ClassVar[str] = ""  # the registered name (set by the registry)
    KEYS: ClassVar[Tuple[Key, ...]] = ()
    # True for *WithLoss: N2D2 passes the target error through unchanged (the loss owns it).
    with_loss: ClassVar[bool] = False

    def extra_repr(self) -> str:
        return ", ".join(f"{key.arg}={getattr(self, key.arg)!r}" for key in self.KEYS)


def _non_negative(cls: str, name: str, value: float) -> float:
    value = float(value)
    if value < 0:
        raise ValueError(f"{cls}: {name} must be >= 0 (0 disables it), got {value!r}")
    return value


@ACTIVATIONS.register("Linear")
class Linear(Activation):
    """y = x, clamped to [-clipping, clipping] when clipping is not 0."""

    KEYS = (Key("Clipping", "clipping", read_float, 0.0, "clamp to [-C, C]; 0 = none"),)

    def __init__(self, clipping: float = 0.0):
        super().__init__()
        self.clipping = _non_negative("Linear", "clipping", clipping)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.clipping == 0 else x.clamp(-self.clipping, self.clipping)


@ACTIVATIONS.register("Rectifier")
class Rectifier(Activation):
    """y = x if x > 0 else leak_slope·x; positives capped at clipping when clipping > 0."""

    KEYS = (Key("LeakSlope", "leak_slope", read_float, 0.0, "slope for x <= 0"),
            Key("Clipping", "clipping", read_float, 0.0, "cap for x > 0; 0 = none"))

    def __init__(self, leak_slope: float = 0.0, clipping: float = 0.0):
        super().__init__()
        self.leak_slope = float(leak_slope)
        self.clipping = _non_negative("Rectifier", "clipping", clipping)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clipping == 0:  # the fused kernels: same values and gradients, 2x faster
            return torch.relu(x) if self.leak_slope == 0 else F.leaky_relu(x, self.leak_slope)
        return torch.where(x > 0, x.clamp(max=self.clipping), x * self.leak_slope)

    def forward_(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` overwriting ``x`` (no new tensor), when a fused in-place kernel exists."""
        if self.clipping == 0:
            return torch.relu_(x) if self.leak_slope == 0 else F.leaky_relu_(x, self.leak_slope)
        return self.forward(x)


@ACTIVATIONS.register("Tanh")
class Tanh(Activation):
    """y = tanh(alpha·x)."""

    KEYS = (Key("Alpha", "alpha", read_float, 1.0, "input scale"),)

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.alpha) if self.alpha != 1.0 else torch.tanh(x)


LECUN_ALPHA = 1.7159 * 2.0 / 3.0


@ACTIVATIONS.register("TanhLeCun")
class TanhLeCun(Tanh):
    """y = tanh(1.7159·2/3·x) ≈ tanh(1.1439·x): N2D2's reading, not 1.7159·tanh(2x/3)."""

    KEYS = (Key("Alpha", "alpha", read_float, LECUN_ALPHA, "input scale"),)

    def __init__(self, alpha: float = LECUN_ALPHA):
        super().__init__(alpha)


@ACTIVATIONS.register("Logistic")
class Logistic(Activation):
    """y = 1 / (1 + exp(-x))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


@ACTIVATIONS.register("LogisticWithLoss")
class LogisticWithLoss(Logistic):
    """Sigmoid whose backward N2D2 skips: train with BCE-with-logits on its input."""

    with_loss = True


@ACTIVATIONS.register("Saturation")
class Saturation(Activation):
    """y = clamp(x, -threshold, threshold)."""

    KEYS = (Key("Threshold", "threshold", read_float, 1.0, "saturation level"),)

    def __init__(self, threshold: float = 1.0):
        super().__init__()
        self.threshold = _non_negative("Saturation", "threshold", threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(-self.threshold, self.threshold)


@ACTIVATIONS.register("Softplus")
class Softplus(Activation):
    """y = log(1 + exp(x))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x)


@ACTIVATIONS.register("Swish")
class Swish(Activation):
    """y = x·sigmoid(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class ActivatedCell(nn.Module):
    """A cell ending with an optional activation: ``self.activation`` (None, an INI name or
    a module; a submodule, shown in repr) is applied by ``self.activate(y)``.

    ``activate`` calls the activation's ``forward`` directly, kept as a plain attribute
    when ``activation`` is set: activations are stateless functions, and this skips two
    ``nn.Module.__getattr__`` look-ups and the machinery of a module call on every pass.
    An activation module that carries hooks, or any while global module hooks are set, is
    called as a module instead, so the hooks run as torch users expect.
    Without autograd (inference), a tensor the cell made itself (``owned``) goes through the
    activation's in-place form ``forward_`` when it has one: no new tensor per pass.
    """

    def __setattr__(self, name: str, value) -> None:
        if name != "activation":
            super().__setattr__(name, value)
            return
        value = as_activation(value)
        if value is None:   # a plain attribute, not a None submodule (slow to read)
            self._modules.pop("activation", None)
        super().__setattr__(name, value)
        self.__dict__["_activation_module"] = value
        self.__dict__["_activation_forward"] = None if value is None else value.forward
        self.__dict__["_activation_inplace"] = getattr(value, "forward_", None)

    def activate(self, y: torch.Tensor, owned: bool = False) -> torch.Tensor:
        """``activation(y)``, or ``y`` without an activation. ``owned``: the cell made ``y``
        and nothing else holds it, so without autograd it may be overwritten in place."""
        forward = self._activation_forward
        if forward is None:
            return y
        module = self._activation_module
        if (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or
                module._backward_pre_hooks or global_hooks()):
            return module(y)  # what own_hooks(module) says, inline: this runs on every pass
        if owned and not torch.is_grad_enabled():
            inplace = self.__dict__.get("_activation_inplace")
            if inplace is not None:
                return inplace(y)
        return forward(y)


def as_activation(value: Union[None, str, nn.Module]) -> Optional[nn.Module]:
    """An activation given as None, an INI name (``"Rectifier"``) or a module."""
    if value is None or isinstance(value, nn.Module):
        return value
    if isinstance(value, str):
        return ACTIVATIONS.get(value)()
    raise TypeError(f"activation must be None, an activation name or a module, "
                    f"not {type(value).__name__}")


def build_activation(section: Any, default: Optional[str] = None,
                     key: str = KEY) -> Optional[nn.Module]:
    """The activation a cell section asks for with ``ActivationFunction=`` (or ``default``).

    ``ActivationFunction.<P>`` keys are read only when ``ActivationFunction=`` is present, as
    N2D2 does; then every one of them must be a parameter of that function. ``default`` is
    the cell's built-in activation (``"Tanh"`` for the Activation cell, else none).
    """
    if section is None or key not in section:
        return ACTIVATIONS.get(default)() if default is not None else None
    name = section.get(key, read_word)
    if name not in ACTIVATIONS:
        raise section.error(key, did_you_mean(name, ACTIVATIONS.names(), "activation function"))
    cls = ACTIVATIONS.get(name)
    prefix = key + "."
    for full in section.prefixed(prefix):
        suffix = full[len(prefix):]
        if not any(k.ini == suffix for k in cls.KEYS):
            raise section.error(full, _unknown_parameter(full, suffix, cls, prefix))
    kwargs = kwargs_from(section, cls.KEYS, prefix)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise section.error(key, str(exc)) from None


def _unknown_parameter(full: str, suffix: str, cls: type, prefix: str) -> str:
    if cls.KEYS:
        message = unknown_key_message(full, cls.KEYS, prefix).replace(
            "unknown parameter", f"unknown {cls.name} parameter", 1)
    else:
        message = f"unknown parameter {full!r}: {cls.name} has no parameters"
    if suffix.startswith(_REMOVED):
        message += ("; activation quantization parameters no longer exist in N2D2 "
                    "(use QAct=... instead)")
    return message
