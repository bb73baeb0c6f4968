"""Trainings and imports as Ray jobs on a real local cluster, with a real S3-compatible server as the run store.

The module starts its own Ray head (`ray start --head` on 127.0.0.1 with the dashboard, free
ports, a temporary folder; tests/lib/ray_head.py) and moto's S3 server, and ends both afterwards:
CI needs nothing started for it. If Ray cannot start, these tests fail (they never skip). A
"restart" of the app server is a new ClusterJobManager with a new, empty runs folder on the same store.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import numpy as np
import pytest

from lib.data import datasets
from lib.execution import clusterjob, imports, jobs, managers, process, raycluster
from lib.store import backend, bundles, profile, runs, workspaces
from lib.training.config import TrainConfig
from tests.lib.ray_head import LocalHead
from tests.moto_s3 import start_moto

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
TINY = {"arch": "softmax", "epochs": 1, "limit": 200}  # a one-epoch training on 160 images
JOB_TIMEOUT_S = 240  # a cold job: runtime env, TensorFlow's import, the fit, the upload


@pytest.fixture(scope="module")
def cluster():
    """(moto endpoint, Ray head) for the module; both ended afterwards."""
    moto, endpoint = start_moto()
    try:
        head = LocalHead(env=CREDENTIALS)  # the nodes' own credentials, as on a real cluster
    except BaseException:
        moto.terminate()
        raise
    yield endpoint, head
    head.stop()
    moto.terminate()
    moto.wait(10)


@pytest.fixture
def server(cluster, tmp_path, tiny_data_dir, monkeypatch):
    """A fresh bucket as the store, the cluster's address set; returns `start(**limits)`, which starts
    (or restarts) an app server's job layer: a new runs folder, a new manager on the same store."""
    endpoint, head = cluster
    bucket = f"runs-{uuid.uuid4().hex[:12]}"
    for name, value in {**CREDENTIALS, backend.ENDPOINT_ENV: endpoint, backend.STORE_ENV: f"s3://{bucket}/studio",
                        raycluster.ADDRESS_ENV: head.address, "MNIST_STUDIO_DATA_DIR": str(tiny_data_dir)}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    started = []

    def start(max_running=2, **caps):
        backend._STORES.clear()
        folder = tmp_path / f"server-{len(started) + 1}"
        monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(folder))
        settings = raycluster.settings()
        settings = raycluster.ClusterSettings(**{**settings.__dict__, "max_running": max_running})
        manager = raycluster.ClusterJobManager(settings, local=jobs.JobManager(), **caps)
        started.append(manager)
        return manager, folder

    start.head = head
    yield start
    for manager in started:
        if manager._closed.is_set():  # a server that "restarted": its view of the board is stale
            continue
        for job in manager.active_jobs():
            manager.stop(job.job_id)
        manager.close()


def trained_runs(folder):
    """The runs a listing of `folder` shows, without the bundled model."""
    return [run for run in runs.list_runs(folder)[0] if run.run_id != runs.BUNDLED_ID]


def uploads_on_the_store():
    """The import uploads on the job board of the current store (an S3 bucket of the `server` fixture)."""
    bucket, prefix = os.environ[backend.STORE_ENV].removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", endpoint_url=os.environ[backend.ENDPOINT_ENV], region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{backend.JOBS_PREFIX}/uploads/")
    return [item["Key"].rsplit("/", 1)[-1] for item in listed.get("Contents", [])]



def no_upload_left():
    """True once the ended import's upload is gone from the store; the manager records the end (what waiters
    see) and then deletes the upload, so it may take a moment after `wait` returns. Fails if it never goes."""
    return wait_for(lambda: uploads_on_the_store() == [], 30, "the ended import's upload to be deleted")

def reserved(head, job_id):
    """What the real head reserved for a job's entrypoint: the resources of its supervisor actor (Ray's
    JobDetails, what get_job_info returns, drops entrypoint_memory), e.g. {"CPU": 1.0, "memory": ...}."""
    from ray.util.state import list_actors

    name = f"_ray_internal_job_actor_mnist-studio-{job_id}"
    found = list_actors(address=head.address, filters=[("name", "=", name)], detail=True, raise_on_missing_output=False)
    assert len(found) == 1, found
    return found[0].required_resources


