"""``n2prune-train --nproc N``: start N learning processes on this machine, as
``torchrun --standalone --nproc_per_node=N`` would, and stop them all on the first error.

Each process gets torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR=127.0.0.1``, a free ``MASTER_PORT``; ``OMP_NUM_THREADS=1`` unless set). Rank 0's
output passes through; the others' is kept back. When a process fails, the others are
stopped and its one-line error is printed as ``error: rank K: ...`` (exit status 2).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

import torch

from n2prune import ini as ini_module
from n2prune.onnxin import refuse_training
from n2prune.ini.values import read_uint


def free_port() -> int:
    """A TCP port free on the loopback interface now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_environment(rank: int, world: int, port: int,
                     base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment torchrun gives the process of ``rank`` on a single machine."""
    env = dict(os.environ if base is None else base)
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
               LOCAL_WORLD_SIZE=str(world), GROUP_RANK="0", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class _Worker:
    """One rank's process, its kept stderr lines and the time it exited."""

    def __init__(self, rank: int, command: Sequence[str], env: Dict[str, str],
                 echo: Optional[TextIO]):
        self.rank, self.lines, self.ended = rank, [], None  # type: ignore[var-annotated]
        self.process = subprocess.Popen(list(command), env=env, stderr=subprocess.PIPE,
                                        stdout=None if rank == 0 else subprocess.DEVNULL,
                                        text=True, errors="replace")
        self._echo = echo
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))
            if self._echo is not None and not line.startswith("error:"):
                self._echo.write(line)
                self._echo.flush()
        self.ended = time.monotonic()

    def poll(self) -> Optional[int]:
        return self.process.poll()

    def message(self) -> str:
        """The process's one-line error (its last 'error:' line), or how it ended."""
        self._reader.join(timeout=5)
        errors = [line for line in self.lines if line.startswith("error:")]
        if errors:
            return errors[-1][len("error:"):].strip()
        code = self.process.returncode
        if code is not None and code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        last = self.lines[-1].strip() if self.lines else "no message"
        return f"exited with status {code} ({last})"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()


def launch(command: Sequence[str], nproc: int, stderr: Optional[TextIO] = None,
           poll: float = 0.05) -> int:
    """Run ``command`` as ``nproc`` ranks; 0 when all succeed, 2 (1 if interrupted) else."""
    stderr = stderr or sys.stderr
    if nproc < 1:
        raise ValueError(f"--nproc must be a positive integer, got {nproc}")
    port = free_port()
    workers: List[_Worker] = []
    try:
        for rank in range(nproc):
            workers.append(_Worker(rank, command, rank_environment(rank, nproc, port),
                                   stderr if rank == 0 else None))
        failed = _wait(workers, poll)
    except KeyboardInterrupt:
        _stop_all(workers)
        print("interrupted", file=stderr)
        return 1
    if failed is None:
        return 0
    _stop_all(workers)
    code, text = failed.process.returncode, failed.message()
    print(f"error: rank {failed.rank}: {text}", file=stderr)
    return 1 if code == 1 and text == "interrupted" else 2


def _wait(workers: List[_Worker], poll: float) -> Optional[_Worker]:
    """Until every worker ended well (None) or one failed (the first one to have ended)."""
    while True:
        codes = [w.poll() for w in workers]
        bad = [w for w, code in zip(workers, codes) if code not in (None, 0)]
        if bad:
            return _first_cause(workers, poll)
        if all(code == 0 for code in codes):
            return None
        time.sleep(poll)


# A rank that loses its peer fails too ("Connection closed by peer"), sometimes before the
# rank that caused it has ended: those messages are consequences, not the cause.
_COLLATERAL = re.compile(r"gloo|nccl|[Cc]onnection (closed|reset|refused)|remote worker|"
                         r"[Bb]roken pipe")


def _first_cause(workers: List[_Worker], poll: float, grace: float = 3.0) -> _Worker:
    """The failed worker to report: the first to end whose message is not a peer's loss."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(w.poll() is None for w in workers):
        time.sleep(poll)  # give the rank that caused the failure time to end and say why
    bad = [w for w in workers if w.poll() not in (None, 0)]
    causes = [w for w in bad if not _COLLATERAL.search(w.message())]
    return min(causes or bad, key=_end_time)


def _end_time(worker: _Worker) -> Tuple[float, int]:
    worker._reader.join(timeout=5)
    return (worker.ended if worker.ended is not None else float("inf"), worker.rank)


def _stop_all(workers: List[_Worker], grace: float = 5.0) -> None:
    for worker in workers:
        worker.stop()
    deadline = time.monotonic() + grace
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_nproc(ini_path: str, nproc: int, device: str = "cpu",
                cores: Optional[int] = None) -> None:
    """What ``--nproc N`` needs, checked before any process starts: N >= 1, the INI's
    global ``[sp] BatchSize`` >= N, and at most 2 processes per core on the CPU (one GPU
    each with ``--device cuda``); more processes than cores only warns."""
    if nproc < 1:
        raise ValueError(f"--nproc must be a positive integer, got {nproc}")
    refuse_training(ini_path)
    ini = ini_module.load(ini_path)
    if "sp" in ini:
        batch = ini["sp"].get("BatchSize", read_uint, 1)
        if batch < nproc:
            raise ValueError(f"--nproc {nproc}: [sp] BatchSize={batch} is the global batch, "
                             f"split between the processes: it must be at least {nproc} "
                             f"(or use --nproc {max(1, batch)} or fewer)")
    if device.startswith("cuda"):
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise ValueError(f"--nproc {nproc} --device cuda: one GPU per process, and "
                             f"{gpus} GPU(s) are visible here")
        return
    cores = available_cores() if cores is None else cores
    if nproc > 2 * cores:
        raise ValueError(f"--nproc {nproc}: {cores} CPU core(s) here; each process holds its "
                         f"own network and data, and more than 2 per core only slows learning "
                         f"down: use --nproc {cores} or fewer")
    if nproc > cores:
        warnings.warn(f"--nproc {nproc} on {cores} CPU core(s): the processes share cores "
                      f"(each runs one thread); fewer processes are likely faster")


def train_command(argv: Sequence[str]) -> List[str]:
    """``python -m n2prune ARGV``: what each rank of ``n2prune-train --nproc N`` runs."""
    return [sys.executable, "-m", "n2prune", *argv]
