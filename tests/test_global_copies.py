"""Global ranking on the CPU copies through numpy (one thread): the masks are exactly those of
the torch path, and the benchmark says at how many threads it measured."""

import subprocess
import sys
from pathlib import Path

import torch

from n2prune.prune.masks import copy_into
from n2prune.prune.scope import global_keep

ROOT = Path(__file__).resolve().parent.parent


def _reference(scores, target):
    """Sort-based: ceil(float32(t)·float32(N)) lowest pruned, ties lower index first."""
    flat = torch.cat([s.reshape(-1) for s in scores]).double()
    count = int(torch.ceil(torch.tensor(target, dtype=torch.float32) *
                           torch.tensor(float(flat.numel()), dtype=torch.float32)))
    order = sorted(range(flat.numel()), key=lambda i: (float(flat[i]), i))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[:count]] = False
    return list(torch.split(keep, [s.numel() for s in scores]))


def test_global_keep_matches_a_sort_with_ties_and_dtypes():
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64, torch.float16):
        scores = [torch.randint(0, 7, (5, 4), generator=generator).to(dtype),
                  torch.randint(0, 7, (9,), generator=generator).to(dtype)[::1],
                  torch.randint(0, 7, (3, 6), generator=generator).to(dtype).t()]
        for target in (0.1, 0.5, 0.77):
            keeps = global_keep(scores, target)
            for keep, expected, s in zip(keeps, _reference(scores, target), scores):
                assert keep.shape == s.shape
                assert torch.equal(keep.reshape(-1), expected), (dtype, target)


def test_copy_into_a_strided_view_equals_torch_copy():
    generator = torch.Generator().manual_seed(1)
    keep = torch.rand(6, 3, 2, generator=generator) > 0.5
    for dtype in (torch.float32, torch.float16, torch.bool, torch.bfloat16):
        ours, theirs = torch.ones(6, 7, 2, dtype=dtype), torch.ones(6, 7, 2, dtype=dtype)
        copy_into(ours[:, 2:5], keep)
        theirs[:, 2:5].copy_(keep)
        assert torch.equal(ours, theirs), dtype


def test_the_benchmark_prints_its_thread_count():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_global_magnitude.py"),
                           "--layers", "3", "--size", "20", "--repeats", "1"],
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    first, last = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    assert first.endswith(" thread(s) (torch default)")
    assert last.startswith("at ") and " thread(s), median: n2prune " in last
    assert "masks agree on 100.0000 % of weights" in last or "masks agree" in last
