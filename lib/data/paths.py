"""Where MNIST Studio finds datasets, keeps trained runs and ships its bundled model.

Both directories come from environment settings so the app, the CLI, tests and
benchmarks can point at different places without code changes.
"""

import os
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]  # lib/data/paths.py -> the project
DATA_DIR_ENV = "MNIST_STUDIO_DATA_DIR"
RUNS_DIR_ENV = "MNIST_STUDIO_RUNS_DIR"
# Where runs live: a local folder (then it is the runs directory) or an fsspec URL (s3://, gs://: then
# the runs directory is this server's working copy; see lib.store.backend).
STORE_ENV = "MNIST_STUDIO_STORE"
# The pretrained model that makes drawing work before anyone trains (read-only).
BUNDLED_MODELS_DIR = PROJECT_DIR / "models"


def data_dir() -> Path:
    """The data directory: `$MNIST_STUDIO_DATA_DIR`, else `data/` in the project."""
    return Path(os.environ.get(DATA_DIR_ENV) or PROJECT_DIR / "data").expanduser()


def runs_dir() -> Path:
    """The runs directory: `$MNIST_STUDIO_STORE` when it names a local folder, else
    `$MNIST_STUDIO_RUNS_DIR`, else `runs/` in the project.

    Without the setting, a read-only project folder (some hosted containers) falls
    back to the system's temporary folder rather than failing every save.
    """
    store = (os.environ.get(STORE_ENV) or "").strip()
    if store and ("://" not in store or store.startswith("file://")):
        return Path(store.removeprefix("file://")).expanduser()
    configured = os.environ.get(RUNS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    default = PROJECT_DIR / "runs"
    if os.access(default if default.exists() else PROJECT_DIR, os.W_OK):
        return default
    return Path(tempfile.gettempdir()) / "mnist-studio-runs"
