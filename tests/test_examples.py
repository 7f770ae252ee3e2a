"""The examples users run as written: tools/example_prune.py (and README's python blocks)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_example_prune_learns_and_reaches_its_sparsity():
    environ = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "example_prune.py")],
                            capture_output=True, text=True, timeout=300, env=environ)
    assert result.returncode == 0, result.stderr
    epochs = re.findall(r"epoch (\d+): loss \S+  test accuracy (\S+)  sparsity per cell (.*)",
                        result.stdout)
    assert [int(epoch) for epoch, _, _ in epochs] == [1, 2, 3, 4, 5, 6]
    _, accuracy, sparsity = epochs[-1]
    assert float(accuracy) > 0.95
    assert [float(s) >= 0.8 for s in sparsity.split()] == [True, True, True]
