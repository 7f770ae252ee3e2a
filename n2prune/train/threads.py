"""How many CPU threads torch uses for learning: ``--threads N``, else :data:`DEFAULT_THREADS`.

Why 1 by default (``python tools/bench_threads.py``, digits.ini on the shared 2-core machine
this was developed on): torch's own default (a thread per core, OpenMP workers that spin
while they wait) learnt 7.6x slower than one thread under the background load of other work,
and 32-36x slower with one more competing process, because every operation waits for its slowest
worker; one thread waits for no one. The networks learnt on a CPU here are small, so a
second thread gains little even on an idle machine (1.25x in the one quieter sample seen).
One thread also makes results independent of the core count (threads may sum in another
order: weights differ in the last bits). ``--threads N`` uses N.
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
