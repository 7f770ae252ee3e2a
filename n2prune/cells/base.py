"""What every cell type shares: the CELLS registry and the build context handed to builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import torch
from torch import nn

from n2prune.registry import Registry

Shape = Tuple[int, int, int]  # (channels, height, width) of one input, batch excluded

# INI `Type=` -> builder(ctx: BuildContext) -> (module, output_shape)
CELLS: Registry = Registry("cell type")


@dataclass
class BuildContext:
    """Everything a builder may read to make one cell from its INI section.

    ``section`` holds the generator keys (Type, Input, NbOutputs, KernelDims, Mapping...,
    ActivationFunction...); ``config`` is the merged ConfigSection view holding the cell's own
    parameters (NoBias, Dropout, Epsilon, ...), already stripped of solver and quantizer
    prefixes. Both have the ini Section API (``in``, ``get(key, reader, default)``,
    ``error(key, msg)``, ``warn(key, msg)``).
    """

    name: str
    section: Any
    config: Any
    input_names: List[str]
    input_shapes: List[Shape]
    extras: dict = field(default_factory=dict)

    def error(self, key: str, message: str):
        return self.section.error(key, message)

    def config_error(self, key: str, message: str):
        """A ConfigError at ``key`` of the ConfigSection, or at the cell section's header
        when the ConfigSection is absent or does not hold ``key``."""
        if self.config is not None and key in self.config:
            return self.config.error(key, message)
        return self.section.error(key if key in self.section else None, message)


_ABSENT = object()


def tensor_of(module: nn.Module, name: str) -> Optional[torch.Tensor]:
    """``module.<name>`` for a parameter or buffer, read from the module's own dictionaries
    (``nn.Module.__getattr__`` is a slow Python fallback, paid on every pass otherwise); a
    name moved elsewhere (``torch.nn.utils.prune`` makes ``weight`` a plain attribute) is
    read the usual way."""
    value = module._parameters.get(name, _ABSENT)
    if value is _ABSENT:
        value = module._buffers.get(name, _ABSENT)
        if value is _ABSENT:
            return getattr(module, name)
    return value


_GLOBAL_HOOKS = tuple(getattr(torch.nn.modules.module, name, None) for name in (
    "_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_hooks",
    "_global_backward_pre_hooks"))
_KNOWN = None not in _GLOBAL_HOOKS    # else: global hooks are kept where we cannot read them
_PRE, _FORWARD, _BACKWARD, _BACKWARD_PRE = _GLOBAL_HOOKS
_tracing_state = torch._C._get_tracing_state


def own_hooks(module: nn.Module) -> bool:
    """Whether ``module`` carries hooks of its own (forward, pre-forward or backward)."""
    return bool(module._forward_pre_hooks or module._forward_hooks or
                module._backward_hooks or module._backward_pre_hooks)


def direct_calls() -> bool:
    """Whether a module without hooks of its own may be run as ``module.forward(...)``: what
    ``nn.Module.__call__`` does then, less two Python frames per call (a few per cent of a
    pruned network's latency at batch 1); not while torch.jit traces (it records module
    scopes) nor with global module hooks (or a torch that does not keep them where read)."""
    return not global_hooks() and _tracing_state() is None


def global_hooks() -> bool:
    """Whether module hooks registered for every module are set (or cannot be read)."""
    return not _KNOWN or bool(_PRE or _FORWARD or _BACKWARD or _BACKWARD_PRE)