def put_upload(job_id):
    """An import upload on the job board, as a server puts one before writing the job's record."""
    bucket, prefix = os.environ[backend.STORE_ENV].removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", endpoint_url=os.environ[backend.ENDPOINT_ENV], region_name="us-east-1")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{backend.JOBS_PREFIX}/uploads/{job_id}.upload", Body=b"model bytes")


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_training_on_the_cluster_finishes_and_its_run_is_listed(server, monkeypatch):
    """A visitor's training runs as a Ray job declaring the memory the settings give it: live progress
    comes back through the store, the run is listed here when it ends, and another server reading the
    same store lists it too."""
    monkeypatch.setenv(raycluster.MEMORY_ENV, "1000")
    manager, folder = server()
    job_id = manager.submit(TrainConfig(name="on the cluster", **TINY), "visitor")
    assert manager.snapshot(job_id).where == raycluster.CLUSTER
    job = manager.wait(job_id, timeout=JOB_TIMEOUT_S)
    assert job.state == jobs.FINISHED, job.error
    assert job.batches and job.epochs and job.epochs[-1]["epoch"] == 1  # the curves came through the store
    assert 0.0 <= job.summary["test_accuracy"] <= 1.0
    assert jobs.describe_state(job).startswith("Finished · test accuracy")
    listed = trained_runs(folder)
    assert [run.run_id for run in listed] == [job.run_id]
    assert listed[0].meta["config"]["name"] == "on the cluster"
    _, other = server()  # a second server (or this one after a restart) on the same store
    assert [run.run_id for run in trained_runs(other)] == [job.run_id]
    status, _ = raycluster.RayJobs(server.head.address).status(f"mnist-studio-{job_id}")
    assert status == "SUCCEEDED"
    assert reserved(server.head, job_id) == {"CPU": 1.0, "memory": 1000 * 1024 * 1024}


def test_stop_ends_a_cluster_training_and_keeps_the_model_so_far(server):
    """Stop on a long training: the cluster's job ends (Ray says STOPPED) and the model trained so
    far is saved as a stopped run, as a local Stop does."""
    manager, folder = server()
    job_id = manager.submit(TrainConfig(arch="softmax", epochs=400, limit=200), "visitor")
    wait_for(lambda: (manager.snapshot(job_id).last or {}).get("kind") in ("batch", "epoch"), JOB_TIMEOUT_S,
             "the first progress event")
    assert jobs.describe_state(manager.snapshot(job_id)).startswith("Running on the cluster: epoch")
    manager.stop(job_id)
    job = manager.wait(job_id, timeout=JOB_TIMEOUT_S)
    assert job.state == jobs.STOPPED, job.error
    assert job.epochs and len(job.epochs) < 400
    status, _ = raycluster.RayJobs(server.head.address).status(f"mnist-studio-{job_id}")
    assert status == "STOPPED"
    run = runs.get_run(job.run_id, folder)
    assert run.meta["status"] == "stopped"


def test_a_failing_job_reports_its_message(server):
    """A training that fails on the cluster says why in the user's words: no traceback."""
    manager, _ = server()
    job = manager.wait(manager.submit(TrainConfig(dataset="no-such-set", **TINY), "visitor"), timeout=JOB_TIMEOUT_S)
    assert job.state == jobs.FAILED
    assert "no-such-set" in job.error and "Traceback" not in job.error
    assert jobs.describe_state(job) == f"Failed: {job.error}"
    status, _ = raycluster.RayJobs(server.head.address).status(f"mnist-studio-{job.job_id}")
    assert status == "FAILED"


def test_a_restarted_job_layer_finds_the_running_job_and_its_run(server):
    """The app server restarts mid-training: the new job layer finds the job on the store's board,
    shows its progress so far, follows it to its end and lists its run in the new runs folder."""
    manager, _ = server()
    job_id = manager.submit(TrainConfig(arch="softmax", epochs=12, limit=200), "visitor")
    wait_for(lambda: (manager.snapshot(job_id).last or {}).get("kind") in ("batch", "epoch"), JOB_TIMEOUT_S,
             "the first progress event")
    manager.close()  # the server is gone; its job goes on on the cluster
    restarted, folder = server()
    found = restarted.snapshot(job_id)
    assert found is not None and found.state == jobs.RUNNING and found.batches, found
    assert [job.job_id for job in restarted.jobs_for("visitor")] == [job_id]
    job = restarted.wait(job_id, timeout=JOB_TIMEOUT_S)
    assert job.state == jobs.FINISHED, job.error
    assert len(job.epochs) == 12
    assert [run.run_id for run in trained_runs(folder)] == [job.run_id]


