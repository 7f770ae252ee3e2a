"""BatchNorm statistics re-estimated after the masks change: a Pruner callback.

Pruning a step's worth of weights changes what every later BatchNorm sees, but its running
mean and variance still describe the denser network until many batches have gone by, so a
model evaluated right after a mask update can score far below what it does in training mode
(n2prune-train's resnet-mini, validated at the log point where its masks moved from 40 to 60 %,
fell from 83 % to 35 %). ``RecalibrateBatchNorm`` re-estimates them on a few batches at once:

>>> pruner = n2prune.Pruner(model, callbacks=[RecalibrateBatchNorm(model, batches)])  # doctest: +SKIP

``batches`` is a list of input tensors, or a callable returning an iterable of them (a loader
of your own: ``lambda: (x for x, _ in itertools.islice(loader, 8))``). Every BatchNorm layer
(torch's with running statistics, and n2prune's ``BatchNorm`` cell) gets the equal-weight
average of the batches' means and unbiased variances; the rest of the model runs in eval
mode (Dropout off: no random numbers drawn, so a seeded run stays reproducible), without
gradients, and every module's mode, momentum and batch counter are restored afterwards:
only the running statistics change.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Sequence, Union

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from n2prune.cells.batchnorm import BatchNorm

Batches = Union[Sequence[torch.Tensor], Callable[[], Iterable[torch.Tensor]]]


def batchnorm_layers(model: nn.Module) -> List[nn.Module]:
    """The layers whose running statistics ``recalibrate`` re-estimates."""
    return [m for m in model.modules() if isinstance(m, BatchNorm) or (
        isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None)]


def _momentum_name(layer: nn.Module) -> str:
    return "moving_average_momentum" if isinstance(layer, BatchNorm) else "momentum"


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Batches) -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches``; returns how many
    batches were used (an error when there were none)."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    modes = {module: module.training for module in model.modules()}
    momenta = {layer: getattr(layer, _momentum_name(layer)) for layer in layers}
    tracked = {layer: layer.num_batches_tracked.clone() for layer in layers
               if getattr(layer, "num_batches_tracked", None) is not None}
    count = 0
    try:
        model.eval()
        for layer in layers:
            layer.train()
        for x in (batches() if callable(batches) else batches):
            for layer in layers:  # batch k weighs 1/(k+1): an equal-weight average
                setattr(layer, _momentum_name(layer), 1.0 / (count + 1))
            model(x)
            count += 1
    finally:
        for module, training in modes.items():
            module.training = training
        for layer, momentum in momenta.items():
            setattr(layer, _momentum_name(layer), momentum)
        for layer, count_before in tracked.items():  # torch's counter: as if never run
            layer.num_batches_tracked.copy_(count_before)
    if count == 0:
        raise ValueError("recalibrate: batches gave no input tensor (BatchNorm statistics "
                         "left unchanged); give at least one")
    return count


class RecalibrateBatchNorm:
    """Pruner callback: after each step whose mask update changed the masks, ``recalibrate``
    ``model`` on ``batches``; ``calls`` counts the recalibrations."""

    def __init__(self, model: nn.Module, batches: Batches):
        if not callable(batches) and len(batches) == 0:
            raise ValueError("RecalibrateBatchNorm: batches is empty; give at least one input "
                             "tensor (or a callable returning an iterable of them)")
        self.model, self.batches, self.calls = model, batches, 0

    def on_step_end(self, pruner, batch_size: int) -> None:
        if pruner.masks_changed:
            recalibrate(self.model, self.batches)
            self.calls += 1
