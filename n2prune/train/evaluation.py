"""One pass over a data set: the confusion matrix of a network's primary target, or its mean
loss.

Shared by the trainer (validation and test) and by the sensitivity analysis, which scores a
network many times (``--budget sensitivity``: by the validation loss).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from n2prune.train.distributed import Ranks
from n2prune.train.metrics import Confusion


@torch.no_grad()
def evaluate_set(net: nn.Module, provider: Any, objective: Any, set_name: str, seed: int,
                 batch_size: int, ranks: Optional[Ranks] = None) -> Optional[Confusion]:
    """The confusion matrix of ``objective`` on ``set_name`` (None if the set is empty), the
    network in eval mode; batches drawn with a generator seeded ``seed + 2`` (on-the-fly
    transformations are the same at every call)."""
    if provider.size(set_name) == 0:
        return None
    ranks = ranks or Ranks()
    net.eval()
    ranks.sync_buffers(net)  # BatchNorm statistics: rank 0's on every rank
    confusion = Confusion(objective.nb_outputs)
    generator = torch.Generator().manual_seed(seed + 2)
    for x, labels in ranks.eval_batches(provider, set_name, generator, max(batch_size, 256)):
        outputs = net.outputs(x, [objective.target.cell])
        confusion.add(labels, objective.estimated(outputs))
    return ranks.reduce_confusion(confusion)  # summed over the ranks' shares


@torch.no_grad()
def mean_loss(net: nn.Module, provider: Any, objective: Any, set_name: str, seed: int,
              batch_size: int) -> float:
    """The mean of ``objective``'s loss over ``set_name`` (one process), the network in eval
    mode; batches drawn as :func:`evaluate_set` draws them."""
    net.eval()
    generator = torch.Generator().manual_seed(seed + 2)
    total, count = 0.0, 0
    for x, labels in provider.batches(set_name, generator=generator,
                                      batch_size=max(batch_size, 256)):
        outputs = net.outputs(x, [objective.source])
        total += float(objective.loss(outputs, labels)) * len(labels)
        count += len(labels)
    return total / max(count, 1)
