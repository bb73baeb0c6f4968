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


def wait_until(condition, timeout: float = 10.0, what: str = "the condition", every: float = 0.01):
    """Poll until `condition()` is truthy and return it; fail (never hang) after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def worker_children() -> list[int]:
    """This process's training/import children (Linux /proc; the worker module is on their command line)."""
    from lib.execution import process

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    command = handle.read()
            except OSError:
                continue
            if parent == os.getpid() and process.WORKER_MODULE.encode() in command:
                found.append(int(entry))
    return found


def forged(bundle: bytes, **meta_changes) -> bytes:
    """The bundle with meta.json changed and its checksum updated, as a forger would."""
    import hashlib
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    meta = {**json.loads(files["meta.json"]), **meta_changes}
    files["meta.json"] = json.dumps(meta).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["files"]["meta.json"] = hashlib.sha256(files["meta.json"]).hexdigest()
    files["manifest.json"] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def is_e2e(nodeid: str) -> bool:
    return nodeid.startswith("tests/e2e/")


def pytest_collection_modifyitems(config, items):
    """The browser tests first: with two workers they are the longest unit of work (below), so they start
    at once and the other worker takes the files around them. Stable: files keep their order."""
    items.sort(key=lambda item: not is_e2e(item.nodeid))


def pytest_xdist_make_scheduler(config, log):
    """How the two test workers (pytest.ini: `-n 2`) share the suite.

    Each test file is one unit of work, so its module fixtures (a trained model, a Ray head, a moto
    server) start once. The browser tests are one unit together (~10 min): they share one app server
    and one browser and run one after another, as the visitors they play would. (xdist's own
    `--dist loadgroup` marks do not take with pytest 9, which no longer reads the node ids xdist edits.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByFileBrowserTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/e2e" if is_e2e(nodeid) else nodeid.split("::", 1)[0]

    return ByFileBrowserTestsTogether(config, log)


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
