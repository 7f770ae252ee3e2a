"""Learning uses one torch thread unless --threads says otherwise (more collapsed under
competition: tools/bench_threads.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from n2prune.train.options import TrainOptions
from n2prune.train.trainer import Trainer

DIGITS = str(Path(__file__).resolve().parent.parent / "networks" / "digits.ini")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("requested,expected", [(None, 1), (2, 2)])
def test_trainer_sets_one_thread_by_default_and_threads_when_given(tmp_path, restore_threads,
                                                                   requested, expected):
    torch.set_num_threads(3)  # what torch picks by itself on a 3-core machine
    trainer = Trainer(DIGITS, TrainOptions(learn_epoch=1, seed=1, threads=requested,
                                           quiet=True, output=str(tmp_path / "o")))
    trainer.close()
    assert torch.get_num_threads() == expected and trainer.threads == expected


def test_a_run_without_thread_settings_learns_with_one_thread(tmp_path):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    subprocess.run([sys.executable, "-m", "n2prune", DIGITS, "-learn-epoch", "1", "-seed", "1",
                    "--quiet", "--output", str(tmp_path / "o")], check=True, env=environ,
                   timeout=300)
    assert json.loads((tmp_path / "o" / "report.json").read_text())["threads"] == 1
