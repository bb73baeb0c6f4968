"""Model and run-bundle import as a job: the file is checked, loaded and scored in a child process.

A visitor's upload (a `.studio.zip` run bundle or a bare `.keras` model, up to 200 MB) is staged in
a private temporary file, and lib.store.bundles imports it in a child process (lib.execution.process)
under a time and a memory limit: a model that is too big or too slow, or that finds a way around
Keras' safe mode, costs that child, never the server. The server only reads the run the child wrote.
On a shared server an import is a job like a training (lib.execution.jobs): one active job per
visitor, the same queue, and the upload's size held in the workspace quota while it runs. With
MNIST_STUDIO_RAY_ADDRESS set the same import runs as a Ray job (lib.execution.raycluster, clusterjob).

The limits, measured on a busy 2-core machine (TensorFlow 2.21, Keras 3.15, the MNIST test set):
- IMPORT_MEMORY_MB caps the child's address space (RLIMIT_AS; TensorFlow reserves far more address
  space than it touches, so this is not RSS). TensorFlow, Keras and the MNIST test set take
  ~1,830 MiB of it (a small CNN imports at 1,830 MiB, RSS 811 MiB); a 127 MB model (32 M parameters)
  peaked at 2,520 MiB (RSS 1,426 MiB); the largest upload, a 200 MB model (50 M parameters), at
  2,931 MiB (RSS 1,839 MiB). 3,584 MiB lets every file the upload limit admits in, with room for the
  extra threads of a bigger machine, and stops a config that declares layers too big to build (a
  Dense layer of 3 GB) at the limit, with a message, instead of in the server's memory.
- IMPORT_TIME_LIMIT_S: the 200 MB model took 95 s (loading, choosing [0, 1] or 0..255 inputs on
  512 images, scoring 10,000 images, saving); a small model 10 s, most of it TensorFlow starting.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lib.data import paths
from lib.execution import process
from lib.store import bundles, runs, workspaces

IMPORT_MEMORY_MB = 3584
IMPORT_TIME_LIMIT_S = 300.0
# Nothing to save when an import is stopped: the child is ended at once (stop_grace_s 0).
IMPORT_LIMITS = process.ChildLimits(memory_mb=IMPORT_MEMORY_MB, time_limit_s=IMPORT_TIME_LIMIT_S, stop_grace_s=0)
IMPORT_TASK = "lib.execution.worker:import_file"
STAGING_DIR = "mnist-studio-imports"  # under the system's temporary folder, not in a workspace (not quota)
STALE_STAGED_S = 86_400  # a staged upload this old belongs to no live job (the server restarted)


@dataclass(frozen=True)
class ImportRequest:
    """One file to import: what a job holds instead of a TrainConfig (never the bytes: only a path)."""

    filename: str  # as the user knows it: messages and the run's name use it
    path: str  # the file to import: a staged copy of an upload, or the user's own file (CLI)
    nbytes: int  # held in the workspace quota while the import runs
    dataset: str | None = None  # a bare model is checked and scored on this dataset; None for a bundle
    name: str = ""  # the new run's display name ("" = from the file)
    staged: bool = True  # `path` is our copy: deleted once the job ends

    @property
    def display_name(self) -> str:
        return f"Import of {self.filename}"


@dataclass(frozen=True)
class ImportResult:
    """How an import ended, in the fields a job's summary shows (as lib.training.loop.TrainResult has them)."""

    status: str
    stop_reason: str
    test_accuracy: float | None
    test_loss: float | None
    scores: str | None  # "measured" here, or "claimed" by a bundle whose dataset is not here
    seconds: float
    samples_per_s: float | None = None
    precision: str | None = None


def stage_upload(data: bytes, filename: str, *, dataset: str | None = None, name: str = "") -> ImportRequest:
    """Keep an upload's bytes in a private temporary file until its import job has run."""
    folder = Path(tempfile.gettempdir()) / STAGING_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    _sweep_stale(folder)
    path = folder / f"{secrets.token_hex(8)}.upload"
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
        handle.write(data)
    return ImportRequest(filename=Path(filename).name or "upload", path=str(path), nbytes=len(data),
                         dataset=dataset, name=name)


def discard(request: ImportRequest) -> None:
    """Delete a staged upload (the user's own file is never touched)."""
    if request.staged:
        with contextlib.suppress(OSError):
            Path(request.path).unlink()


def run_import(request: ImportRequest, on_progress=None, should_stop=None, data_dir=None, runs_dir=None, *,
               limits: process.ChildLimits = IMPORT_LIMITS, current=None, quiet: bool = False):
    """Import `request` into `runs_dir` in a child process: (RunInfo, ImportResult), or an exception whose
    message is for the user (bundles.InvalidBundle, workspaces.QuotaExceeded, process.ChildFailed).

    The signature of a job manager's trainer, so an import is a job like a training.
    """
    runs_dir = Path(runs_dir) if runs_dir else paths.runs_dir()
    data_dir = Path(data_dir) if data_dir else paths.data_dir()
    bundles.check_import_file(Path(request.path), request.dataset, filename=request.filename)  # before a child starts
    payload = {"path": _absolute(request.path), "runs_dir": _absolute(runs_dir), "data_dir": _absolute(data_dir),
               "dataset": request.dataset, "filename": request.filename, "name": request.name}
    started = time.monotonic()
    result = workspaces.Workspace(runs_dir).store(request.nbytes, lambda folder: process.run_child(
        IMPORT_TASK, payload, limits=limits, what="import", should_stop=should_stop, quiet=quiet,
        crash_hint="The model may be too big for this app."), current=current)
    try:
        run = runs.get_run(str(result.get("run_id")), runs_dir)
    except (runs.RunNotFound, runs.DamagedRun) as problem:
        raise process.ChildFailed(f"The import ended, but its run cannot be read ({problem}).") from None
    meta = run.meta
    return run, ImportResult(status=str(meta.get("status")), stop_reason=str(meta.get("stop_reason") or ""),
                             test_accuracy=meta.get("test_accuracy"), test_loss=meta.get("test_loss"),
                             scores=meta.get("scores"), seconds=round(time.monotonic() - started, 1))


def import_file(path, runs_dir=None, *, dataset: str | None = None, data_dir=None,
                limits: process.ChildLimits = IMPORT_LIMITS, quiet: bool = True) -> runs.RunInfo:
    """A bundle or a bare .keras file from disk (the command line), imported in a child process."""
    path = Path(path)
    bundles.check_import_file(path, dataset)
    request = ImportRequest(filename=path.name, path=str(path), nbytes=path.stat().st_size, dataset=dataset,
                            staged=False)
    run, _ = run_import(request, data_dir=data_dir, runs_dir=runs_dir, limits=limits, quiet=quiet)
    return run


def _absolute(path) -> str:
    """The child starts in the project folder: a path relative to ours would point elsewhere there."""
    return str(Path(path).expanduser().resolve())


def _sweep_stale(folder: Path) -> None:
    now = time.time()
    for path in folder.glob("*.upload"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_STAGED_S:
                path.unlink()
