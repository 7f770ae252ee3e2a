"""Joining the process group without a silent wait: what this rank waits for, said at once.

``dist.init_process_group`` blocks until every rank has joined, printing nothing; a rank
started alone (``WORLD_SIZE=2`` without ``RANK``, a peer that never comes) or pointed at a
``MASTER_PORT`` another program holds would wait in silence, the latter past any timeout
(the store client waits for an answer that never comes). :func:`join_group` joins with a
watchdog beside it: after a short grace it prints what the rank waits for, then a progress
line every few seconds; after ``N2PRUNE_DIST_TIMEOUT`` seconds the join fails with one line,
and a join still blocked a few seconds later ends the process (exit status 2) with that line:
nothing else can interrupt it.
"""

from __future__ import annotations

import datetime
import os
import sys
import threading
import time
from typing import Mapping, Optional, TextIO

import torch.distributed as dist

GRACE = 2.0   # seconds before the first line: a normal start of all ranks prints nothing
STUCK = 5.0   # seconds past the timeout after which a join still blocked ends the process


def join_group(backend: str, world: int, rank: int, seconds: float, timeout_env: str,
               environ: Optional[Mapping[str, str]] = None,
               echo: Optional[TextIO] = None) -> None:
    """``dist.init_process_group`` (env:// rendezvous), saying what it waits for and
    refusing, in one line, to wait more than ``seconds``."""
    env = os.environ if environ is None else environ
    where = f"{env.get('MASTER_ADDR', '127.0.0.1')}:{env.get('MASTER_PORT', '?')}"
    who = f"rank {rank} of {world}" + ("" if "RANK" in env else " (RANK is unset: taken as 0)")
    failed = (f"{who}: the other process(es) did not join at {where} within {seconds:g} s "
              f"({timeout_env}): start every rank with the same MASTER_ADDR, MASTER_PORT and "
              f"WORLD_SIZE and its own RANK, and check that no other program holds the port")
    waiting = (f"{who}: waiting for the other {world - 1} process(es) at {where} "
               f"(MASTER_ADDR:MASTER_PORT); giving up after {seconds:g} s ({timeout_env})")
    done = threading.Event()
    start = time.monotonic()
    threading.Thread(target=_watch, args=(done, start, seconds, waiting, where, rank, world,
                                          failed, echo or sys.stderr),
                     name="n2prune-rendezvous", daemon=True).start()
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=seconds),
                                world_size=world, rank=rank)
    except RuntimeError as exc:   # DistStoreError and kin
        if time.monotonic() - start < seconds:
            raise
        raise ValueError(failed) from exc
    finally:
        done.set()


def _watch(done: threading.Event, start: float, seconds: float, waiting: str, where: str,
           rank: int, world: int, failed: str, echo: TextIO) -> None:
    every = max(1.0, min(10.0, seconds / 3))
    next_line, first = start + min(GRACE, seconds / 2), True
    while not done.wait(max(0.0, next_line - time.monotonic())):
        now = time.monotonic()
        if now >= start + seconds + STUCK:   # the join ignores its timeout: end it here
            print(f"error: {failed}", file=echo, flush=True)
            sys.stdout.flush()
            os._exit(2)
        if now < start + seconds:
            print(waiting if first else f"rank {rank} of {world}: still waiting at {where} "
                  f"({now - start:.0f} s of {seconds:g})", file=echo, flush=True)
            first = False
        next_line = min(now + every, start + seconds + STUCK)