def test_limits_hold_over_servers_and_the_queue_says_where_a_job_runs(server):
    """Two app servers share the store: a visitor's second training is refused on the other server,
    the queue is counted over both, and a queued job says it waits on the cluster and behind whom."""
    first, _ = server(max_running=1, max_active_per_session=1, max_queue=1)
    running = first.submit(TrainConfig(arch="softmax", epochs=400, limit=200), "alice")
    wait_for(lambda: first.snapshot(running).state == jobs.RUNNING, 30, "the first job to be submitted")
    second, _ = server(max_running=1, max_active_per_session=1, max_queue=1)
    with pytest.raises(jobs.SubmitRefused, match="already have a training"):
        second.submit(TrainConfig(**TINY), "alice")
    queued = second.submit(TrainConfig(**TINY), "bob")
    assert jobs.describe_state(second.snapshot(queued)) == "Queued on the cluster, 1 job ahead of yours."
    wait_for(lambda: first.queue_length() == 1 or first.follow() or False, 30, "the first server to see the queue")
    with pytest.raises(jobs.SubmitRefused, match="waiting for the cluster"):
        first.submit(TrainConfig(**TINY), "carol")
    first.stop(running)
    assert first.wait(running, timeout=JOB_TIMEOUT_S).state == jobs.STOPPED
    assert second.wait(queued, timeout=JOB_TIMEOUT_S).state == jobs.FINISHED


def test_two_servers_dispatching_at_once_start_no_more_than_max_running(server):
    """Two app servers on one store, a place on the cluster (max_running 1): two visitors click Train on
    each at the same instant, each server sees only its own job (the board is re-listed every 10 s) and
    dispatches it at once. One job starts; the other is never submitted while it runs, and starts when
    it ends."""
    first, _ = server(max_running=1)
    second, _ = server(max_running=1)
    ray_jobs = raycluster.RayJobs(server.head.address)
    at_once = threading.Barrier(2)

    def on_ray(job_id):
        """Ray's status of the job, "" while it was never submitted."""
        try:
            return ray_jobs.status(f"mnist-studio-{job_id}")[0]
        except raycluster.ClusterGone:
            return ""

    def click(manager, visitor):
        at_once.wait()
        return manager.submit(TrainConfig(arch="softmax", epochs=400, limit=200), visitor)

    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(click, (first, second), ("alice", "bob")))
    managers = dict(zip(ids, (first, second)))
    started = wait_for(lambda: [job_id for job_id, manager in managers.items()
                                if manager.snapshot(job_id).state == jobs.RUNNING], 120, "a job to be submitted")
    assert len(started) == 1
    [waiting] = [job_id for job_id in ids if job_id not in started]
    time.sleep(5)  # ten rounds of its server's dispatcher: it would have been submitted by now
    assert managers[waiting].snapshot(waiting).state == jobs.QUEUED
    assert on_ray(waiting) == "" and on_ray(started[0]) in ("PENDING", "RUNNING")  # never submitted to Ray
    managers[waiting]._listed = 0.0
    managers[waiting].follow()  # its server reads the board: the other's job runs, its own waits behind it
    assert jobs.describe_state(managers[waiting].snapshot(waiting)) == "Queued on the cluster, 1 job ahead of yours."
    managers[started[0]].stop(started[0])
    assert managers[started[0]].wait(started[0], timeout=JOB_TIMEOUT_S).state == jobs.STOPPED
    wait_for(lambda: on_ray(waiting) in ("PENDING", "RUNNING"), 60,
             "the waiting job to be submitted once the place is free")
    managers[waiting].stop(waiting)
    assert managers[waiting].wait(waiting, timeout=JOB_TIMEOUT_S).state in (jobs.STOPPED, jobs.CANCELLED)


