"""Training and import jobs that outlive Streamlit script runs.

A click re-runs the page script and would kill a `fit` running inside it, so
training runs in worker threads owned by one process-wide `JobManager` (the app
keeps it in `st.cache_resource`). Workers never call Streamlit; pages poll
`snapshot()` and draw. By default one job trains at a time (the machine has few
cores and Community Cloud little memory); the others queue. A model or run-bundle
import (lib.execution.imports) is a job too: it waits in the same queue and counts
in the same caps.

Memory stays bounded however many jobs a server has run: only the newest few
ended jobs are kept (per session and overall), and an ended job keeps a thinned
copy of its batch points (its run folder has the full epoch history). A manager
may also cap each session's active jobs and the queue length; `submit` checks
and enqueues under one lock, so two quick clicks cannot both slip through.

On a shared server each training runs in a child process of its own
(`process_trainer`, lib.execution.process): what TensorFlow keeps per training dies
with it, and a child that hangs or dies is ended and reported. `warm_trainer` does the
same with a spare child started ahead of time (at server start and after each training)
that has TensorFlow imported already: the next training's first batch comes ~12 s sooner.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from lib.execution import imports, pipeline, process
from lib.i18n import N_, _
from lib.store import bundles, workspaces

QUEUED, RUNNING = "queued", "running"
WAITING = "waiting"  # a chained job: joins the queue once the job before it has ended
FINISHED, STOPPED, FAILED, CANCELLED = "finished", "stopped", "failed", "cancelled"
DIVERGED = "diverged"  # trained, but the loss exploded: saved with the cause and the fix
ACTIVE_STATES = (WAITING, QUEUED, RUNNING)
# How a job that has ended is named (describe_state), marked for the catalog.
STATE_WORDS = {FINISHED: N_("Finished"), STOPPED: N_("Stopped"), FAILED: N_("Failed"), CANCELLED: N_("Cancelled"),
               DIVERGED: N_("Diverged")}
CAPPED_STATES = (QUEUED, RUNNING)  # what the per-session cap counts: a waiting job holds no place
ENDED_PER_SESSION = 5  # a session's newest ended jobs kept for its panels; older ones are dropped
ENDED_TOTAL = 100  # ended jobs kept over all sessions
ENDED_BATCH_POINTS = 200  # an ended job's live chart keeps this many batch points (evenly thinned)
TRAINING, IMPORT = "training", "import"  # what a job does (Job.kind)


class SubmitRefused(RuntimeError):
    """A job was not queued: the session has too many active jobs or the queue is full."""


@dataclass
class Job:
    job_id: str
    session_id: str
    config: object  # a lib.training.config.TrainConfig, or an imports.ImportRequest for an import
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
    where: str = ""  # "" on this machine; "cluster" for a Ray job (lib.execution.raycluster)
    ahead: int = 0  # a cluster job in the queue: jobs queued before it or running, over all servers
    note: str = ""  # why a cluster job waits although its turn has come (the cluster cannot be reached)
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def kind(self) -> str:
        return IMPORT if isinstance(self.config, imports.ImportRequest) else TRAINING


def _default_trainer(config, on_progress, should_stop, data_dir, runs_dir):
    return pipeline.train_and_save(
        config, data_dir=data_dir, runs_dir=runs_dir, on_progress=on_progress, should_stop=should_stop
    )


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


TRAINING_NICENESS = 10  # a training yields the CPU to the server's page runs (visitors clicking around)
# A training reports after every few batches; this long without a word, its process counts as hung.
# Generous: the slowest model the public limits admit scores 10,000 test images in a few minutes.
TRAINING_SILENCE_S = 1800.0
TRAINING_LIMITS = process.ChildLimits(niceness=TRAINING_NICENESS, silence_limit_s=TRAINING_SILENCE_S,
                                      stop_grace_s=60.0, exit_grace_s=10.0, kill_grace_s=5.0)
TRAIN_TASK = "lib.execution.worker:train"
TRAIN_PRELOAD = "lib.execution.worker:preload_training"


@dataclass(frozen=True)
class ChildTrainer:
    """Train in a fresh child process: whatever TensorFlow keeps per training dies with it.

    One long-lived process that trains again and again grows ~8-10 MB per training
    (graph functions and allocator state TensorFlow never hands back, even after
    keras.backend.clear_session()); a shared server must not. Progress events and the
    result come back as JSON lines, a stop request goes as a line; a child that dies,
    hangs or will not stop is ended and its job fails with the reason (lib.execution.process).
    """

    task: str = TRAIN_TASK  # "module:function" the child runs (tests name their own)
    limits: process.ChildLimits = TRAINING_LIMITS
    spare: process.Spare | None = None  # a child started ahead of time for the next training; None: none

    def __call__(self, config, on_progress, should_stop, data_dir, runs_dir):
        payload = {"config": config.to_dict(), "data_dir": _absolute(data_dir), "runs_dir": _absolute(runs_dir)}
        try:
            result = process.run_child(self.task, payload, limits=self.limits, what="training",
                                       on_event=on_progress, should_stop=should_stop, spare=self.spare,
                                       crash_hint="Try a smaller model, batch size or number of images.")
        finally:
            if self.spare is not None:  # this training's memory is back: warm up the next one's process
                self.spare.prepare()
        if not isinstance(result.get("run_id"), str):
            raise process.ChildFailed("The training process ended without saving a run.")
        fields = ("status", "stop_reason", "test_accuracy", "test_loss", "seconds", "samples_per_s", "precision")
        return ChildRun(result["run_id"]), ChildResult(**{name: result.get(name) for name in fields})


process_trainer = ChildTrainer()
warm_trainer = ChildTrainer(spare=process.Spare(TRAIN_PRELOAD, TRAINING_LIMITS))


def _absolute(path) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def wait_until_ended(snapshot, job_id: str, timeout: float) -> Job:
    """Poll `snapshot(job_id)` until the job has ended; TimeoutError past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = snapshot(job_id)
        if job is not None and not job.active:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"{job_id} did not finish within {timeout} s")


