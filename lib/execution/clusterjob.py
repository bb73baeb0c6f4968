"""The cluster side of a training or an import on Ray: `python -m lib.execution.clusterjob JOB_ID`.

The entry point of one Ray job (lib.execution.raycluster submits it), run on a cluster node with the
project's code as its working directory and `MNIST_STUDIO_STORE` naming the run store the app reads.
It reads its job record from the store (`.jobs/<id>.json`: the TrainConfig and the workspace folder),
trains through the same path as a local child (lib.execution.worker.train), which saves the run to the
store (its commit object last), and on the way writes `.jobs/progress/<id>.json` (the batch and epoch
events so far) at most once per PROGRESS_EVERY_S, at each epoch's end and at the end. Last it writes
`.jobs/result/<id>.json`: the run and its scores, or the error in the user's words (the traceback
goes to the job's log). SIGTERM (Ray's stop_job) asks the training to stop after its batch: the model
so far is saved as a stopped run, as a local Stop does.

An import (the record's kind "import": filename, dataset, name, nbytes) fetches its upload from the
store (`.jobs/uploads/<id>.upload`, put there by the app) into a private temporary file and imports it
as the app server does (lib.execution.imports.run_import: a child process under IMPORT_LIMITS, so a
hostile or huge model costs that child), into the workspace folder; the run goes to the store as a
training's does. The upload object is deleted when the job ends, whatever the outcome. SIGTERM ends
the import's child at once: nothing is saved, as a local Stop of an import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from lib.data import paths
from lib.execution import imports, jobs, process, worker
from lib.store import backend

PROGRESS_EVERY_S = 1.0  # the app polls every second: one small store write per second at most
PROGRESS_BATCH_POINTS = 1000  # batch points kept in the progress object (evenly thinned past this)


def record_key(job_id: str) -> str:
    """The job's record (written by the app) on the store, relative to its root."""
    return f"{backend.JOBS_PREFIX}/{job_id}.json"


def progress_key(job_id: str) -> str:
    return f"{backend.JOBS_PREFIX}/progress/{job_id}.json"


def result_key(job_id: str) -> str:
    return f"{backend.JOBS_PREFIX}/result/{job_id}.json"


def upload_key(job_id: str) -> str:
    """An import's file (written by the app: a node cannot read the app server's temporary folder)."""
    return f"{backend.JOBS_PREFIX}/uploads/{job_id}.upload"


class ProgressBoard:
    """Collects a training's progress events and writes them to the store from a thread of its own,
    so a slow store never slows the training; epoch ends and phases are written at once."""

    def __init__(self, store, job_id: str):
        self._store, self._key = store, progress_key(job_id)
        self.batches: list = []
        self.epochs: list = []
        self.last: dict = {}
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._urgent = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._write_loop, name="progress-writer", daemon=True)
        self._thread.start()

    def __call__(self, event: dict) -> None:
        event = json.loads(json.dumps(event, default=worker._plain))  # numpy scalars -> JSON numbers
        with self._lock:
            if event.get("kind") == "batch":
                self.batches.append(event)
            elif event.get("kind") == "epoch":
                self.epochs.append(event)
            self.last = event
        self._dirty.set()
        if event.get("kind") != "batch":
            self._urgent.set()

    def close(self) -> None:
        self._done.set()
        self._urgent.set()
        self._thread.join(30)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            self._dirty.clear()
            batches = self.batches
            if len(batches) > PROGRESS_BATCH_POINTS:
                step = len(batches) / PROGRESS_BATCH_POINTS
                batches = [batches[int(i * step)] for i in range(PROGRESS_BATCH_POINTS - 1)] + [batches[-1]]
            value = {"batches": list(batches), "epochs": list(self.epochs), "last": dict(self.last),
                     "written": time.time()}
        try:
            self._store.put_json(self._key, value)
        except backend.StoreError as error:  # progress is a courtesy: the training goes on
            print(f"progress not written: {error}", file=sys.stderr)

    def _write_loop(self) -> None:
        while not self._done.is_set():
            self._urgent.wait(PROGRESS_EVERY_S)
            self._urgent.clear()
            if self._dirty.is_set() and not self._done.is_set():
                self.flush()


def run(job_id: str) -> int:
    """Run the job `job_id` (a training or an import) of the store named by MNIST_STUDIO_STORE; 0 when a
    run was saved."""
    if backend.is_remote(backend.store_url()):  # this node's working copy: a temporary folder
        os.environ[paths.RUNS_DIR_ENV] = tempfile.mkdtemp(prefix="mnist-studio-job-")
    store = backend.current()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # Ray's stop_job: save what we have, then end
    record = store.get_json(record_key(job_id))
    kind = (record or {}).get("kind", jobs.TRAINING)  # records written before imports ran here have none
    board = ProgressBoard(store, job_id)
    try:
        if record is None:
            raise RuntimeError(f"The job {job_id} is not on the run store {store.url or paths.runs_dir()}.")
        runs_dir = paths.runs_dir() / record.get("workspace", "")
        store.pull_uploads(runs_dir)  # the workspace's uploaded and drawn datasets (not its runs)
        if kind == jobs.IMPORT:
            outcome = import_upload(store, job_id, record["config"], runs_dir, stop.is_set)
        else:
            payload = {"config": record["config"], "data_dir": os.environ.get(paths.DATA_DIR_ENV) or None,
                       "runs_dir": str(runs_dir)}
            outcome = worker.train(payload, board, stop.is_set)
        code = 0
    except Exception as error:  # noqa: BLE001 - the app gets a message, the job's log the traceback
        traceback.print_exc()
        outcome, code = {"error": process.user_message(error, kind)}, 1
    board.close()
    if kind == jobs.IMPORT:  # before the result: once the app reads it, the upload is gone
        with contextlib.suppress(backend.StoreError):
            store.remove_object(upload_key(job_id))
    store.put_json(result_key(job_id), {**outcome, "written": time.time()})
    print(json.dumps({"job": job_id, **outcome}))
    return code


def import_upload(store, job_id: str, fields: dict, runs_dir: Path, should_stop) -> dict:
    """The job's upload, fetched into a private temporary folder, imported into `runs_dir` as the app
    server imports one (a child process under imports.IMPORT_LIMITS); the result's fields."""
    folder = Path(tempfile.mkdtemp(prefix="mnist-studio-import-"))  # mode 0700: this user's only
    try:
        path = folder / "upload"
        try:
            store.get_file(upload_key(job_id), path)
        except FileNotFoundError:
            raise ValueError(f"{fields['filename']} is no longer on the run store; upload it again.") from None
        request = imports.ImportRequest(filename=fields["filename"], path=str(path), nbytes=int(fields["nbytes"]),
                                        dataset=fields.get("dataset"), name=fields.get("name") or "")
        run, result = imports.run_import(request, should_stop=should_stop,
                                         data_dir=os.environ.get(paths.DATA_DIR_ENV) or None, runs_dir=runs_dir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"run_id": run.run_id, **dataclasses.asdict(result)}


if __name__ == "__main__":
    status = run(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # now: TensorFlow's threads can hold a normal interpreter exit for seconds