def test_a_visitors_own_dataset_trains_on_the_cluster_into_their_workspace(server, tiny_data_dir):
    """A visitor's uploaded dataset lives in their workspace on the store: the cluster's job fetches it,
    trains on it and saves the run in that workspace, where the app lists it."""
    manager, folder = server()
    workspace = folder / ".workspaces" / "a1b2c3"
    arrays = dict(np.load(tiny_data_dir / "mnist.npz"))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    saved = datasets.save_upload("my-digits", buffer.getvalue(), folder=datasets.uploads_dir(workspace))
    backend.current().push_files([saved.path])
    shutil.rmtree(datasets.uploads_dir(workspace))  # on the store only, as on a node that never saw it
    job = manager.wait(manager.submit(TrainConfig(dataset="my-digits", **TINY), "visitor", runs_dir=workspace),
                       timeout=JOB_TIMEOUT_S)
    assert job.state == jobs.FINISHED, job.error
    listed = trained_runs(workspace)
    assert [run.run_id for run in listed] == [job.run_id] and listed[0].dataset["name"] == "my-digits"
    assert trained_runs(folder) == []  # not in the top folder: in the visitor's workspace


def test_a_bundle_imported_on_the_cluster_lands_in_the_visitors_workspace(server, tiny_data_dir, tmp_path):
    """A visitor imports a run bundle: the upload goes to the store (a node cannot read this server's
    temporary folder), the import runs as a Ray job that outlives a restart of the app server, and the
    run is listed in the visitor's workspace with the score measured on the cluster; the upload is then
    gone from the store, and this server's staged copy as soon as it was on the store."""
    from lib.execution.pipeline import train_and_save

    source, _ = train_and_save(TrainConfig(**TINY), data_dir=tiny_data_dir, runs_dir=tmp_path / "source")
    manager, folder = server()
    request = imports.stage_upload(bundles.export_bundle(source), "mine.studio.zip")
    job_id = manager.submit(request, "visitor", runs_dir=folder / ".workspaces" / "a1b2c3")
    assert not os.path.exists(request.path)
    assert uploads_on_the_store() == [f"{job_id}.upload"]
    record = backend.current().get_json(clusterjob.record_key(job_id))
    assert record["kind"] == jobs.IMPORT and record["workspace"] == ".workspaces/a1b2c3"
    assert record["config"] == {"filename": "mine.studio.zip", "dataset": None, "name": "", "nbytes": request.nbytes}
    assert request.path not in json.dumps(record)
    wait_for(lambda: manager.snapshot(job_id).state == jobs.RUNNING, 30, "the import to be submitted")
    assert jobs.describe_state(manager.snapshot(job_id)).startswith("Importing on the cluster:")
    manager.close()  # the server restarts mid-import
    restarted, folder = server()
    found = restarted.snapshot(job_id)
    assert found is not None and found.kind == jobs.IMPORT and found.active and found.config.filename == "mine.studio.zip"
    assert [job.job_id for job in restarted.jobs_for("visitor")] == [job_id]
    job = restarted.wait(job_id, timeout=JOB_TIMEOUT_S)
    assert job.state == jobs.FINISHED, job.error
    listed = trained_runs(folder / ".workspaces" / "a1b2c3")
    assert [run.run_id for run in listed] == [job.run_id]
    measured = listed[0].meta["test_accuracy"]
    assert listed[0].meta["scores"] == runs.MEASURED
    assert measured == pytest.approx(source.meta["test_accuracy"], abs=1e-6)  # the same model on the same test set
    assert job.summary["test_accuracy"] == measured
    assert jobs.describe_state(job) == f"Imported · test accuracy {measured:.2%}"
    assert trained_runs(folder) == []  # in the visitor's workspace only
    assert no_upload_left()


