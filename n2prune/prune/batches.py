"""Calibration batches: how one is fed to a model, and a model left as it was found.

A batch is one of:

- a tensor: ``model(batch)``, no target;
- a pair ``(inputs, targets)`` (tuple or list): ``model(inputs)``, ``model(**inputs)`` when the
  inputs are a mapping, ``model(*inputs)`` when they are a tuple; ``targets`` go to the loss;
- a mapping (a tokenizer's output, a dict of tensors): ``model(**batch)``, the Hugging Face
  convention; the loss receives the batch itself as its target (``lambda out, batch: out.loss``);
- anything else, with ``forward=``: ``forward(model, batch)`` gives the output and the loss
  receives the batch.

>>> import torch
>>> model = torch.nn.Linear(3, 2)
>>> feed(model, torch.ones(4, 3))[0].shape
torch.Size([4, 2])
>>> feed(model, {"input": torch.ones(1, 3)})[0].shape
torch.Size([1, 2])
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

import torch
from torch import nn

from n2prune.prune.prunecell import PruneCell

Forward = Callable[[nn.Module, Any], Any]


def feed(model: nn.Module, batch: Any, forward: Optional[Forward] = None) -> Tuple[Any, Any]:
    """``(output, target)`` of one batch (see the module docstring for the forms)."""
    if forward is not None:
        return forward(model, batch), batch
    if isinstance(batch, torch.Tensor):
        return model(batch), None
    if isinstance(batch, Mapping):
        return model(**batch), batch
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        inputs, targets = batch
        if isinstance(inputs, Mapping):
            return model(**inputs), targets
        if isinstance(inputs, tuple):
            return model(*inputs), targets
        return model(inputs), targets
    what = (f"a {type(batch).__name__} of {len(batch)} items"
            if isinstance(batch, (tuple, list)) else f"a {type(batch).__name__}")
    raise TypeError(f"calibration batch: {what}; give a tensor, an (inputs, targets) pair, "
                    f"a mapping (called model(**batch)), or forward=lambda model, batch: ...")


def output_tensor(output: Any) -> Any:
    """The tensor a loss usually reads from a model output: the output itself, the first
    item of a tuple, or a Hugging Face output's ``logits`` / ``last_hidden_state``."""
    if isinstance(output, torch.Tensor):
        return output
    for name in ("logits", "last_hidden_state"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return output


@contextmanager
def left_as_found(model: nn.Module, train: bool, keep_grads: bool) -> Iterator[None]:
    """Run the body with the model in training (``train``) or eval mode, then restore every
    module's own mode; in training mode also every buffer outside the pruning state
    (BatchNorm's running statistics and counters) and torch's random state (dropout draws);
    with ``keep_grads``, the parameters' ``.grad`` as they were."""
    modes = {module: module.training for module in model.modules()}
    pruning = {id(buffer) for module in model.modules() if isinstance(module, PruneCell)
               for buffer in module.buffers()}
    saved: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}
    if train:
        saved = {id(b): (b, b.detach().clone()) for b in model.buffers()
                 if id(b) not in pruning}
    grads = {p: p.grad for p in model.parameters()} if keep_grads else {}
    devices = sorted({p.device.index for p in model.parameters()
                      if p.device.type == "cuda"}) if train else []
    try:
        with torch.random.fork_rng(devices=devices, enabled=train):
            model.train(train)
            yield
    finally:
        for module, mode in modes.items():
            module.training = mode
        with torch.no_grad():
            for buffer, value in saved.values():
                buffer.copy_(value)
        for param, grad in grads.items():
            param.grad = grad
