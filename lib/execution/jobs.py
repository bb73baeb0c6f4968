"""Training jobs that outlive Streamlit script runs.

A click re-runs the page script and would kill a `fit` running inside it, so
training runs in worker threads owned by one process-wide `JobManager` (the app
keeps it in `st.cache_resource`). Workers never call Streamlit; pages poll
`snapshot()` and draw. By default one job trains at a time (the machine has few
cores and Community Cloud little memory); the others queue.

Memory stays bounded however many jobs a server has run: only the newest few
ended jobs are kept (per session and overall), and an ended job keeps a thinned
copy of its batch points (its run folder has the full epoch history). A manager
may also cap each session's active jobs and the queue length; `submit` checks
and enqueues under one lock, so two quick clicks cannot both slip through.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass, field, replace

from lib.data import datasets
from lib.execution import pipeline
from lib.store import workspaces

QUEUED, RUNNING = "queued", "running"
WAITING = "waiting"  # a chained job: joins the queue once the job before it has ended
FINISHED, STOPPED, FAILED, CANCELLED = "finished", "stopped", "failed", "cancelled"
DIVERGED = "diverged"  # trained, but the loss exploded: saved with the cause and the fix
ACTIVE_STATES = (WAITING, QUEUED, RUNNING)
CAPPED_STATES = (QUEUED, RUNNING)  # what the per-session cap counts: a waiting job holds no place
ENDED_PER_SESSION = 5  # a session's newest ended jobs kept for its panels; older ones are dropped
ENDED_TOTAL = 100  # ended jobs kept over all sessions
ENDED_BATCH_POINTS = 200  # an ended job's live chart keeps this many batch points (evenly thinned)


class SubmitRefused(RuntimeError):
    """A job was not queued: the session has too many active jobs or the queue is full."""


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
    after: str | None = None  # WAITING: the job whose end puts this one into the queue
    runs_dir: object = None  # where the run is saved; None: the default runs dir
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def _default_trainer(config, on_progress, should_stop, data_dir, runs_dir):
    return pipeline.train_and_save(
        config, data_dir=data_dir, runs_dir=runs_dir, on_progress=on_progress, should_stop=should_stop
    )


class TrainingFailed(RuntimeError):
    """A training in a child process failed; the message is already meant for the user."""


@dataclass(frozen=True)
class ChildRun:
    run_id: str


@dataclass(frozen=True)
class ChildResult:
    status: str
    stop_reason: str
    test_accuracy: float | None
    test_loss: float | None
    seconds: float
    samples_per_s: float
    precision: str


def process_trainer(config, on_progress, should_stop, data_dir, runs_dir):
    """Train in a fresh child process: whatever TensorFlow keeps per training dies with it.

    One long-lived process that trains again and again grows ~8-10 MB per training
    (graph functions and allocator state TensorFlow never hands back, even after
    keras.backend.clear_session()); a shared server must not. Progress events and the
    result come back through a queue, a stop request goes through an event.
    """
    context = multiprocessing.get_context("spawn")  # forking a process that runs TensorFlow threads is unsafe
    events, stop = context.Queue(), context.Event()
    child = context.Process(target=_child_train, args=(config, data_dir, runs_dir, events, stop),
                            name="mnist-studio-training", daemon=True)
    _start_without_main(child)
    outcome = None
    while outcome is None:
        if should_stop():
            stop.set()
        exited = not child.is_alive()  # checked first: what it sent before exiting is still read below
        try:
            event = events.get(timeout=0.2)
        except queue.Empty:
            if exited:
                break
            continue
        if event.get("kind") == "_outcome":
            outcome = event
        else:
            on_progress(event)
    child.join(timeout=30)
    if outcome is None:
        raise TrainingFailed(
            f"The training process ended unexpectedly (exit code {child.exitcode}; most likely it ran out of memory). "
            f"Try a smaller model, batch size or number of images."
        )
    if "error" in outcome:
        raise TrainingFailed(outcome["error"])
    return ChildRun(outcome["run_id"]), ChildResult(**outcome["result"])


_SPAWN_LOCK = threading.Lock()


def _start_without_main(child) -> None:
    """Start a spawned child without re-running the parent's `__main__` in it.

    Under Streamlit (and AppTest) `__main__` can be a page script; spawn would run it
    again in the child. An empty stand-in for the instant of the start avoids that.
    """
    with _SPAWN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            child.start()
        finally:
            sys.modules["__main__"] = main


TRAINING_NICENESS = 10  # a training yields the CPU to the server's page runs (visitors clicking around)


def _child_train(config, data_dir, runs_dir, events, stop) -> None:
    """The child process: train, save, send the outcome (never a traceback) and exit.

    It runs at a lower CPU priority than the server: on a 2-core box a training would
    otherwise take the cores every visitor's page needs; idle cores still go to it.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.nice(TRAINING_NICENESS)
    try:
        run, result = _default_trainer(config, events.put, stop.is_set, data_dir, runs_dir)
        events.put({"kind": "_outcome", "run_id": run.run_id, "result": {
            "status": result.status, "stop_reason": result.stop_reason, "test_accuracy": result.test_accuracy,
            "test_loss": result.test_loss, "seconds": result.seconds, "samples_per_s": result.samples_per_s,
            "precision": result.precision}})
    except Exception as error:  # noqa: BLE001 - the parent reports it
        traceback.print_exc()
        events.put({"kind": "_outcome", "error": _user_message(error)})
    events.close()
    events.join_thread()