def test_a_hostile_model_fails_on_the_cluster_as_it_does_here_and_leaves_no_upload(server, tiny_data_dir, tmp_path):
    """A .keras file whose config names a Lambda layer (Python code a model must not run here) is refused
    by the import on the cluster with the message a local import gives; no run, no upload left."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x * 2),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "lambda.keras")
    data = (tmp_path / "lambda.keras").read_bytes()
    with pytest.raises(bundles.InvalidBundle) as here:
        bundles.import_keras(data, "mnist", tmp_path / "here", data_dir=tiny_data_dir)
    manager, folder = server()
    job = manager.wait(manager.submit(imports.stage_upload(data, "lambda.keras", dataset="mnist"), "visitor"),
                       timeout=JOB_TIMEOUT_S)
    assert job.state == jobs.FAILED
    assert job.error == process.user_message(here.value, jobs.IMPORT)
    assert "a Lambda layer" in job.error and "Traceback" not in job.error
    assert jobs.describe_state(job) == f"Failed: {job.error}"
    assert trained_runs(folder) == [] and no_upload_left()


def test_stop_ends_a_cluster_import_with_nothing_saved(server, tmp_path):
    """Stop on an import the cluster is running: the job ends (its child with it), the import is
    cancelled with the local message, and neither a run nor the upload is left."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    model.save(tmp_path / "fine.keras")
    manager, folder = server()
    job_id = manager.submit(imports.stage_upload((tmp_path / "fine.keras").read_bytes(), "fine.keras",
                                                 dataset="mnist"), "visitor")
    ray_jobs = raycluster.RayJobs(server.head.address)
    wait_for(lambda: manager.snapshot(job_id).state == jobs.RUNNING
             and ray_jobs.status(f"mnist-studio-{job_id}")[0] == "RUNNING", 60, "the import to run on the cluster")
    assert reserved(server.head, job_id) == {"CPU": 1.0, "memory": imports.IMPORT_MEMORY_MB * 1024 * 1024}
    manager.stop(job_id)
    job = manager.wait(job_id, timeout=JOB_TIMEOUT_S)
    assert job.state == jobs.CANCELLED and job.run_id is None
    assert job.error == process.stopped_message(jobs.IMPORT)
    assert jobs.describe_state(job) == f"Cancelled: {job.error}"
    assert ray_jobs.status(f"mnist-studio-{job_id}")[0] == "STOPPED"
    assert trained_runs(folder) == [] and no_upload_left()


