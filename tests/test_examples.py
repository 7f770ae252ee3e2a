"""The examples users run as written: tools/example_prune.py (and README's python blocks)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


# ----------------------------------------------------------------------------- README
def _readme_blocks():
    """README.md's ```python blocks, each with its first line number and info string."""
    lines = (ROOT / "README.md").read_text().splitlines()
    blocks, start = [], None
    for number, line in enumerate(lines, 1):
        if start is None and line.startswith("```python"):
            start, info, body = number, line[3:].split(), []
        elif start is not None and line.startswith("```"):
            blocks.append((start, info, "\n".join(body)))
            start = None
        elif start is not None:
            body.append(line)
    return blocks


README_BLOCKS = _readme_blocks()


def test_readme_has_python_examples():
    assert len(README_BLOCKS) >= 3


@pytest.mark.parametrize("start, info, code", README_BLOCKS,
                         ids=[f"README.md:{start}" for start, _, _ in README_BLOCKS])
def test_readme_python_example_runs_as_written(start, info, code, tmp_path, monkeypatch):
    """Blocks run in a fresh namespace, in a temporary folder holding the repo's networks/;
    a block whose info string says ``needs-data`` (```python needs-data) is skipped."""
    if "needs-data" in info:
        pytest.skip(f"README.md:{start} needs data")
    (tmp_path / "networks").symlink_to(ROOT / "networks")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    exec(compile(code, f"README.md:{start}", "exec"), {"__name__": "readme_example"})
