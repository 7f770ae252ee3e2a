"""One pass over a data set: the confusion matrix of a network's primary target.

Shared by the trainer (validation and test) and by the sensitivity analysis, which scores a
network many times with the same metric the trainer validates with.
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