def test_uploads_orphaned_by_a_dead_server_are_swept_and_live_ones_kept(server, tmp_path):
    """A server that died between putting an import's upload and writing its job record leaves the upload
    on the store: a server loading the board deletes it once it is older than the grace period, keeps a
    young one (its record may be on its way) and one whose job is on the board, and looks at most once
    per sweep period."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    model.save(tmp_path / "fine.keras")
    first, _ = server()
    live = first.submit(imports.stage_upload((tmp_path / "fine.keras").read_bytes(), "fine.keras",
                                             dataset="mnist"), "visitor")
    put_upload("c-orphan000001")
    assert sorted(uploads_on_the_store()) == sorted([f"{live}.upload", "c-orphan000001.upload"])
    server()  # default grace: the orphan was put just now, its record could still be coming
    assert "c-orphan000001.upload" in uploads_on_the_store()
    time.sleep(1.1)  # the store dates objects to the second
    sweeper, _ = server(upload_grace_s=1.0)
    assert uploads_on_the_store() == [f"{live}.upload"]  # the orphan is gone, the live job's upload kept
    put_upload("c-orphan000002")
    time.sleep(1.1)
    sweeper._listed = 0.0
    sweeper.follow()  # the board is loaded again, but within the sweep period: nothing is looked for
    assert "c-orphan000002.upload" in uploads_on_the_store()
    first.stop(live)
    assert first.wait(live, timeout=JOB_TIMEOUT_S).state == jobs.CANCELLED
    server(upload_grace_s=1.0, sweep_every_s=0.0)
    assert uploads_on_the_store() == []


def test_cluster_jobs_past_the_workspace_quota_are_refused_with_the_local_message(server):
    """A public server's workspace quota holds for runs the cluster makes: an import or a training that
    would pass it is refused when submitted, with the message a local save gives, and nothing reaches
    the store or the cluster."""
    public = profile.Profile(profile.PUBLIC, profile.Limits(workspace_quota_mb=1))
    manager, folder = server(current=public)
    workspace = workspaces.Workspace(folder / ".workspaces" / "a1b2c3")
    request = imports.stage_upload(bytes(2 * profile.MB), "big.keras", dataset="mnist")
    with pytest.raises(workspaces.QuotaExceeded) as here, workspaces.reserve(workspace, request.nbytes, current=public):
        pass
    with pytest.raises(jobs.SubmitRefused) as refused:
        manager.submit(request, "visitor", runs_dir=workspace.folder)
    assert str(refused.value) == str(here.value)
    assert "this would add 2.0 MB and the limit is 1 MB" in str(refused.value)
    imports.discard(request)  # as the Data page does with a refused upload
    workspace.folder.mkdir(parents=True)
    (workspace.folder / "older.bin").write_bytes(bytes(2 * profile.MB))  # the workspace is over its quota
    with pytest.raises(jobs.SubmitRefused, match="Your workspace holds 2.0 MB"):
        manager.submit(TrainConfig(**TINY), "visitor", runs_dir=workspace.folder)
    assert manager.jobs_for("visitor") == []
    assert backend.current().list_json(backend.JOBS_PREFIX) == [] and uploads_on_the_store() == []


def test_a_local_cluster_can_use_a_plain_folder_as_the_store(cluster, tmp_path, tiny_data_dir, monkeypatch):
    """Trying it on one machine without object storage: the runs folder is the store for app and job."""
    _, head = cluster
    monkeypatch.setenv(backend.STORE_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv("MNIST_STUDIO_DATA_DIR", str(tiny_data_dir))
    manager = raycluster.ClusterJobManager(raycluster.ClusterSettings(address=head.address), local=jobs.JobManager())
    try:
        job = manager.wait(manager.submit(TrainConfig(**TINY), "visitor"), timeout=JOB_TIMEOUT_S)
    finally:
        manager.close()
    assert job.state == jobs.FINISHED, job.error
    assert job.batches
    assert [run.run_id for run in trained_runs(tmp_path / "runs")] == [job.run_id]


def test_a_job_the_cluster_lost_is_marked_failed(server):
    """A job the board says is running but the cluster does not know (the cluster was replaced) fails
    with a message instead of running for ever."""
    manager, _ = server()
    lost = {"job_id": "c-lost0000000", "session_id": "visitor", "config": TrainConfig(**TINY).to_dict(),
            "workspace": "", "state": jobs.RUNNING, "created": time.time(), "started": time.time()}
    backend.current().put_json(clusterjob.record_key("c-lost0000000"), lost)
    restarted, _ = server()
    job = restarted.wait("c-lost0000000", timeout=30)
    assert job.state == jobs.FAILED
    assert "no longer knows this job" in job.error


def test_without_the_setting_ray_is_never_imported():
    """The job layer in a fresh interpreter without MNIST_STUDIO_RAY_ADDRESS: a local manager, no Ray."""
    code = ("import sys; from lib.execution import managers; from lib.store import profile; "
            "m = managers.manager_for(profile.current()); print(type(m).__name__, 'ray' in sys.modules)")
    environ = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    result = subprocess.run([sys.executable, "-c", code], cwd=managers.__file__.rsplit("/lib/", 1)[0],
                            capture_output=True, text=True, check=True, env=environ)
    assert result.stdout.split() == ["JobManager", "False"]


def test_cluster_settings_are_checked():
    """A setting the app cannot use is named, as the profile's settings are."""
    assert raycluster.settings({}) is None
    chosen = raycluster.settings({raycluster.ADDRESS_ENV: "127.0.0.1:8265", raycluster.CPUS_ENV: "2"})
    assert chosen.address == "http://127.0.0.1:8265" and chosen.cpus == 2.0 and chosen.max_running == 2
    assert chosen.memory_mb == raycluster.TRAINING_MEMORY_MB
    assert raycluster.settings({raycluster.ADDRESS_ENV: "x:1", raycluster.MEMORY_ENV: "0"}).memory_mb == 0
    with pytest.raises(profile.SettingError, match=raycluster.MEMORY_ENV):
        raycluster.settings({raycluster.ADDRESS_ENV: "x:1", raycluster.MEMORY_ENV: "1.5 GB"})
    with pytest.raises(profile.SettingError, match=raycluster.MAX_RUNNING_ENV):
        raycluster.settings({raycluster.ADDRESS_ENV: "x:1", raycluster.MAX_RUNNING_ENV: "none"})
