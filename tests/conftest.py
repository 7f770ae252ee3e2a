"""Shared test fixtures: paths to ../shared data (tests skip when it is absent)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("N2PRUNE_SHARED", ROOT.parent / "shared"))


@pytest.fixture
def mnist_dir() -> Path:
    path = SHARED / "data" / "mnist-10k"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST subset not found at {path} (needs ../shared beside the repo)")
    return path


@pytest.fixture
def n2d2_models() -> Path:
    path = SHARED / "n2d2-models"
    if not path.is_dir():
        pytest.skip(f"N2D2 model files not found at {path} (needs ../shared beside the repo)")
    return path