class JobManager:
    """Queue and run training jobs in worker threads; thread-safe."""

    def __init__(self, *, data_dir=None, runs_dir=None, workers: int = 1, trainer=_default_trainer,
                 max_active_per_session: int | None = None, max_queue: int | None = None,
                 ended_per_session: int = ENDED_PER_SESSION, ended_total: int = ENDED_TOTAL):
        self.data_dir, self.runs_dir = data_dir, runs_dir
        self._trainer = trainer
        self.max_active_per_session, self.max_queue = max_active_per_session, max_queue
        self._ended_per_session, self._ended_total = ended_per_session, ended_total
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

    def submit(self, config, session_id: str, *, runs_dir=None) -> str:
        """Queue a training job; returns its id. SubmitRefused (with a message) if a cap is reached.

        `runs_dir` is where this job's run is saved (a visitor's workspace); default the manager's.
        """
        with self._lock:
            problem = self._refusal(session_id)
            if problem:
                raise SubmitRefused(problem)
            job_id = f"job-{next(self._ids)}"
            self._jobs[job_id] = Job(job_id, session_id, config, runs_dir=runs_dir or self.runs_dir)
            self._renumber_queue()
        self._queue.put(job_id)
        return job_id

    def submit_chain(self, configs: list, session_id: str, *, runs_dir=None) -> list[str]:
        """Queue the first config and chain the rest: each joins the queue when the one before it ends.

        A lesson's pair of runs is one click, yet the session holds one place in the
        queue at a time, so the per-session cap still means one job queued or running.
        """
        first = self.submit(configs[0], session_id, runs_dir=runs_dir)
        ids = [first]
        with self._lock:
            for config in configs[1:]:
                job_id = f"job-{next(self._ids)}"
                self._jobs[job_id] = Job(job_id, session_id, config, state=WAITING, after=ids[-1],
                                         runs_dir=runs_dir or self.runs_dir)
                ids.append(job_id)
            head = self._jobs.get(first)
            if head is None or not head.active:  # it ended (or was forgotten) before the chain was made
                self._release_next(first)
        return ids

    def stop(self, job_id: str) -> None:
        """Ask a running job to stop after its current batch; a queued one is cancelled."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.stop_event.set()
            if job.state in (QUEUED, WAITING):
                job.state, job.ended = CANCELLED, time.time()
                self._release_next(job.job_id)
                self._renumber_queue()
                self._forget_old_jobs()

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

    def active_count(self, session_id: str) -> int:
        """Queued or running jobs of one session."""
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.session_id == session_id and job.active)

    def queue_length(self) -> int:
        """Jobs waiting behind the running ones."""
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.state == QUEUED)

    def job_count(self) -> int:
        """Jobs held in memory, active and ended (bounded: see ENDED_PER_SESSION, ENDED_TOTAL)."""
        with self._lock:
            return len(self._jobs)

    def active_jobs(self) -> list[Job]:
        """Queued and running jobs of every session (copies without the batch points)."""
        with self._lock:
            return [replace(job, batches=[]) for job in self._jobs.values() if job.active]

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
                job = self._jobs.get(job_id)  # a cancelled job may be forgotten already
                if job is None or job.state != QUEUED:
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
            run, result = self._trainer(job.config, on_progress, job.stop_event.is_set, self.data_dir, job.runs_dir)
        except Exception as error:  # noqa: BLE001 - the worker must survive any job
            traceback.print_exc()
            with self._lock:
                job.state, job.ended = FAILED, time.time()
                job.error = _user_message(error)
                self._end(job)
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
            self._end(job)

    def _refusal(self, session_id: str) -> str:
        """Why this session may not queue a job now ("" if it may); called under the lock."""
        if self.max_active_per_session is not None:
            active = sum(1 for job in self._jobs.values()
                         if job.session_id == session_id and job.state in CAPPED_STATES)
            if active >= self.max_active_per_session:
                return ("You already have a training queued or running; on this shared app each visitor trains "
                        f"{self.max_active_per_session} at a time. Wait for it to finish, or stop it.")
        if self.max_queue is not None:
            waiting = sum(1 for job in self._jobs.values() if job.state == QUEUED)
            if waiting >= self.max_queue:
                return (f"{waiting} trainings are already waiting on this shared app (the limit is "
                        f"{self.max_queue}). Try again in a few minutes.")
        return ""

    def _end(self, job: Job) -> None:
        """Called under the lock when a job has ended: thin its batch points, start its chained
        successor, forget old jobs."""
        job.batches = thin(job.batches, ENDED_BATCH_POINTS)
        self._release_next(job.job_id)
        self._forget_old_jobs()

    def _release_next(self, ended_id: str) -> None:
        """Called under the lock: the job chained after job `ended_id` joins the queue (at its end)."""
        for job in self._jobs.values():
            if job.state == WAITING and job.after == ended_id:
                job.state, job.created, job.after = QUEUED, time.time(), None
                self._renumber_queue()
                self._queue.put(job.job_id)

    def _forget_old_jobs(self) -> None:
        """Keep the newest ended jobs only: ended_per_session per session, ended_total overall."""
        ended = sorted((job for job in self._jobs.values() if not job.active), key=lambda job: job.ended or 0,
                       reverse=True)
        per_session: dict[str, int] = {}
        for rank, job in enumerate(ended):
            per_session[job.session_id] = per_session.get(job.session_id, 0) + 1
            if per_session[job.session_id] > self._ended_per_session or rank >= self._ended_total:
                del self._jobs[job.job_id]

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
    if job.state == WAITING:
        return "Waiting: joins the queue when the run before it ends."
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
def thin(points: list, most: int) -> list:
    """At most `most` points, evenly spaced, always keeping the last one."""
    if len(points) <= most:
        return points
    step = len(points) / most
    kept = [points[int(i * step)] for i in range(most - 1)]
    return [*kept, points[-1]]


def _user_message(error: Exception) -> str:
    """What went wrong, in the words of the exception lib raised on purpose."""
    known = (datasets.DatasetUnavailable, datasets.InvalidDataset, ValueError, MemoryError, TrainingFailed,
             workspaces.QuotaExceeded)
    if isinstance(error, known):
        return str(error)
    return f"Training failed unexpectedly ({type(error).__name__}: {error}). Try again, or a smaller model or batch size."


def manager_for(active) -> JobManager:
    """The job manager a profile (lib.profile.Profile) calls for: today's in `local`; in `public`
    each training in its own process, under the workspace quota, with the per-visitor and queue caps."""
    if not active.public:
        return JobManager()
    return JobManager(
        trainer=workspaces.quota_guarded(process_trainer, current=active),
        max_active_per_session=active.limits.max_active_jobs_per_visitor,
        max_queue=active.limits.max_queue,
    )