class JobManager:
    """Queue and run training and import jobs in worker threads; thread-safe."""

    def __init__(self, *, data_dir=None, runs_dir=None, workers: int = 1, trainer=_default_trainer,
                 importer=imports.run_import, max_active_per_session: int | None = None,
                 max_queue: int | None = None, ended_per_session: int = ENDED_PER_SESSION,
                 ended_total: int = ENDED_TOTAL):
        self.data_dir, self.runs_dir = data_dir, runs_dir
        self._trainer, self._importer = trainer, importer
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
        """Queue a training (a TrainConfig) or an import (an imports.ImportRequest); returns the job's id.
        SubmitRefused (with a message) if a cap is reached.

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
                _discard_upload(job)
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
        return wait_until_ended(self.snapshot, job_id, timeout)

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

        work = self._importer if job.kind == IMPORT else self._trainer
        try:
            run, result = work(job.config, on_progress, job.stop_event.is_set, self.data_dir, job.runs_dir)
        except Exception as error:  # noqa: BLE001 - the worker must survive any job
            traceback.print_exc()
            with self._lock:
                stopped = job.kind == IMPORT and job.stop_event.is_set()  # an import stops with nothing saved
                job.state, job.ended = CANCELLED if stopped else FAILED, time.time()
                job.error = process.user_message(error, job.kind)
                self._end(job)
            return
        with self._lock:
            job.run_id = run.run_id
            if job.kind == IMPORT:
                job.state = FINISHED  # whatever the imported run's own status says
            else:
                job.state = {"finished": FINISHED, "stopped": STOPPED, "diverged": DIVERGED}.get(result.status, FAILED)
            job.summary = {
                "status": result.status,
                "reason": result.stop_reason,
                "test_accuracy": result.test_accuracy,
                "test_loss": result.test_loss,
                "seconds": result.seconds,
                "samples_per_s": result.samples_per_s,
                "precision": result.precision,
                "scores": getattr(result, "scores", None),
            }
            if job.state == FAILED:
                job.error = result.stop_reason
            job.ended = time.time()
            self._end(job)

    def _refusal(self, session_id: str) -> str:
        """Why this session may not queue a job now ("" if it may); called under the lock."""
        if self.max_active_per_session is not None:
            active = [job for job in self._jobs.values() if job.session_id == session_id and job.state in CAPPED_STATES]
            if len(active) >= self.max_active_per_session:
                message = (_("You already have an import queued or running; on this shared app each visitor trains "
                             "or imports {count} at a time. Wait for it to finish, or stop it.")
                           if any(job.kind == IMPORT for job in active) else
                           _("You already have a training queued or running; on this shared app each visitor trains "
                             "or imports {count} at a time. Wait for it to finish, or stop it."))
                return message.format(count=self.max_active_per_session)
        if self.max_queue is not None:
            waiting = sum(1 for job in self._jobs.values() if job.state == QUEUED)
            if waiting >= self.max_queue:
                return _("{waiting} trainings are already waiting on this shared app (the limit is {limit}). Try "
                         "again in a few minutes.").format(waiting=waiting, limit=self.max_queue)
        return ""

    def _end(self, job: Job) -> None:
        """Called under the lock when a job has ended: thin its batch points, start its chained
        successor, forget old jobs."""
        job.batches = thin(job.batches, ENDED_BATCH_POINTS)
        _discard_upload(job)
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
    if job.kind == IMPORT:
        return 0.0 if job.active else 1.0  # one step: nothing to report on the way
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
    if job.state == QUEUED and job.where:  # the cluster, the one place besides this machine
        queued = (_("Queued on the cluster, {count} job ahead of yours.") if job.ahead == 1 else
                  _("Queued on the cluster, {count} jobs ahead of yours.")).format(count=job.ahead)
        return queued + (" " + _(job.note) if job.note else "")
    if job.state == QUEUED:
        return (_("Queued: position {position} (one import runs at a time on this machine).") if job.kind == IMPORT
                else _("Queued: position {position} (one training runs at a time on this machine).")).format(
            position=job.position)
    if job.state == WAITING:
        return _("Waiting: joins the queue when the run before it ends.")
    if job.state == RUNNING and job.kind == IMPORT:
        return (_("Importing on the cluster: checking the file, loading it in safe mode and scoring it on the test "
                  "set…") if job.where else
                _("Importing: checking the file, loading it in safe mode and scoring it on the test set…"))
    if job.state == RUNNING:
        last = job.last or {}
        if last.get("kind") == "end":
            return _("Scored on the test set; saving the run…")
        cluster, since = bool(job.where), _since(job.started)
        if last.get("kind") in ("batch", "epoch"):
            running = _("Running on the cluster: epoch {epoch}/{epochs} · {done:.0%}") if cluster else \
                _("Running: epoch {epoch}/{epochs} · {done:.0%}")
            return running.format(epoch=last["epoch"], epochs=last.get("epochs", job.config.epochs),
                                  done=job_fraction(job))
        if last.get("kind") == "phase":
            starting = _("Starting on the cluster: {phase}… ({since})") if cluster else _("Starting: {phase}… ({since})")
            return starting.format(phase=_(last["phase"]), since=since)
        if last.get("kind") == "start":
            return (_("Starting on the cluster: compiling the model for its first batch… ({since})") if cluster else
                    _("Starting: compiling the model for its first batch… ({since})")).format(since=since)
        return (_("Starting: starting the job on the cluster (its code and environment first)… ({since})") if cluster
                else _("Starting: starting the training process… ({since})")).format(since=since)
    if job.state == FAILED:
        return _("Failed: {error}").format(error=job.error)
    if job.state == DIVERGED:
        return _("Diverged: the loss exploded instead of falling; the run says why and what to change.")
    if job.state == CANCELLED:
        return _("Cancelled: {reason}").format(reason=job.error) if job.error else _("Cancelled before it started.")
    accuracy = job.summary.get("test_accuracy")
    score = " · " + _("test accuracy {accuracy:.2%}").format(accuracy=accuracy) \
        if isinstance(accuracy, (int, float)) else ""
    if job.kind == IMPORT:
        source = " " + _("(the bundle's claim: its dataset is not here to check it)") \
            if job.summary.get("scores") == bundles.CLAIMED else ""
        return _("Imported") + score + source
    return _(STATE_WORDS.get(job.state, job.state)) + score


def _since(started: float | None) -> str:
    """Seconds since a job started, as the start-up line shows them."""
    return f"{max(time.time() - (started or time.time()), 0):.0f} s"


def thin(points: list, most: int) -> list:
    """At most `most` points, evenly spaced, always keeping the last one."""
    if len(points) <= most:
        return points
    step = len(points) / most
    kept = [points[int(i * step)] for i in range(most - 1)]
    return [*kept, points[-1]]


def _discard_upload(job: Job) -> None:
    """An ended or cancelled import's staged upload is deleted (called under the lock: one unlink)."""
    if job.kind == IMPORT:
        imports.discard(job.config)


def manager_for(active) -> JobManager:
    """The job manager a profile (lib.profile.Profile) calls for: today's in `local` (imports in a child
    process); in `public` each training in its own process too (a spare one waiting with TensorFlow
    imported, unless MNIST_STUDIO_WARM_WORKER=0), trainings and imports under the workspace quota,
    with the per-visitor and queue caps."""
    if not active.public:
        return JobManager()
    trainer = process_trainer
    if active.limits.warm_worker:
        trainer = warm_trainer
        trainer.spare.prepare()  # the server's start: the first visitor's training finds it ready
    return JobManager(
        trainer=workspaces.quota_guarded(trainer, current=active),
        importer=functools.partial(imports.run_import, current=active),
        max_active_per_session=active.limits.max_active_jobs_per_visitor,
        max_queue=active.limits.max_queue,
    )
