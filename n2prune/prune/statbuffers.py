"""PruneCell's statistics as buffers (``stat_<name>``), a mixin: criteria read them through
``stats``, a Pruner or StatisticsCollector writes them with ``set_stat``, and they travel in
``state_dict`` (a fresh PruneCell creates them while loading)."""

from __future__ import annotations

from typing import Dict

import torch

STAT_PREFIX = "stat_"


class StatBuffers:
    """Needs nn.Module's ``_buffers`` and ``register_buffer``."""

    @property
    def stats(self) -> Dict[str, torch.Tensor]:
        """The statistics criteria read (buffers ``stat_<name>``, saved in state_dict)."""
        return {name[len(STAT_PREFIX):]: value for name, value in self._buffers.items()
                if name.startswith(STAT_PREFIX) and value is not None}

    @property
    def criterion_inputs(self) -> Dict[str, torch.Tensor]:
        """What a criterion's ``stats`` argument holds: the statistics, plus ``"mask"`` (the
        current mask, for criteria that score the effective weights, as LAMP does)."""
        return {**self.stats, "mask": self.mask}

    def set_stat(self, name: str, value: torch.Tensor) -> None:
        """Store (or replace) the statistic ``name`` as a buffer."""
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"PruneCell: statistic {name!r} must be a tensor, got "
                            f"{type(value).__name__}")
        key = STAT_PREFIX + name
        if key in self._buffers and self._buffers[key] is not None \
                and self._buffers[key].shape == value.shape:
            self._buffers[key].copy_(value.detach())
        else:  # contiguous: safetensors refuses a transposed view's strides
            self.register_buffer(key, value.detach().clone(memory_format=torch.contiguous_format))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key, value in state_dict.items():  # statistics and rewind weights saved earlier
            name = key[len(prefix):]
            saved = name.startswith(STAT_PREFIX) or name == "rewind_weight"
            if key.startswith(prefix) and saved and "." not in name \
                    and getattr(self, name, None) is None:
                self.register_buffer(name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

