"""Starting several processes: a rank never waits in silence, nor past N2PRUNE_DIST_TIMEOUT,
and --nproc is checked (batch size, cores) before any process starts."""

import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from n2prune.cli import train_main
from n2prune.train import launch as launch_module
from n2prune.train.launch import check_nproc, free_port

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")   # [sp] BatchSize=32


def _rank(tmp_path, seconds, **env):
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "N2PRUNE_DIST_TIMEOUT": str(seconds), **env}
    if "RANK" not in env:
        environ.pop("RANK", None)
    started = time.monotonic()
    process = subprocess.run([sys.executable, "-m", "n2prune", DIGITS, "-learn-epoch", "1",
                              "--quiet", "--output", str(tmp_path / "out")], env=environ,
                             capture_output=True, text=True, timeout=120)
    return process, time.monotonic() - started


def test_a_rank_alone_says_what_it_waits_for_and_gives_up_at_the_timeout(tmp_path):
    port = free_port()
    process, took = _rank(tmp_path, 5, MASTER_PORT=str(port))
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 2, process.stderr
    assert lines[0] == (f"rank 0 of 2 (RANK is unset: taken as 0): waiting for the other 1 "
                        f"process(es) at 127.0.0.1:{port} (MASTER_ADDR:MASTER_PORT); giving up "
                        f"after 5 s (N2PRUNE_DIST_TIMEOUT)")
    assert any(line.startswith(f"rank 0 of 2: still waiting at 127.0.0.1:{port} (")
               for line in lines[1:-1])
    assert lines[-1].startswith("error: rank 0 of 2 (RANK is unset: taken as 0): the other "
                                "process(es) did not join") and "within 5 s" in lines[-1]
    assert took < 5 + 30


def test_rank_1_gives_up_at_the_timeout_when_another_program_holds_the_port(tmp_path):
    with socket.socket() as holder:   # accepts connections, never answers
        holder.bind(("127.0.0.1", 0))
        holder.listen(8)
        port = holder.getsockname()[1]
        process, took = _rank(tmp_path, 3, MASTER_PORT=str(port), RANK="1")
    assert process.returncode == 2, process.stderr
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: rank 1 of 2: the other process(es) did not join at "
                           f"127.0.0.1:{port} within 3 s") and "no other program holds" in last
    assert took < 3 + 30


def test_nproc_beyond_the_batch_fails_before_spawning(monkeypatch, capsys):
    def spawned(*args, **kwargs):
        raise AssertionError("a process was started")
    monkeypatch.setattr(launch_module, "launch", spawned)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert train_main([DIGITS, "-learn-epoch", "1", "--nproc", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --nproc 64: [sp] BatchSize=32 is the global batch, split between "
                   "the processes: it must be at least 64 (or use --nproc 32 or fewer)"]


def test_more_processes_than_cores_warn_and_far_more_are_refused():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_nproc(DIGITS, 2, cores=2)
    with pytest.warns(UserWarning, match=r"--nproc 3 on 2 CPU core\(s\)"):
        check_nproc(DIGITS, 3, cores=2)
    with pytest.raises(ValueError, match=r"--nproc 5: 2 CPU core\(s\) here; .* use --nproc 2 "
                                         r"or fewer"):
        check_nproc(DIGITS, 5, cores=2)
    with pytest.raises(ValueError, match="--nproc must be a positive integer, got 0"):
        check_nproc(DIGITS, 0)
