"""Trainings and model imports as Ray jobs on a cluster (Ray Jobs API), switched on by MNIST_STUDIO_RAY_ADDRESS.

`ClusterJobManager` has the job manager's interface (lib.execution.jobs.JobManager: submit, stop,
snapshot, jobs_for, ...), so pages follow a cluster training exactly like a local one. What differs:

- **The store is the job board.** Each job is a record `.jobs/<id>.json` on the run store
  (MNIST_STUDIO_STORE): its kind ("training" or "import"), its config (an import's filename, dataset,
  name and size: never this server's path), workspace, state and Ray submission id. A restarted app server
  reads the board and finds every waiting, queued and running job again; other app servers sharing
  the store count in the same limits (per-visitor active jobs, queue length) and dispatch from it.
- **The queue is ours, the work is Ray's.** A queued job is submitted, oldest first, once fewer than
  `max_running` of the board's jobs run and it holds one of the `max_running` places on the board
  (`.jobs/places/`, taken with a conditional write: the limit holds when servers dispatch at once): `python -m lib.execution.clusterjob <id>` with the
  project's code as the job's working directory and `entrypoint_num_cpus` / `entrypoint_num_gpus` /
  `entrypoint_memory` declared (an import: its child's memory cap). Queue order holds whatever Ray's scheduler does with pending jobs.
- **Progress comes back through the store**: the job writes `.jobs/progress/<id>.json` about once a
  second and `.jobs/result/<id>.json` at its end; the app reads those and the job's status, never
  its logs while it runs. A job that fails without a result is described by Ray's message and the
  last line of its log (no traceback reaches the page).
- **Imports** (a `.studio.zip` bundle or a bare `.keras` model) queue with the trainings, under the
  same caps: submit puts the staged upload on the store (`.jobs/uploads/<id>.upload`; a node cannot read
  this server's temporary folder) and deletes the staged copy; the job imports it as this server would
  (a child process under imports.IMPORT_LIMITS) and the upload object is deleted when the job ends. An
  upload orphaned by a server that died before writing its record is swept where old jobs are forgotten
  (`_sweep_uploads`: no live record, older than UPLOAD_GRACE_S; at most once per SWEEP_EVERY_S).
- **Quotas.** On a public server a submit is refused with the local message when the workspace is over
  its quota or the run's estimate (an import: its size) would take it over: the job saves elsewhere.
- **Stop** is `stop_job`: a training gets SIGTERM and saves the model so far as a stopped run; an
  import ends with nothing saved (cancelled), as here.
- **A vanished cluster** (it forgot the job, or cannot be reached for `VANISHED_AFTER_S`) fails the
  job with a message; queued jobs wait and say why.

Ray is imported only when a manager is made with the setting on (`RayJobs`): without it the app
never loads Ray. The local manager it wraps holds no job of ours; its active jobs still count in the cap.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
import traceback
import uuid
from dataclasses import replace
from pathlib import Path

from lib.data import catalog, datasets, paths
from lib.execution import clusterjob, imports, jobs, process
from lib.i18n import N_
from lib.store import backend, profile, workspaces
from lib.training.config import TrainConfig

ADDRESS_ENV = "MNIST_STUDIO_RAY_ADDRESS"  # the cluster's dashboard, e.g. http://127.0.0.1:8265
MAX_RUNNING_ENV = "MNIST_STUDIO_RAY_MAX_RUNNING"  # trainings on the cluster at once (all servers)
CPUS_ENV = "MNIST_STUDIO_RAY_CPUS"  # CPUs a training declares (entrypoint_num_cpus)
GPUS_ENV = "MNIST_STUDIO_RAY_GPUS"  # GPUs a training declares (entrypoint_num_gpus); 0: none
MEMORY_ENV = "MNIST_STUDIO_RAY_MEMORY_MB"  # MiB of memory a training declares (entrypoint_memory); 0: none
# A training's default: bench/RESULTS.md measured a peak RSS of 1,249 MB for a full-MNIST epoch (target 1,500).
TRAINING_MEMORY_MB = 1536
MIB = 1024 * 1024
DATA_DIR_ENV = "MNIST_STUDIO_RAY_DATA_DIR"  # where the cluster's nodes find mnist.npz; default the app's
POLL_S = 0.5  # a running job's progress object is read this often (the pages poll every second)
STATUS_EVERY_S = 2.0  # and its status on the cluster this often
LIST_EVERY_S = 10.0  # the whole board is re-listed this often (jobs of other servers)
VANISHED_AFTER_S = 60.0  # a cluster unreachable this long has lost its running jobs
STOP_RETRY_S = 30.0  # a running job asked to stop is asked again this often until it ends
STOP_WAIT_S = 120  # after stop_job, time the job has to save the model so far (RAY_JOB_STOP_WAIT_TIME_S)
SWEEP_EVERY_S = 600.0  # orphaned uploads are looked for at most this often per server (one listing call)
# An upload with no job record this old is orphaned (its server died between putting it and writing the
# record). Generous: S3 dates a multipart upload by its start, and the store's clock is not this server's.
UPLOAD_GRACE_S = 3600.0
WORKING_DIR_EXCLUDES = [".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", "/runs", "/data", "/tests",
                        "/bench", "/docs", "/models"]  # code only: lib/ (and the small top-level files)
ENTRYPOINT = "python -m lib.execution.clusterjob"
PLACES_PREFIX = f"{backend.JOBS_PREFIX}/places"  # <place>-<generation>.json: which job holds each running place
TAKEN, FULL, MOVED = "taken", "full", "moved"  # what asking for a place answers
CLUSTER = "cluster"  # Job.where


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    address: str
    max_running: int = 2
    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int = TRAINING_MEMORY_MB  # a training's; an import declares its child's cap (IMPORT_MEMORY_MB)
    data_dir: str | None = None


def settings(environ=None) -> ClusterSettings | None:
    """The cluster settings, or None when MNIST_STUDIO_RAY_ADDRESS is not set (trainings stay here).
    profile.SettingError names a setting that cannot be used."""
    environ = os.environ if environ is None else environ
    address = (environ.get(ADDRESS_ENV) or "").strip()
    if not address:
        return None

    def number(name, kind, default, least):
        raw = (environ.get(name) or "").strip()
        try:
            value = kind(raw) if raw else default
        except ValueError:
            value = least - 1
        if value < least:
            raise profile.SettingError(f"{name} must be a number of at least {least}, not {raw!r}.")
        return value

    return ClusterSettings(address=address if "://" in address else f"http://{address}",
                           max_running=number(MAX_RUNNING_ENV, int, 2, 1), cpus=number(CPUS_ENV, float, 1.0, 0),
                           gpus=number(GPUS_ENV, float, 0.0, 0),
                           memory_mb=number(MEMORY_ENV, int, TRAINING_MEMORY_MB, 0),
                           data_dir=(environ.get(DATA_DIR_ENV) or environ.get(paths.DATA_DIR_ENV) or None))


class ClusterGone(RuntimeError):
    """The cluster does not know a job (it was restarted or replaced)."""


class RayJobs:
    """The few Jobs API calls we make; the client is made (and Ray imported) on first use."""

    def __init__(self, address: str):
        self.address = address
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from ray.job_submission import JobSubmissionClient  # only with the setting on

            self._client = JobSubmissionClient(self.address)  # asks the cluster for its version: may raise
        return self._client

    def connect(self) -> None:
        """Make the client now (Ray's import, the cluster's version check); raises if it cannot be reached."""
        self.client  # noqa: B018 - the property makes it

    def submit(self, submission_id: str, entrypoint: str, runtime_env: dict, cpus: float, gpus: float,
               memory_mb: int, metadata: dict) -> None:
        try:
            self.client.submit_job(entrypoint=entrypoint, submission_id=submission_id, runtime_env=runtime_env,
                                   entrypoint_num_cpus=cpus, entrypoint_num_gpus=gpus or None,
                                   entrypoint_memory=memory_mb * MIB or None, metadata=metadata)
        except RuntimeError as error:
            if "already exists" not in str(error):  # submitted before a restart: it is on its way
                raise

    def status(self, submission_id: str) -> tuple[str, str]:
        """(Ray's status name, its message); ClusterGone when the cluster does not know the job."""
        try:
            info = self.client.get_job_info(submission_id)
        except RuntimeError as error:
            if re.search(r"\b404\b", str(error)) or "does not exist" in str(error):  # not digits of a job id
                raise ClusterGone(str(error)) from None
            raise
        return str(getattr(info.status, "value", info.status)), info.message or ""

    def stop(self, submission_id: str) -> None:
        self.client.stop_job(submission_id)

    def log_tail(self, submission_id: str) -> str:
        """The last meaningful line of a failed job's log (called once, when it has failed)."""
        try:
            logs = self.client.get_job_logs(submission_id)
        except (RuntimeError, OSError):
            return ""
        lines = [line.strip() for line in logs.splitlines() if line.strip()]
        for line in reversed(lines):
            if not line.startswith(("File ", "Traceback", "^", "~", "During handling", "The above exception")):
                return line[:300]
        return ""


def runtime_env(cluster: ClusterSettings, stop_wait_s: int = STOP_WAIT_S) -> dict:
    """The job's environment: this project's code as its working directory, the store it writes to.

    Credentials are not sent (a job's environment shows on the Ray dashboard): the cluster's
    nodes hold their own (an instance role, or AWS_* variables where `ray start` runs).
    """
    env = {backend.STORE_ENV: backend.store_url() or str(paths.runs_dir().resolve()),
           "RAY_JOB_STOP_WAIT_TIME_S": str(stop_wait_s), "PYTHONUNBUFFERED": "1"}
    if os.environ.get(backend.ENDPOINT_ENV):
        env[backend.ENDPOINT_ENV] = os.environ[backend.ENDPOINT_ENV]
    if cluster.data_dir:
        env[paths.DATA_DIR_ENV] = cluster.data_dir
    return {"working_dir": str(paths.PROJECT_DIR), "excludes": list(WORKING_DIR_EXCLUDES), "env_vars": env}


class ClusterJobManager:
    """The job manager's interface over a Ray cluster and the store's job board; thread-safe.

    Trainings and imports (an ImportRequest) go to the cluster; `local` (a JobManager of this server)
    only counts in the per-visitor cap and answers for jobs it holds (none of ours).
    """

    def __init__(self, cluster: ClusterSettings, *, local: jobs.JobManager | None = None,
                 current: profile.Profile | None = None, max_active_per_session: int | None = None,
                 max_queue: int | None = None, data_dir=None, ray_jobs: RayJobs | None = None,
                 poll_s: float = POLL_S, vanished_after_s: float = VANISHED_AFTER_S,
                 sweep_every_s: float = SWEEP_EVERY_S, upload_grace_s: float = UPLOAD_GRACE_S):
        self.cluster = cluster
        self.local = local or jobs.JobManager()
        self.profile = current
        self.max_active_per_session, self.max_queue = max_active_per_session, max_queue
        self.data_dir = data_dir
        self.ray = ray_jobs or RayJobs(cluster.address)
        self.problem = ""  # the cluster's last failure, in words ("" while it answers)
        self._poll_s, self._vanished_after_s = poll_s, vanished_after_s
        self._sweep_every_s, self._upload_grace_s = sweep_every_s, upload_grace_s
        self._swept: float | None = None  # when orphaned uploads were last looked for (monotonic)
        self._store = backend.current()
        self._jobs: dict[str, jobs.Job] = {}
        self._unreachable_since: float | None = None
        self._stop_asked: dict[str, float] = {}  # job id -> when stop_job was last sent (monotonic)
        self._status_read: dict[str, float] = {}  # job id -> when its status was last asked (monotonic)
        self._listed = 0.0
        self._places_full_at: float | None = None  # when every place was last found held (monotonic)
        self._lock = threading.Lock()  # the jobs in memory
        self._board_lock = threading.Lock()  # one thread at a time follows the cluster
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._load_board()
        self._thread = threading.Thread(target=self._follow_loop, name="mnist-studio-cluster", daemon=True)
        self._thread.start()

    # -- the job manager's interface --------------------------------------------------------------------
    def submit(self, config, session_id: str, *, runs_dir=None) -> str:
        if isinstance(config, imports.ImportRequest):
            return self._submit_import(config, session_id, runs_dir)
        return self.submit_chain([config], session_id, runs_dir=runs_dir)[0]

    def submit_chain(self, configs: list, session_id: str, *, runs_dir=None) -> list[str]:
        """Queue the first training and chain the rest (each queues when the one before ends)."""
        self._workspace(runs_dir)  # a folder the store mirrors, or ValueError now
        for config in configs:
            problem = self._budget_problem(config, runs_dir)
            if problem:
                raise jobs.SubmitRefused(problem)
        problem = self._disk_problem(configs, runs_dir)
        if problem:
            raise jobs.SubmitRefused(problem)
        ids = []
        with self._lock:
            problem = self._refusal(session_id)
            if problem:
                raise jobs.SubmitRefused(problem)
            now = time.time()
            for n, config in enumerate(configs):
                job = jobs.Job(_new_id(), session_id, config, created=now + n * 1e-6,
                               state=jobs.QUEUED if n == 0 else jobs.WAITING, after=ids[-1] if ids else None,
                               runs_dir=runs_dir, where=CLUSTER)
                self._jobs[job.job_id] = job
                ids.append(job.job_id)
            self._renumber()
        for job_id in ids:
            self._save(self._jobs[job_id])
        self._wake.set()
        return ids

    def _submit_import(self, request: imports.ImportRequest, session_id: str, runs_dir) -> str:
        """Put the staged upload on the store (a cluster node cannot read this server's temporary folder)
        and queue the import like a training; the staged copy is deleted once it is on the store."""
        self._workspace(runs_dir)
        problem = self._quota_problem(runs_dir, request.nbytes)  # as the local importer's Workspace.store
        if not problem:
            with self._lock:  # now, before a long upload; asked again after it (another tab may have won)
                problem = self._refusal(session_id)
        if problem:
            raise jobs.SubmitRefused(problem)
        job_id = _new_id()
        try:
            self._store.put_file(clusterjob.upload_key(job_id), Path(request.path))
        except OSError as error:  # a StoreError says what to do; a staged file gone is this server's fault
            raise jobs.SubmitRefused(str(error) if isinstance(error, backend.StoreError) else
                                     N_("{name} could not be read again ({error}); upload it again.").format(
                                         name=request.filename, error=_short(error))) from None
        imports.discard(request)
        job = jobs.Job(job_id, session_id, replace(request, path="", staged=False), runs_dir=runs_dir, where=CLUSTER)
        with self._lock:
            problem = self._refusal(session_id)
            if not problem:
                self._jobs[job_id] = job
                self._renumber()
        if problem:
            self._remove_upload(job_id)
            raise jobs.SubmitRefused(problem)
        self._save(job)
        self._wake.set()
        return job_id

    def stop(self, job_id: str) -> None:
        """A queued job is cancelled; a running one is asked to stop (a training saves the model so far,
        an import ends with nothing saved)."""
        if not job_id.startswith("c-"):
            return self.local.stop(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.active:
                return
            job.stop_event.set()
            running = job.state == jobs.RUNNING
            if not running:
                job.state, job.ended = jobs.CANCELLED, time.time()
                self._release_next(job.job_id)
                self._renumber()
        if running:
            self._stop_asked[job_id] = time.monotonic()
            try:
                self.ray.stop(_submission_id(job_id))
            except (RuntimeError, OSError) as error:
                with self._lock:
                    job.note = f"Stop could not reach the cluster ({_short(error)}); trying again."
        self._save(job)
        self._wake.set()

    def snapshot(self, job_id: str) -> jobs.Job | None:
        if not job_id or not job_id.startswith("c-"):
            return self.local.snapshot(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return replace(job, batches=list(job.batches), epochs=list(job.epochs), last=dict(job.last),
                           summary=dict(job.summary))

    def jobs_for(self, session_id: str) -> list[jobs.Job]:
        with self._lock:
            mine = [replace(job, batches=[], epochs=list(job.epochs), last=dict(job.last))
                    for job in self._jobs.values() if job.session_id == session_id]
        return sorted([*mine, *self.local.jobs_for(session_id)], key=lambda job: job.created, reverse=True)

    def active_count(self, session_id: str) -> int:
        with self._lock:
            here = sum(1 for job in self._jobs.values() if job.session_id == session_id and job.active)
        return here + self.local.active_count(session_id)

    def queue_length(self) -> int:
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.state == jobs.QUEUED)

    def job_count(self) -> int:
        with self._lock:
            return len(self._jobs) + self.local.job_count()

    def active_jobs(self) -> list[jobs.Job]:
        with self._lock:
            mine = [replace(job, batches=[]) for job in self._jobs.values() if job.active]
        return mine + self.local.active_jobs()

    def running(self) -> list[jobs.Job]:
        """This server's running jobs (the local manager's). Cluster jobs take nothing from this machine."""
        return self.local.running()

    def wait(self, job_id: str, timeout: float = 600.0) -> jobs.Job:
        return jobs.wait_until_ended(self.snapshot, job_id, timeout)

    def close(self) -> None:
        """Stop following the cluster (its jobs go on; another manager on the same store picks them up)."""
        self._closed.set()
        self._wake.set()
        self._thread.join(30)

    # -- limits -----------------------------------------------------------------------------------------
    def _refusal(self, session_id: str) -> str:
        """Called under the lock: the board counts every server's jobs, so the caps hold cluster-wide."""
        active = [job for job in self._jobs.values() if job.session_id == session_id and job.state in jobs.CAPPED_STATES]
        local = self.local.active_count(session_id)
        if self.max_active_per_session is not None and len(active) + local >= self.max_active_per_session:
            what = N_("an import") if any(job.kind == jobs.IMPORT for job in active) else N_("a training")
            return N_("You already have {what} queued or running on the cluster; on this shared app each visitor "
                      "trains or imports {count} at a time. Wait for it to finish, or stop it.").format(
                what=what, count=self.max_active_per_session)
        if self.max_queue is not None:
            waiting = sum(1 for job in self._jobs.values() if job.state == jobs.QUEUED)
            if waiting >= self.max_queue:
                return N_("{count} jobs are already waiting for the cluster (the limit is {limit}). Try again in a "
                          "few minutes.").format(count=waiting, limit=self.max_queue)
        return ""

    def _budget_problem(self, config: TrainConfig, runs_dir) -> str:
        """The public profile's training budget and model size, checked here for any caller."""
        if self.profile is None or not self.profile.public:
            return ""
        try:
            info = catalog.get_info(config.dataset, self.data_dir, datasets.uploads_dir(runs_dir))
            return profile.check_config(self.profile, config, info)
        except ValueError as error:
            return str(error)

    def _disk_problem(self, configs: list, runs_dir) -> str:
        """The workspace quota the local trainer holds (workspaces.quota_guarded), checked at submit for
        every run of a chain: the cluster's job saves its run where this server's quota cannot stop it."""
        if self.profile is None or not self.profile.public:
            return ""
        try:
            total = sum(workspaces.estimate_training_bytes(config, catalog.get_info(
                config.dataset, self.data_dir, datasets.uploads_dir(runs_dir))) for config in configs)
        except ValueError as error:
            return str(error)
        return self._quota_problem(runs_dir, total)

    def _quota_problem(self, runs_dir, nbytes: int) -> str:
        """Why `nbytes` more in the workspace would pass its (or the server's) quota: profile.check_disk's
        message, as a local save gives it; "" where the profile has no quota."""
        if self.profile is None or not self.profile.public:
            return ""
        workspace = workspaces.Workspace(Path(runs_dir) if runs_dir else paths.runs_dir())
        return workspaces.quota_problem(workspace, nbytes, current=self.profile)

    @staticmethod
    def _workspace(runs_dir) -> str:
        """`runs_dir` relative to the runs folder (the store's root): where the job saves its run."""
        if runs_dir is None:
            return ""
        root = paths.runs_dir().resolve()
        try:
            relative = Path(runs_dir).resolve().relative_to(root)
        except ValueError:
            raise ValueError(f"{runs_dir} is not under the runs folder {root}: a cluster job saves its run "
                             f"on the run store, which mirrors that folder.") from None
        return "" if str(relative) == "." else relative.as_posix()

    # -- the board on the store -------------------------------------------------------------------------
    def _save(self, job: jobs.Job) -> None:
        """The job's record on the board; an import that has ended has its upload deleted too."""
        with self._lock:
            config = job.config.to_dict() if job.kind == jobs.TRAINING else _import_fields(job.config)
            record = {"job_id": job.job_id, "session_id": job.session_id, "kind": job.kind, "config": config,
                      "workspace": self._workspace(job.runs_dir), "state": job.state, "created": job.created,
                      "started": job.started, "ended": job.ended, "run_id": job.run_id, "summary": job.summary,
                      "error": job.error, "after": job.after, "stop": job.stop_event.is_set(),
                      "cluster": self.cluster.address, "submission_id": _submission_id(job.job_id)}
        try:
            self._store.put_json(clusterjob.record_key(job.job_id), record)
        except backend.StoreError as error:
            with self._lock:
                self.problem = str(error)
        if job.kind == jobs.IMPORT and record["state"] not in jobs.ACTIVE_STATES:
            self._remove_upload(job.job_id)  # the job deletes it too; a cancelled or lost one never ran

    def _remove_upload(self, job_id: str) -> None:
        try:
            self._store.remove_object(clusterjob.upload_key(job_id))
        except backend.StoreError as error:
            with self._lock:
                self.problem = str(error)

    def _load_board(self) -> None:
        """Adopt the board's jobs this server does not know yet (all of them after a restart)."""
        try:
            keys = self._store.list_json(backend.JOBS_PREFIX)
        except backend.StoreError as error:
            self.problem = str(error)
            return
        self._listed = time.monotonic()
        with self._lock:
            known = set(self._jobs)
        for key in keys:
            job_id = key.rsplit("/", 1)[-1].removesuffix(".json")
            if job_id in known or not job_id.startswith("c-"):
                continue
            try:
                record = self._store.get_json(key)
                job = self._from_record(record) if record else None
            except (backend.StoreError, KeyError, TypeError, ValueError) as error:
                print(f"skipping the job record {key}: {error}")
                continue
            if job is not None:
                with self._lock:
                    self._jobs.setdefault(job.job_id, job)
        with self._lock:
            released = [job for job in self._jobs.values() if job.state == jobs.WAITING
                        and (self._jobs.get(job.after) is None or not self._jobs[job.after].active)]
            for job in released:  # its predecessor ended while no server was following it
                self._release_next(job.after)
            self._renumber()
            self._forget_old_jobs()
        self._sweep_uploads({key.rsplit("/", 1)[-1].removesuffix(".json") for key in keys})

    def _sweep_uploads(self, on_board: set[str]) -> None:
        """Delete the import uploads no live job needs: those with no record on the board (`on_board`, listed
        before the uploads) or whose job has ended, once older than the grace period (a submit puts its
        upload first, then writes the record). At most once per sweep_every_s."""
        now = time.monotonic()
        if self._swept is not None and now - self._swept < self._sweep_every_s:
            return
        self._swept = now
        try:
            uploads = self._store.list_objects(f"{backend.JOBS_PREFIX}/uploads")
        except backend.StoreError as error:
            self.problem = str(error)
            return
        cutoff = time.time() - self._upload_grace_s
        with self._lock:
            ended = {job_id for job_id, job in self._jobs.items() if not job.active}
        for key, modified in uploads.items():
            job_id = key.rsplit("/", 1)[-1].removesuffix(".upload")
            if (job_id in on_board and job_id not in ended) or modified is None or modified > cutoff:
                continue
            try:
                self._store.remove_object(key)
            except backend.StoreError:
                return
            print(f"deleted the orphaned upload {key}")

    def _from_record(self, record: dict) -> jobs.Job:
        workspace = record.get("workspace", "")
        kind = record.get("kind", jobs.TRAINING)
        if kind not in (jobs.TRAINING, jobs.IMPORT):
            raise ValueError(f"unknown job kind {kind!r}")
        config = TrainConfig.from_dict(record["config"]) if kind == jobs.TRAINING else _import_request(record["config"])
        job = jobs.Job(record["job_id"], record["session_id"], config,
                       state=record["state"], created=record["created"], started=record.get("started"),
                       ended=record.get("ended"), run_id=record.get("run_id"), summary=record.get("summary") or {},
                       error=record.get("error") or "", after=record.get("after"),
                       runs_dir=paths.runs_dir() / workspace if workspace else None, where=CLUSTER)
        if record.get("stop"):
            job.stop_event.set()
        if job.state == jobs.RUNNING:  # its curves so far, at once
            self._read_progress(job)
        return job

    # -- following the cluster --------------------------------------------------------------------------
    def _follow_loop(self) -> None:
        try:  # the Jobs client (and its ~60 MB of Ray) now, not at the first visitor's click
            self.ray.connect()
        except (RuntimeError, OSError, ValueError) as error:
            self._cluster_unreachable(error)  # asked again at the first submission
        while not self._closed.is_set():
            self._wake.wait(self._poll_s)
            self._wake.clear()
            if self._closed.is_set():
                return
            try:
                self.follow()
            except Exception:  # noqa: BLE001 - the follower must survive anything and try again
                traceback.print_exc()

    def follow(self) -> None:
        """One round: re-list the board now and then, follow the running jobs, start queued ones."""
        with self._board_lock:
            if time.monotonic() - self._listed >= LIST_EVERY_S:
                self._load_board()
            with self._lock:
                running = [job for job in self._jobs.values() if job.state == jobs.RUNNING]
            for job in running:
                self._follow_running(job)
            self._dispatch()

    def _follow_running(self, job: jobs.Job) -> None:
        submission_id = _submission_id(job.job_id)
        now = time.monotonic()
        if now - self._status_read.get(job.job_id, -STATUS_EVERY_S) < STATUS_EVERY_S:
            return self._read_progress(job)  # the curves move every round; the status is asked less often
        self._status_read[job.job_id] = now
        try:
            status, message = self.ray.status(submission_id)
        except ClusterGone:
            return self._end_from_result(job, "FAILED", "", gone=True)
        except (RuntimeError, OSError) as error:  # unreachable: the requests/urllib3 errors are OSErrors
            self._cluster_unreachable(error, job)
            return
        self._cluster_reachable()
        if job.stop_event.is_set() and status in ("PENDING", "RUNNING") \
                and time.monotonic() - self._stop_asked.get(job.job_id, -STOP_RETRY_S) >= STOP_RETRY_S:
            self._stop_asked[job.job_id] = time.monotonic()  # a stop the cluster has not taken yet (it was
            try:  # unreachable, or this server restarted meanwhile): ask again now and then
                self.ray.stop(submission_id)
            except (RuntimeError, OSError):
                pass
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            self._end_from_result(job, status, message)
        else:
            self._read_progress(job)

    def _read_progress(self, job: jobs.Job) -> None:
        try:
            progress = self._store.get_json(clusterjob.progress_key(job.job_id))
        except backend.StoreError:
            return
        if progress:
            with self._lock:
                job.batches, job.epochs = progress.get("batches", []), progress.get("epochs", [])
                job.last = progress.get("last") or {}

    def _end_from_result(self, job: jobs.Job, status: str, message: str, *, gone: bool = False) -> None:
        """The job ended on the cluster (or the cluster lost it): its result, its run, its state."""
        self._status_read.pop(job.job_id, None)
        self._stop_asked.pop(job.job_id, None)
        self._read_progress(job)
        try:
            result = self._store.get_json(clusterjob.result_key(job.job_id)) or {}
        except backend.StoreError:
            result = {}
        with self._lock:
            job.ended = time.time()
            if result.get("run_id"):
                job.run_id = result["run_id"]
                states = {"finished": jobs.FINISHED, "stopped": jobs.STOPPED, "diverged": jobs.DIVERGED}
                if job.kind == jobs.IMPORT:
                    job.state = jobs.FINISHED  # whatever the imported run's own status says, as locally
                else:
                    job.state = states.get(result.get("status"), jobs.FAILED)
                if job.stop_event.is_set() and job.state == jobs.FINISHED and job.kind == jobs.TRAINING:
                    job.state = jobs.STOPPED
                job.summary = {"status": result.get("status"), "reason": result.get("stop_reason", ""),
                               **{name: result.get(name) for name in ("test_accuracy", "test_loss", "seconds",
                                                                       "samples_per_s", "precision", "scores")}}
                if job.state == jobs.FAILED:
                    job.error = result.get("stop_reason") or N_("The training failed.")
            elif job.kind == jobs.IMPORT and (status == "STOPPED" or job.stop_event.is_set()):
                job.state = jobs.CANCELLED  # an import stops with nothing saved, as locally
                job.error = process.stopped_message(jobs.IMPORT)
            elif status == "STOPPED" or job.stop_event.is_set():
                job.state = jobs.STOPPED
                job.error = N_("Stopped on the cluster before a model was saved.")
            else:
                job.state = jobs.FAILED
                job.error = result.get("error") or self._failure_message(job, message, gone)
            job.batches = jobs.thin(job.batches, jobs.ENDED_BATCH_POINTS)
            self._release_next(job.job_id)
            self._renumber()
        if job.run_id:
            try:  # into this server's working copy now, so the run's report shows at once
                self._store.pull_run(Path(job.runs_dir or paths.runs_dir()) / job.run_id)
            except backend.StoreError as error:
                print(f"run {job.run_id} not pulled yet: {error}")
        self._save(job)

    def _failure_message(self, job: jobs.Job, message: str, gone: bool) -> str:
        if gone:
            return (N_("The Ray cluster at {address} no longer knows this job (it was restarted or replaced), so the "
                       "import was lost. Import the file again.") if job.kind == jobs.IMPORT else
                    N_("The Ray cluster at {address} no longer knows this job (it was restarted or replaced), so the "
                       "training was lost. Train again.")).format(address=self.cluster.address)
        tail = self.ray.log_tail(_submission_id(job.job_id))
        cleaned = " ".join(message.split())
        if "Traceback" in cleaned or len(cleaned) > 300:
            cleaned = ""
        parts = [part for part in (cleaned, tail) if part]
        return (N_("The import failed on the cluster: {detail}") if job.kind == jobs.IMPORT else
                N_("The training failed on the cluster: {detail}")).format(
            detail=" · ".join(parts) if parts else N_("no message."))

    def _cluster_unreachable(self, error: Exception, job: jobs.Job | None = None) -> None:
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        self.problem = N_("The Ray cluster at {address} cannot be reached ({error}); check {setting} and the "
                          "cluster.").format(address=self.cluster.address, error=_short(error), setting=ADDRESS_ENV)
        if job is not None and now - self._unreachable_since >= self._vanished_after_s:
            with self._lock:
                job.ended = time.time()
                job.state = jobs.FAILED
                job.error = (N_("The Ray cluster at {address} could not be reached for {seconds:.0f} s, so this "
                                "import is taken as lost. Import the file again once the cluster is back.")
                             if job.kind == jobs.IMPORT else
                             N_("The Ray cluster at {address} could not be reached for {seconds:.0f} s, so this "
                                "training is taken as lost. Train again once the cluster is back.")).format(
                    address=self.cluster.address, seconds=self._vanished_after_s)
                job.batches = jobs.thin(job.batches, jobs.ENDED_BATCH_POINTS)
                self._release_next(job.job_id)
                self._renumber()
            self._save(job)

    def _cluster_reachable(self) -> None:
        self._unreachable_since = None
        self.problem = ""

    def _dispatch(self) -> None:
        """Submit queued jobs, oldest first, while fewer than max_running run: each once it holds a place
        (`_take_place`), so the limit holds over every server on the store, even two dispatching at once."""
        while True:
            with self._lock:
                running = sum(1 for job in self._jobs.values() if job.state == jobs.RUNNING)
                queued = sorted((job for job in self._jobs.values() if job.state == jobs.QUEUED),
                                key=lambda job: job.created)
                if running >= self.cluster.max_running or not queued:
                    return
                job = queued[0]
            if self._places_full_at is not None and time.monotonic() - self._places_full_at < STATUS_EVERY_S:
                return  # every place was held a moment ago: ask the store again in a while, not every round
            answer = self._take_place(job)
            if answer == MOVED:
                continue
            if answer == FULL:
                self._places_full_at = time.monotonic()
                return
            self._places_full_at = None
            try:
                self.ray.submit(_submission_id(job.job_id), f"{ENTRYPOINT} {job.job_id}", runtime_env(self.cluster),
                                self.cluster.cpus, self.cluster.gpus, _memory_mb(job, self.cluster),
                                {"app": "mnist-studio", "job": job.job_id, "kind": job.kind})
            except (RuntimeError, OSError, ValueError) as error:
                if isinstance(error, OSError) or "connect" in str(error).lower():
                    self._cluster_unreachable(error)
                    with self._lock:
                        for waiting in queued:
                            waiting.note = N_("The cluster cannot be reached; it starts when the cluster is back.")
                    return
                with self._lock:  # the cluster refused it (a runtime environment it cannot build, ...)
                    job.state, job.ended = jobs.FAILED, time.time()
                    job.error = (N_("The cluster refused this import: {error}") if job.kind == jobs.IMPORT else
                                 N_("The cluster refused this training: {error}")).format(error=_short(error))
                    self._release_next(job.job_id)
                    self._renumber()
                self._save(job)
                continue
            self._cluster_reachable()
            with self._lock:
                job.state, job.started, job.note = jobs.RUNNING, time.time(), ""
                for waiting in queued:
                    waiting.note = ""
                self._renumber()
            self._save(job)

    def _take_place(self, job: jobs.Job) -> str:
        """Whether the queued `job` may be submitted now: TAKEN when it holds one of the max_running places on
        the board, FULL when every place is held by an active job, MOVED when its record says another server
        started or ended it (this server's copy is updated).

        Place n is the object `places/<n>-<g>.json` of highest generation g, naming the job holding it. A
        place whose job has ended is taken by creating generation g + 1 only if it does not exist
        (backend's create_json: a conditional PUT): of servers racing for it, one wins. Nothing is deleted
        that another server could still be deciding on, and a job that ends frees its place without anyone
        writing: the next taker sees it ended. A job holding a place but not submitted (its server stopped
        in between) is submitted by whichever server picks it next (the submission id is fixed)."""
        try:
            record = self._store.get_json(clusterjob.record_key(job.job_id))
            if record is None:  # its submit has not written it yet: a holder without a record counts as ended
                return FULL
            if record.get("state") != jobs.QUEUED:
                self._adopt(job, record)
                return MOVED
            newest: dict[int, int] = {}
            for key in self._store.list_json(PLACES_PREFIX):
                place, _, generation = key.rsplit("/", 1)[-1].removesuffix(".json").partition("-")
                if place.isdigit() and generation.isdigit():
                    newest[int(place)] = max(newest.get(int(place), -1), int(generation))
            free = []
            for place in range(self.cluster.max_running):
                generation = newest.get(place, -1)
                holder = None
                if generation >= 0:
                    holder = (self._store.get_json(_place_key(place, generation)) or {}).get("job_id")
                    if holder == job.job_id:
                        return TAKEN
                if holder is None or self._has_ended(holder):
                    free.append((place, generation + 1))
            for place, generation in free:
                claim = {"job_id": job.job_id, "claimed": time.time(), "cluster": self.cluster.address}
                if self._store.create_json(_place_key(place, generation), claim):
                    if generation:
                        self._store.remove_object(_place_key(place, generation - 1))  # superseded: read by no one
                    return TAKEN
        except backend.StoreError as error:
            self.problem = str(error)
        return FULL

    def _has_ended(self, job_id: str) -> bool:
        """Whether a place's holder has ended (a job with no record has: records go only after their job ended)."""
        with self._lock:
            known = self._jobs.get(job_id)
        if known is not None and not known.active:
            return True
        record = self._store.get_json(clusterjob.record_key(job_id))
        return record is None or record.get("state") not in jobs.ACTIVE_STATES

    def _adopt(self, job: jobs.Job, record: dict) -> None:
        """The board's newer state of a job this server holds as queued (another server started, stopped
        or cancelled it)."""
        with self._lock:
            job.state, job.started, job.ended = record["state"], record.get("started"), record.get("ended")
            job.run_id, job.error = record.get("run_id"), record.get("error") or ""
            job.summary = record.get("summary") or {}
            if record.get("stop"):
                job.stop_event.set()
            if not job.active:
                self._release_next(job.job_id)
            self._renumber()

    def _release_next(self, ended_id: str) -> None:
        """Called under the lock: the job chained after `ended_id` joins the queue (at its end)."""
        for job in self._jobs.values():
            if job.state == jobs.WAITING and job.after == ended_id:
                job.state, job.created, job.after = jobs.QUEUED, time.time(), None
                threading.Thread(target=self._save, args=(job,), daemon=True).start()

    def _renumber(self) -> None:
        """Called under the lock: each queued job's place and the jobs ahead of it (running ones too)."""
        running = sum(1 for job in self._jobs.values() if job.state == jobs.RUNNING)
        waiting = sorted((job for job in self._jobs.values() if job.state == jobs.QUEUED), key=lambda job: job.created)
        for place, job in enumerate(waiting, start=1):
            job.position, job.ahead = place, running + place - 1
        for job in self._jobs.values():
            if job.state != jobs.QUEUED:
                job.position, job.ahead = 0, 0

    def _forget_old_jobs(self) -> None:
        """Called under the lock: the newest ended jobs only stay in memory (the board keeps the rest
        until they are this old: then their objects go too)."""
        ended = sorted((job for job in self._jobs.values() if not job.active), key=lambda job: job.ended or 0,
                       reverse=True)
        for rank, job in enumerate(ended):
            if rank >= jobs.ENDED_TOTAL:
                del self._jobs[job.job_id]
                threading.Thread(target=self._remove_record, args=(job.job_id,), daemon=True).start()

    def _remove_record(self, job_id: str) -> None:
        for key in (clusterjob.upload_key(job_id), clusterjob.progress_key(job_id), clusterjob.result_key(job_id),
                    clusterjob.record_key(job_id)):
            try:
                self._store.remove_object(key)
            except backend.StoreError:
                return


def _new_id() -> str:
    """A cluster job's id: "c-" tells it from this server's jobs (lib.execution.jobs: "job-N")."""
    return f"c-{uuid.uuid4().hex[:12]}"


def _import_fields(request: imports.ImportRequest) -> dict:
    """What the board keeps of an import: never the server's path (the file is on the store)."""
    return {"filename": request.filename, "dataset": request.dataset, "name": request.name, "nbytes": request.nbytes}


def _import_request(fields: dict) -> imports.ImportRequest:
    """An import from its board record: no local file (path ""), nothing to discard here."""
    return imports.ImportRequest(filename=str(fields["filename"]), path="", nbytes=int(fields["nbytes"]),
                                 dataset=fields.get("dataset"), name=str(fields.get("name") or ""), staged=False)


def _place_key(place: int, generation: int) -> str:
    return f"{PLACES_PREFIX}/{place}-{generation}.json"


def _memory_mb(job: jobs.Job, cluster: ClusterSettings) -> int:
    """The memory a job declares to Ray: an import, its child's address-space cap (the job's own process, without
    TensorFlow, fits in what the child's RSS leaves of it); a training, the setting."""
    return imports.IMPORT_MEMORY_MB if job.kind == jobs.IMPORT else cluster.memory_mb


def _submission_id(job_id: str) -> str:
    """The Ray submission id of a job: fixed, so submitting twice (a restart in between) is harmless."""
    return f"mnist-studio-{job_id}"


def _short(error: BaseException) -> str:
    line = " ".join(f"{type(error).__name__}: {error}".split())
    return line if len(line) <= 200 else line[:197] + "..."
