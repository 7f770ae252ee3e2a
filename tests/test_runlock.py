"""One run per output folder: a second run is refused while the first holds the folder; a
killed run leaves no stale lock."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from n2prune.train.runlock import RunLock

DIGITS = str(Path(__file__).resolve().parent.parent / "networks" / "digits.ini")


def test_a_second_lock_on_a_folder_is_refused_until_the_first_is_released(tmp_path):
    first = RunLock(tmp_path / "run")
    with pytest.raises(ValueError, match=f"run is in use by another run \\(process "
                                         f"{os.getpid()}\\); wait for it to end"):
        RunLock(tmp_path / "run")
    first.release()
    with RunLock(tmp_path / "run") as again:
        assert again.held
    assert not again.held and (tmp_path / "run").is_dir()


def test_a_failed_start_removes_only_a_folder_it_created_and_left_empty(tmp_path):
    RunLock(tmp_path / "new").release(failed=True)
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    RunLock(tmp_path / "old").release(failed=True)
    assert (tmp_path / "old").is_dir()


def _command(output, *extra):
    return [sys.executable, "-m", "n2prune", DIGITS, "-seed", "3", "--threads", "1",
            "--quiet", "--output", str(output), *extra]


def test_a_second_process_on_the_same_output_is_refused_and_a_kill_frees_it(tmp_path):
    output = tmp_path / "run"
    first = subprocess.Popen(_command(output, "-learn-epoch", "200"))
    try:
        deadline = time.time() + 120
        lock = output / ".lock"
        while time.time() < deadline and not (
                lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, "the first run ended early"
            time.sleep(0.05)
        second = subprocess.run(_command(output, "-learn-epoch", "1", "--overwrite"),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.splitlines() == [
            f"error: {output} is in use by another run (process {first.pid}); wait for it "
            f"to end, or choose another --output"]
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = subprocess.run(_command(output, "-learn-epoch", "1", "--overwrite"),
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert (output / "report.json").exists()
