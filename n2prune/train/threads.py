"""How many CPU threads torch uses for learning: ``--threads N``, else :data:`DEFAULT_THREADS`.

Why 1 by default (``python tools/bench_threads.py``, digits.ini on the 2-core machine this was
developed on): torch's own default (one thread per core, OpenMP workers that spin while they
wait) collapsed learning 10-35x whenever another process competed for a core, because every
operation waits for its slowest worker; one thread does not wait for anyone. The networks
this tool learns on a CPU are small (a LeNet step is tens of microseconds of work per
operation), so a second thread gains little even on an idle machine. One thread also keeps
results independent of the machine's core count (several threads may sum in another order:
the weights differ in the last bits). ``--threads N`` uses N (a large network on an idle
many-core machine).
"""

from __future__ import annotations

from typing import Optional

import torch

DEFAULT_THREADS = 1


def set_threads(requested: Optional[int]) -> int:
    """Set torch's intra-op thread count to ``requested`` (default :data:`DEFAULT_THREADS`);
    returns it."""
    threads = requested if requested else DEFAULT_THREADS
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
