"""Training jobs that outlive Streamlit script runs.

A click re-runs the page script and would kill a `fit` running inside it, so
training runs in worker threads owned by one process-wide `JobManager` (the app
keeps it in `st.cache_resource`). Workers never call Streamlit; pages poll
`snapshot()` and draw. By default one job trains at a time (the machine has few
cores and Community Cloud little memory); the others queue.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field, replace

QUEUED, RUNNING = "queued", "running"
FINISHED, STOPPED, FAILED, CANCELLED = "finished", "stopped", "failed", "cancelled"
DIVERGED = "diverged"  # trained, but the loss exploded: saved with the cause and the fix
ACTIVE_STATES = (QUEUED, RUNNING)


@dataclass
class Job:
    job_id: str
    session_id: str
    config: object  # lib.training.TrainConfig
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    batches: list = field(default_factory=list)  # per-batch progress events
    epochs: list = field(default_factory=list)  # per-epoch progress events
    last: dict = field(default_factory=dict)  # latest batch or epoch event
    run_id: str | None = None
    summary: dict = field(default_factory=dict)  # status, reason, test scores
    error: str = ""
    position: int = 0  # place in the queue, 1 = next; 0 when not queued
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def _default_trainer(config, on_progress, should_stop, data_dir, runs_dir):
    from lib import training

    return training.train_and_save(
        config, data_dir=data_dir, runs_dir=runs_dir, on_progress=on_progress, should_stop=should_stop
    )


class JobManager:
    """Queue and run training jobs in worker threads; thread-safe."""

    def __init__(self, *, data_dir=None, runs_dir=None, workers: int = 1, trainer=_default_trainer):
        self.data_dir, self.runs_dir = data_dir, runs_dir
        self._trainer = trainer
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._threads = [
            threading.Thread(target=self._work, name=f"mnist-studio-trainer-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, config, session_id: str) -> str:
        """Queue a training job; returns its id."""
        with self._lock:
            job_id = f"job-{next(self._ids)}"
            self._jobs[job_id] = Job(job_id, session_id, config)
            self._renumber_queue()
        self._queue.put(job_id)
        return job_id

    def stop(self, job_id: str) -> None:
        """Ask a running job to stop after its current batch; a queued one is cancelled."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.stop_event.set()
            if job.state == QUEUED:
                job.state, job.ended = CANCELLED, time.time()
                self._renumber_queue()

    def snapshot(self, job_id: str) -> Job | None:
        """A consistent copy of a job that the caller may read freely."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return replace(job, batches=list(job.batches), epochs=list(job.epochs), last=dict(job.last),
                           summary=dict(job.summary))

    def jobs_for(self, session_id: str) -> list[Job]:
        """This session's jobs, newest first (copies without the batch points)."""
        with self._lock:
            mine = [job for job in self._jobs.values() if job.session_id == session_id]
            return [replace(job, batches=[], epochs=list(job.epochs), last=dict(job.last)) for job in reversed(mine)]

    def running(self) -> list[Job]:
        with self._lock:
            return [replace(job, batches=[]) for job in self._jobs.values() if job.state == RUNNING]

    def wait(self, job_id: str, timeout: float = 600.0) -> Job:
        """Block until a job ends (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.snapshot(job_id)
            if job is not None and not job.active:
                return job
            time.sleep(0.05)
        raise TimeoutError(f"{job_id} did not finish within {timeout} s")

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            with self._lock:
                job = self._jobs[job_id]
                if job.state != QUEUED:
                    continue
                job.state, job.started = RUNNING, time.time()
                self._renumber_queue()
            self._run(job)

    def _run(self, job: Job) -> None:
        def on_progress(event: dict) -> None:
            with self._lock:
                if event.get("kind") == "batch":
                    job.batches.append(event)
                elif event.get("kind") == "epoch":
                    job.epochs.append(event)
                job.last = event

        try:
            run, result = self._trainer(job.config, on_progress, job.stop_event.is_set, self.data_dir, self.runs_dir)
        except Exception as error:  # noqa: BLE001 - the worker must survive any job
            traceback.print_exc()
            with self._lock:
                job.state, job.ended = FAILED, time.time()
                job.error = _user_message(error)
            return
        with self._lock:
            job.run_id = run.run_id
            job.state = {"finished": FINISHED, "stopped": STOPPED, "diverged": DIVERGED}.get(result.status, FAILED)
            job.summary = {
                "status": result.status,
                "reason": result.stop_reason,
                "test_accuracy": result.test_accuracy,
                "test_loss": result.test_loss,
                "seconds": result.seconds,
                "samples_per_s": result.samples_per_s,
                "precision": result.precision,
            }
            if job.state == FAILED:
                job.error = result.stop_reason
            job.ended = time.time()

    def _renumber_queue(self) -> None:
        waiting = sorted((job for job in self._jobs.values() if job.state == QUEUED), key=lambda job: job.created)
        for place, job in enumerate(waiting, start=1):
            job.position = place
        for job in self._jobs.values():
            if job.state != QUEUED:
                job.position = 0


def job_fraction(job: Job) -> float:
    """Share of the planned training done, 0..1 (the last batch of an epoch can overshoot)."""
    last = job.last or {}
    epochs = last.get("epochs") or job.config.epochs
    if last.get("kind") == "batch":
        done = (last["epoch"] - 1 + last["step"] / last["steps"]) / epochs
    elif last.get("kind") == "epoch":
        done = last["epoch"] / epochs
    else:
        done = 1.0 if last.get("kind") == "end" else 0.0
    return min(max(done, 0.0), 1.0)


def describe_state(job: Job) -> str:
    """One line on where a job is: queue position, epoch and share done, or how it ended."""
    if job.state == QUEUED:
        return f"Queued: position {job.position} (one training runs at a time on this machine)."
    if job.state == RUNNING:
        last = job.last or {}
        if last.get("kind") == "end":
            return "Scored on the test set; saving the run…"
        if last.get("kind") in ("batch", "epoch"):
            return f"Running: epoch {last['epoch']}/{last.get('epochs', job.config.epochs)} · {job_fraction(job):.0%}"
        return "Starting: loading data and building the model…"
    if job.state == FAILED:
        return f"Failed: {job.error}"
    if job.state == DIVERGED:
        return "Diverged: the loss exploded instead of falling; the run says why and what to change."
    if job.state == CANCELLED:
        return "Cancelled before it started."
    accuracy = job.summary.get("test_accuracy")
    score = f" · test accuracy {accuracy:.2%}" if accuracy is not None else ""
    return f"{job.state.capitalize()}{score}"


def _user_message(error: Exception) -> str:
    """What went wrong, in the words of the exception lib raised on purpose."""
    from lib import datasets

    known = (datasets.DatasetUnavailable, datasets.InvalidDataset, ValueError, MemoryError)
    if isinstance(error, known):
        return str(error)
    return f"Training failed unexpectedly ({type(error).__name__}: {error}). Try again, or a smaller model or batch size."
