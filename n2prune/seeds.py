"""N2D2's seed rule, the same in every command: ``-seed 0`` picks a seed from the clock.

>>> resolve_seed(7)
7
>>> resolve_seed(0) > 0
True
"""

from __future__ import annotations

import time


def resolve_seed(seed: int) -> int:
    """``seed`` itself, or for 0 a time-based one in [1, 2**31 - 2] (as N2D2 does); a
    negative seed is refused."""
    if seed < 0:
        raise ValueError(f"-seed must be >= 0 (0 picks one from the clock), got {seed}")
    if seed == 0:
        return int(time.time()) % (2**31 - 1) or 1
    return seed
