"""Exports on demand, outside the server's page runs.

A page asks for a run's exports (`ExportManager.request`) and polls `task`; one worker thread
makes them one run at a time, each in a child process (`python -m lib.models.exports`), so the
converters and runtimes never load into the server and a crash or a memory blow-up ends only the
child. What a child writes lands in the asking visitor's workspace under its disk quota
(`Workspace.store`: measured afterwards, taken back if it passes). Each visitor has at most one
export queued or running, and the queue is bounded, as for trainings (lib.execution.jobs).

Exports are cached per run (`cache_dir`): an own run's in its folder's `exports/`; a read-only run
(the bundled model, a gallery run, a shared link) is not the visitor's to write into, so its exports
go to the visitor's own workspace.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from lib.data import paths
from lib.i18n import N_, _
from lib.models import exports
from lib.store import runs, workspaces

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ACTIVE_STATES = (QUEUED, RUNNING)
READ_ONLY_EXPORTS = ".exports"  # in a workspace: the exports of runs it may read but not change
CHILD_TIMEOUT_S = 600  # the zoo's largest model exports and checks in well under a minute
MAX_QUEUE = 8  # requests waiting behind the running one, all visitors together
ENDED_KEPT = 100  # ended requests remembered (their failures are shown until asked again)
OVERHEAD_BYTES = 1024 * 1024  # the checks' JSON and the SavedModel's graph around the weights
BUSY_POLL_S = 1.0  # how often a waiting export looks again whether the training has ended


class ExportRefused(RuntimeError):
    """A request was not queued: the visitor has one under way or the queue is full."""


@dataclass
class ExportTask:
    key: str  # the cache folder, as a string: one request per folder at a time
    visitor: str
    state: str = QUEUED
    error: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    position: int = 0  # place in the queue, 1 = next
    behind_training: bool = False  # next, but waiting for a training process to end (a shared server)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def describe(self) -> str:
        if self.state == QUEUED and self.behind_training:
            return _("Next, once the training that is running on this shared app has finished (one at a time).")
        if self.state == QUEUED:
            return _("Queued: position {position} (one export is made at a time on this machine).").format(
                position=self.position)
        if self.state == RUNNING:
            return _("Converting and checking each format against Keras… {seconds:.0f} s (usually 10-30 s)").format(
                seconds=time.time() - (self.started or time.time()))
        if self.state == FAILED:
            return _("Failed: {error}").format(error=self.error)
        return _("Done.")


# Why an export was not made: English (the logs), marked for the catalog and shown translated on the page
# (lib.i18n.translate_filled); an error quoted in brackets stays as it is.
TIMED_OUT = N_("Making the exports took longer than {minutes:.0f} minutes and was stopped. Try again when the app is "
               "less busy.")
ENDED_UNEXPECTEDLY = N_("The export process ended unexpectedly (exit code {code}; most likely it ran out of memory). "
                        "Try again later, or download the .keras file.")
FAILED_UNEXPECTEDLY = N_("Exporting failed unexpectedly ({error}).")


def cache_dir(run: runs.RunInfo, workspace: workspaces.Workspace) -> Path:
    """Where `run`'s exports are cached for a visitor of `workspace`: its own run's `exports/` folder,
    or for a read-only run a folder in the visitor's workspace named by the model's digest."""
    if not run.read_only:
        return exports.export_dir(run.path)
    return workspace.folder / READ_ONLY_EXPORTS / exports.model_digest(run.model_path)[:32]


def run_child(request: str, *, timeout: float = CHILD_TIMEOUT_S) -> None:
    """Make and check exports in a child process (lib.models.exports.main); ExportFailed says why not."""
    try:
        result = subprocess.run([sys.executable, "-m", "lib.models.exports", request], cwd=paths.PROJECT_DIR,
                                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise exports.ExportFailed(TIMED_OUT.format(minutes=timeout / 60)) from None
    if result.returncode != 0:
        said = [line[len("error: "):] for line in result.stderr.splitlines() if line.startswith("error: ")]
        raise exports.ExportFailed(said[-1] if said else (
            ENDED_UNEXPECTEDLY.format(code=result.returncode)))


def export_run(run: runs.RunInfo, workspace: workspaces.Workspace, formats=tuple(exports.FORMATS), *,
               data_dir=None, runner=run_child) -> dict[str, exports.ExportCheck]:
    """Make and check `run`'s exports now (in a child process), under `workspace`'s quota; the checks."""
    out_dir = cache_dir(run, workspace)
    request = exports.request_json(run.model_path, out_dir, exports.ModelFacts.of(run), formats,
                                   data_dir=data_dir or paths.data_dir(), uploads_dir=workspace.uploads_dir)

    def save(_folder: Path) -> Path:
        runner(request)
        return out_dir

    if run.read_only:
        out_dir.parent.mkdir(parents=True, exist_ok=True)  # the workspace's folder for read-only runs' exports
    estimate = int(1.5 * run.model_path.stat().st_size) + OVERHEAD_BYTES
    workspace.store(estimate, save)
    return exports.read_checks(out_dir, run.model_path)


class ExportManager:
    """Queue export requests and make them in one worker thread; thread-safe."""

    def __init__(self, *, data_dir=None, max_queue: int | None = MAX_QUEUE, runner=run_child, busy=None):
        """`busy`: a callable saying whether the next export must wait (a shared server: while a training
        process runs, so that its memory and an export's, ~0.9 GB each, never add up); None: never."""
        self.data_dir, self.max_queue, self._runner, self._busy = data_dir, max_queue, runner, busy
        self._tasks: dict[str, ExportTask] = {}
        self._work_items: dict[str, tuple[runs.RunInfo, workspaces.Workspace]] = {}
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="mnist-studio-exports", daemon=True)
        self._thread.start()

    def request(self, run: runs.RunInfo, workspace: workspaces.Workspace, visitor: str) -> str:
        """Queue the making of `run`'s exports for `visitor`; returns the task's key. ExportRefused when the
        visitor has another under way or the queue is full; asking again for one under way is no new task."""
        key = str(cache_dir(run, workspace))
        with self._lock:
            task = self._tasks.get(key)
            if task is not None and task.active:
                return key
            if any(other.active and other.visitor == visitor for other in self._tasks.values()):
                raise ExportRefused(_("You already have exports being made; each visitor makes one at a time. "
                                      "Wait for them to finish."))
            waiting = sum(1 for other in self._tasks.values() if other.state == QUEUED)
            if self.max_queue is not None and waiting >= self.max_queue:
                raise ExportRefused(_("{waiting} exports are already waiting on this shared app. Try again in a "
                                      "minute.").format(waiting=waiting))
            self._tasks.pop(key, None)
            self._tasks[key] = ExportTask(key, visitor)
            self._work_items[key] = (run, workspace)
            self._renumber()
        self._queue.put(key)
        return key

    def task(self, key: str | Path) -> ExportTask | None:
        """A copy of the request for this cache folder (None if none was made or it was forgotten)."""
        with self._lock:
            task = self._tasks.get(str(key))
            return replace(task) if task is not None else None

    def wait(self, key: str | Path, timeout: float = 600.0) -> ExportTask:
        """Block until a request has ended (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(key)
            if task is not None and not task.active:
                return task
            time.sleep(0.05)
        raise TimeoutError(f"the export {key} did not finish within {timeout} s")

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            while self._busy is not None and self._busy():
                self._set_waiting(key, True)
                time.sleep(BUSY_POLL_S)
            self._set_waiting(key, False)
            with self._lock:
                task = self._tasks.get(key)
                run, workspace = self._work_items.pop(key, (None, None))
                if task is None or task.state != QUEUED or run is None:
                    continue
                task.state, task.started = RUNNING, time.time()
                self._renumber()
            try:
                export_run(run, workspace, data_dir=self.data_dir, runner=self._runner)
                state, error = DONE, ""
            except (exports.ExportFailed, workspaces.QuotaExceeded, OSError, ValueError) as problem:
                state, error = FAILED, str(problem)
            except Exception as problem:  # noqa: BLE001 - the worker must survive any request
                traceback.print_exc()
                state, error = FAILED, FAILED_UNEXPECTEDLY.format(error=f"{type(problem).__name__}: {problem}")
            with self._lock:
                task.state, task.error, task.ended = state, error, time.time()
                self._forget_old()

    def _set_waiting(self, key: str, waiting: bool) -> None:
        with self._lock:
            task = self._tasks.get(key)
            if task is not None:
                task.behind_training = waiting

    def _renumber(self) -> None:
        waiting = sorted((task for task in self._tasks.values() if task.state == QUEUED), key=lambda t: t.created)
        for place, task in enumerate(waiting, start=1):
            task.position = place

    def _forget_old(self) -> None:
        ended = sorted((task for task in self._tasks.values() if not task.active), key=lambda t: t.ended or 0)
        for task in ended[: max(len(ended) - ENDED_KEPT, 0)]:
            del self._tasks[task.key]
