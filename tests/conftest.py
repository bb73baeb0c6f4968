"""Shared fixtures: tiny data directories and private runs directories.

Tests never touch the user's data/ or runs/: each gets its own folders, and the
settings `MNIST_STUDIO_DATA_DIR` / `MNIST_STUDIO_RUNS_DIR` point at them.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

# No spare training process (a TF-loaded child of ~650 MB, issue 26) in tests unless a test asks for one:
# every public-profile AppTest and e2e server would start one, a dozen seconds of CPU each on CI's 2 cores.
# tests/lib/test_warm_worker.py and bench/first_progress.py turn it on where it is what they measure.
os.environ.setdefault("MNIST_STUDIO_WARM_WORKER", "0")

# The real MNIST, if this machine has it (CI sets this to ../shared/datasets).
REAL_DATA_DIR = os.environ.get("MNIST_STUDIO_DATA_DIR", "")
REAL_MNIST = Path(REAL_DATA_DIR) / "mnist.npz" if REAL_DATA_DIR else None


def synthetic_arrays(n_train: int, n_test: int, num_classes: int = 10, seed: int = 0, side: int = 28) -> dict:
    """Learnable fake images: each class lights up its own horizontal band."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % num_classes
        rng.shuffle(y)
        x = rng.integers(0, 40, size=(n, side, side), dtype=np.uint8)
        band = side // num_classes if num_classes <= side else 1
        for k in range(num_classes):
            rows = slice((k * band) % side, (k * band) % side + max(band, 2))
            x[y == k, rows, 4:-4] = 230
        return x, y.astype(np.uint8)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def mnist_slice(n_train: int, n_test: int) -> dict:
    """A stratified-enough slice of real MNIST, or synthetic digits-shaped data without it."""
    if REAL_MNIST is not None and REAL_MNIST.is_file():
        with np.load(REAL_MNIST) as npz:
            return {
                "x_train": npz["x_train"][:n_train],
                "y_train": npz["y_train"][:n_train],
                "x_test": npz["x_test"][:n_test],
                "y_test": npz["y_test"][:n_test],
            }
    return synthetic_arrays(n_train, n_test)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """mnist.npz (600 train / 200 test) and a generated fashion_mnist.npz."""
    folder = tmp_path_factory.mktemp("data")
    np.savez_compressed(folder / "mnist.npz", **mnist_slice(600, 200))
    np.savez_compressed(folder / "fashion_mnist.npz", **synthetic_arrays(400, 100, seed=1))
    return folder


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "runs"
    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(folder))
    return folder


@pytest.fixture
def data_env(tiny_data_dir, monkeypatch) -> Path:
    monkeypatch.setenv("MNIST_STUDIO_DATA_DIR", str(tiny_data_dir))
    return tiny_data_dir
