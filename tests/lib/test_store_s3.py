"""The run store on a real S3-compatible server (moto's server mode on 127.0.0.1, started here).

A "restart" is a fresh runs folder (this server's working copy) with the same store URL.
"""

import json
import os
import shutil
import time
import uuid

import boto3
import numpy as np
import pytest
import s3fs
from botocore.exceptions import ClientError, EndpointConnectionError

from lib import cli
from lib.execution import process
from lib.execution.pipeline import train_and_save
from lib.models import inference
from lib.store import backend, profile, runs, workspaces
from lib.training.config import TrainConfig
from tests.moto_s3 import free_port, requests, start_moto

PUBLIC = profile.current({"MNIST_STUDIO_PROFILE": "public"})


@pytest.fixture(scope="module")
def moto_log(tmp_path_factory):
    """The S3 server's request log: what the store was really asked."""
    return tmp_path_factory.mktemp("moto") / "requests.log"


@pytest.fixture(scope="module")
def s3_server(moto_log):
    process, endpoint = start_moto(log=moto_log)
    yield endpoint
    process.terminate()
    process.wait(10)


def use_store(monkeypatch, endpoint: str, url: str, **more) -> None:
    """MNIST_STUDIO_STORE = `url` on the S3 server at `endpoint`, moto's test keys unless `more` says otherwise."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", backend.ENDPOINT_ENV: endpoint, backend.STORE_ENV: url,
                        **more}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def store(s3_server, moto_log, tmp_path, monkeypatch):
    """A fresh bucket on the server as MNIST_STUDIO_STORE; returns a function that "restarts" the app
    server: a new, empty runs folder with the same store."""
    bucket = f"runs-{uuid.uuid4().hex[:12]}"
    use_store(monkeypatch, s3_server, f"s3://{bucket}/studio")
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    servers = iter(range(1, 100))

    def restart():
        backend._STORES.clear()
        folder = tmp_path / f"server-{next(servers)}"
        monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(folder))
        return folder

    restart.bucket = bucket
    restart.log = moto_log
    restart.fs = s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing")
    return restart


def fake_run(folder, name):
    """A complete run (meta.json, model.keras, history.csv) written through the run store, no training."""

    def write(tmp, run_id):
        (tmp / runs.MODEL_FILE).write_bytes(b"weights" * 100)
        (tmp / runs.HISTORY_FILE).write_text("epoch,loss\n1,0.5\n")
        return {"run_id": run_id, "display_name": name, "config": {}, "dataset": {"name": "mnist"},
                "created_at": runs.timestamp()}

    return runs.write_run(write, folder)


def own_ids(found):
    return [run.run_id for run in found if not run.read_only]


def test_a_trained_run_survives_a_restart_with_its_predictions_then_rename_and_delete(store, tiny_data_dir):
    first = store()
    run, _ = train_and_save(TrainConfig(arch="softmax", epochs=1, limit=200), data_dir=tiny_data_dir)
    assert store.fs.exists(f"{store.bucket}/studio/{run.run_id}/{backend.COMMIT_FILE}")
    images = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    before = inference.predict_proba(runs.load_model(run), images, normalize=run.normalize)

    second = store()  # the server restarts with empty local folders
    found, damaged = runs.list_runs()
    assert own_ids(found) == [run.run_id] and damaged == []
    assert found[0].path.parent == second != first
    after = inference.predict_proba(runs.load_model(found[0]), images, normalize=run.normalize)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)

    runs.rename_run(run.run_id, "kept on S3")
    store()
    assert runs.get_run(run.run_id).display_name == "kept on S3"  # get_run pulls what is missing

    runs.delete_run(run.run_id)
    assert not store.fs.exists(f"{store.bucket}/studio/{run.run_id}")
    backend.current().remove(second / run.run_id)  # deleting again (a retry) is harmless
    store()
    assert own_ids(runs.list_runs()[0]) == []


def test_a_save_cut_off_half_way_lists_nothing(store):
    store()
    run = fake_run(None, "complete")
    store.fs.rm(f"{store.bucket}/studio/{run.run_id}/{backend.COMMIT_FILE}")  # the commit object never came
    half = f"{store.bucket}/studio/20260101-000000-abcdef"
    store.fs.pipe({f"{half}/model.keras": b"weights", f"{half}/history.csv": b"epoch\n1\n"})  # no meta, no commit
    fresh = store()
    found, damaged = runs.list_runs()
    assert own_ids(found) == [] and damaged == []
    assert not (fresh / run.run_id).exists() and backend.current().problem == ""


def test_workspaces_and_share_links_survive_a_restart_and_stay_private(store, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_PROFILE", "public")
    store()
    key_a, key_b = workspaces.new_key(), workspaces.new_key()
    a = workspaces.open_workspace(key_a)
    run = a.store(1000, lambda folder: fake_run(folder, "visitor A run"))
    token = a.share(run.run_id)
    workspaces.open_workspace(key_b)

    store()
    a, b = workspaces.open_workspace(key_a), workspaces.open_workspace(key_b)
    assert own_ids(b.list_runs()[0]) == []
    assert own_ids(a.list_runs()[0]) == [run.run_id]
    shared = workspaces.open_share(token)
    assert shared.run_id == run.run_id and shared.read_only
    assert a.share(run.run_id) == token  # the run's link is the same after the restart
    with pytest.raises(runs.RunNotFound):
        b.get_run(run.run_id)


def test_quotas_count_runs_brought_back_from_the_store(store, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_PROFILE", "public")
    monkeypatch.setenv("MNIST_STUDIO_WORKSPACE_QUOTA_MB", "1")
    store()
    key = workspaces.new_key()
    workspace = workspaces.open_workspace(key)
    workspace.store(1000, lambda folder: runs.write_run(
        lambda tmp, run_id: _big_run(tmp, run_id), folder))
    store()
    workspace = workspaces.open_workspace(key)
    workspace.list_runs()  # the first page of the visit brings the runs back
    with pytest.raises(workspaces.QuotaExceeded):
        workspace.store(400_000, lambda folder: fake_run(folder, "one too many"))


def _big_run(tmp, run_id):
    (tmp / runs.MODEL_FILE).write_bytes(b"w" * 700_000)
    (tmp / runs.HISTORY_FILE).write_text("epoch\n1\n")
    return {"run_id": run_id, "display_name": "big", "config": {}, "dataset": {"name": "mnist"}}


def test_an_unreachable_store_says_so_and_keeps_the_bundled_model_and_the_saved_run(store, monkeypatch):
    folder = store()
    monkeypatch.setenv(backend.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    found, _ = runs.list_runs()
    assert [run.run_id for run in found] == [runs.BUNDLED_ID]
    assert "cannot be reached" in backend.current().problem and "Traceback" not in backend.current().problem
    with pytest.raises(backend.StoreError, match="cannot be reached") as refused:
        fake_run(None, "made while the store is down")
    message = process.user_message(refused.value)  # what the Train page shows for a training's save
    assert message.startswith("The run was saved, but not to the run store.") and "Run bundle" in message
    assert len([p for p in folder.iterdir() if not p.name.startswith(".")]) == 1  # kept here, not lost


def test_a_store_that_cannot_be_reached_is_asked_again_only_after_a_while(tmp_path, monkeypatch):
    """While the store is down a page pays for one refused call, not one per listing, quota and share
    link (a trained run's save still tries); once DOWN_RETRY_S has passed the store is asked again and,
    back, it answers."""
    port = free_port()
    use_store(monkeypatch, f"http://127.0.0.1:{port}", "s3://back-later/studio",
              **{backend.ATTEMPTS_ENV: "1", "MNIST_STUDIO_RUNS_DIR": str(tmp_path / "runs")})
    backend._STORES.clear()
    runs.list_runs()
    current = backend.current()
    assert "cannot be reached" in current.problem
    asked = current.requests
    for _ in range(4):
        with pytest.raises(backend.StoreError, match="cannot be reached"):
            current.get_json("workspaces/someone.json")
    assert current.requests == asked  # none of the four went out
    with pytest.raises(backend.StoreError, match="cannot be reached"):
        fake_run(None, "trained while the store is down")
    assert current.requests == asked + 1  # a trained run's save is tried all the same
    process, endpoint = start_moto(port=port)
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="back-later")
        with pytest.raises(backend.StoreError, match="cannot be reached"):
            current.get_json("workspaces/someone.json")  # back, but the while has not passed
        monkeypatch.setattr(backend, "DOWN_RETRY_S", 0.0)  # it has now
        assert current.get_json("workspaces/someone.json") is None and current.requests == asked + 2
        saved = fake_run(None, "made once the store is back")
        current.expire_listings()
        found, _ = runs.list_runs()
        assert saved.run_id in [run.run_id for run in found] and current.problem == ""
    finally:
        process.terminate()
        process.wait(10)


def test_a_run_trained_while_the_store_is_down_is_sent_there_once_it_is_back(tmp_path, monkeypatch):
    """A run saved while the store cannot be reached stays here, marked; the first listing that
    reaches the store again sends it, so a restarted server (an empty disk) lists it, model and all."""
    port = free_port()
    use_store(monkeypatch, f"http://127.0.0.1:{port}", "s3://back-soon/studio",
              **{backend.ATTEMPTS_ENV: "1", "MNIST_STUDIO_RUNS_DIR": str(tmp_path / "server-1")})
    backend._STORES.clear()
    with pytest.raises(backend.StoreError, match="sent to the store by itself once the store answers again"):
        fake_run(None, "trained while the store is down")
    (folder,) = [p for p in (tmp_path / "server-1").iterdir() if not p.name.startswith(".")]
    assert (folder / backend.PENDING_FILE).is_file()
    assert [run.display_name for run in runs.list_runs()[0] if not run.read_only] == ["trained while the store is down"]
    process, endpoint = start_moto(port=port)
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="back-soon")
        monkeypatch.setattr(backend, "DOWN_RETRY_S", 0.0)
        backend.current().expire_listings()
        runs.list_runs()
        backend.current().settle()
        assert not (folder / backend.PENDING_FILE).exists() and backend.current().problem == ""

        monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(tmp_path / "server-2"))  # a restart on an empty disk
        backend._STORES.clear()
        (back,) = [run for run in runs.list_runs()[0] if not run.read_only]
        assert (back.run_id, back.display_name) == (folder.name, "trained while the store is down")
        assert back.model_path.read_bytes() == (folder / runs.MODEL_FILE).read_bytes()
        assert not (back.path / backend.PENDING_FILE).exists()
    finally:
        process.terminate()
        process.wait(10)



def test_a_dataset_added_while_the_store_is_down_is_sent_there_once_it_is_back(tmp_path, monkeypatch):
    """A visitor's dataset saved while the store cannot be reached is kept here, marked; the first listing
    of the workspace that reaches the store sends it, so after a restart on an empty disk the visitor has it
    again."""
    from lib.data import catalog, datasets
    from tests.conftest import synthetic_arrays

    port = free_port()
    use_store(monkeypatch, f"http://127.0.0.1:{port}", "s3://back-soon/studio",
              **{backend.ATTEMPTS_ENV: "1", "MNIST_STUDIO_RUNS_DIR": str(tmp_path / "server-1"),
                 "MNIST_STUDIO_PROFILE": "public"})
    backend._STORES.clear()
    key = workspaces.new_key()
    workspace = workspaces.open_workspace(key)
    arrays = synthetic_arrays(40, 20, num_classes=3)
    with pytest.raises(backend.StoreError, match="cannot be reached"):
        workspace.store(100_000, lambda folder: datasets.save_arrays(
            "letters", arrays, class_names=["a", "b", "c"], folder=datasets.uploads_dir(folder)))
    saved = datasets.uploads_dir(workspace.folder) / "letters.npz"
    assert saved.is_file() and backend.dataset_marker(saved).is_file()
    process, endpoint = start_moto(port=port)
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="back-soon")
        monkeypatch.setattr(backend, "DOWN_RETRY_S", 0.0)
        backend.current().pull(workspace.folder, wait=True)
        assert backend.current().problem == "" and not backend.dataset_marker(saved).exists()

        monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(tmp_path / "server-2"))  # a restart on an empty disk
        backend._STORES.clear()
        mine = workspaces.open_workspace(key)
        backend.current().pull(mine.folder, wait=True)
        loaded = catalog.load_dataset("letters", tmp_path, mine.uploads_dir)
        np.testing.assert_array_equal(loaded.x_test.reshape(arrays["x_test"].shape), arrays["x_test"])
    finally:
        process.terminate()
        process.wait(10)


def test_an_upload_cut_off_half_way_is_finished_by_the_next_listing_and_deleted_runs_stay_deleted(store, monkeypatch):
    """A server stopped between a run's files and its commit object leaves the run marked here: the
    next listing sends it whole. A run whose upload finished is never sent again, so a run another
    server deleted stays deleted on the store."""
    here = store()
    cut = fake_run(None, "cut off")
    finished = fake_run(None, "deleted by another server")
    assert not (finished.path / backend.PENDING_FILE).exists()
    (cut.path / backend.PENDING_FILE).touch()  # as a push stopped after the model, before meta.json and commit
    for leaf in (backend.COMMIT_FILE, runs.META_FILE):
        store.fs.rm_file(f"{store.bucket}/studio/{cut.run_id}/{leaf}")

    elsewhere = store()  # another server: lists only committed runs, deletes one
    assert own_ids(runs.list_runs()[0]) == [finished.run_id]
    runs.delete_run(finished.run_id)

    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(here))  # the first server again, as it was
    backend._STORES.clear()
    runs.list_runs()
    backend.current().settle()
    assert not (cut.path / backend.PENDING_FILE).exists()
    assert store.fs.exists(f"{store.bucket}/studio/{cut.run_id}/{backend.COMMIT_FILE}")
    assert not store.fs.exists(f"{store.bucket}/studio/{finished.run_id}/{backend.COMMIT_FILE}")

    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(elsewhere))
    backend._STORES.clear()
    assert own_ids(runs.list_runs()[0]) == [cut.run_id]


@pytest.mark.parametrize("setting, attempts", [(None, backend.RETRIES + 1), ("1", 1), ("4", 4)])
def test_aws_max_attempts_sets_how_often_a_store_request_is_tried(store, monkeypatch, setting, attempts):
    """Two retries by default; the standard AWS_MAX_ATTEMPTS (total attempts) overrides them, as the
    page tests of a store that is down use (1: botocore's backoff between retries is seconds per call)."""
    store()
    if setting is None:
        monkeypatch.delenv(backend.ATTEMPTS_ENV, raising=False)
    else:
        monkeypatch.setenv(backend.ATTEMPTS_ENV, setting)
    fs = backend.current().fs
    fs.connect()  # the botocore client s3fs makes, with the settings the store passed
    assert fs.s3.meta.config.retries["total_max_attempts"] == attempts


def test_bad_credentials_are_named(tmp_path, monkeypatch):
    process, endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # moto checks keys against its IAM
    try:
        use_store(monkeypatch, endpoint, "s3://somebucket/studio", AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG1",
                  AWS_SECRET_ACCESS_KEY="wrong", MNIST_STUDIO_RUNS_DIR=str(tmp_path / "runs"))
        backend._STORES.clear()
        runs.list_runs()
        assert "refused the credentials" in backend.current().problem
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("error, said", [
    # a run id's time of day (18:40:32) holds "403": an unreachable store is still unreachable
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:35429/b/studio/20261203-184032-141141/history.csv"),
     "cannot be reached"),
    (ConnectionRefusedError(111, "Connection refused"), "cannot be reached"),
    (ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject"), "refused the credentials"),
    (PermissionError("Access Denied for studio/20261203-184032-141141"), "refused the credentials"),
    (OSError(28, "No space left on device"), "is full"),
    (FileNotFoundError("NoSuchBucket: studio/20261203-184032-141141"), "does not exist"),
])
def test_a_store_failure_is_named_by_its_kind_not_by_digits_in_its_path(error, said):
    message = backend.describe("s3://b/studio", error)
    assert said in message and message.startswith("The run store s3://b/studio ")


def test_cli_store_option_lists_runs_of_the_store_and_one_line_when_unreachable(store, tmp_path, monkeypatch, capsys):
    store()
    run = fake_run(None, "from another machine")
    url = f"s3://{store.bucket}/studio"
    monkeypatch.delenv(backend.STORE_ENV)
    store()
    assert cli.main(["runs", "--json", "--store", url]) == 0
    assert run.run_id in [row["run_id"] for row in json.loads(capsys.readouterr().out)]
    store()
    monkeypatch.setenv(backend.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")
    assert cli.main(["runs", "--store", url]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: The run store") and "cannot be reached" in error[0]


def model_gets(log, bucket, since):
    """GET requests of model files in `bucket` the server answered after its `since`-th request."""
    return [r for r in requests(log, since) if r.method == "GET" and r.path.startswith(f"/{bucket}/")
            and r.path.split("?")[0].endswith(f"/{runs.MODEL_FILE}")]


def logged(store):
    """How many requests the server has logged so far (it writes each line after answering)."""
    time.sleep(0.3)
    return len(requests(store.log))


def test_a_pulled_run_downloads_its_model_once_on_first_use_from_a_cache_keyed_by_content(store):
    """Listing after a restart reads small files only; the first model load downloads it once; later
    loads, and the run pulled again into this server, ask the store for no model file."""
    store()
    run = fake_run(None, "on the store")
    folder = store()
    since = logged(store)
    found, _ = runs.list_runs()
    assert own_ids(found) == [run.run_id]
    assert model_gets(store.log, store.bucket, since) == []  # the listing did not download the model
    assert runs.get_run(run.run_id).meta["display_name"] == "on the store"
    assert runs.read_run(folder / run.run_id).run_id == run.run_id  # complete though the model is on the store

    since = logged(store)
    path = found[0].model_path
    assert path == folder / run.run_id / runs.MODEL_FILE and path.read_bytes() == b"weights" * 100
    assert len(model_gets(store.log, store.bucket, since)) == 1
    since = logged(store)
    for _ in range(3):  # every later rerun
        assert runs.get_run(run.run_id).model_path.read_bytes() == b"weights" * 100
    assert model_gets(store.log, store.bucket, since) == []

    cache = folder / backend.MODEL_CACHE
    (cached,) = [entry for entry in cache.iterdir() if not entry.name.startswith(".")]
    assert cached.name.startswith(f"{len(b'weights' * 100)}-") and cached.stat().st_nlink == 2
    shutil.rmtree(folder / run.run_id)  # this server's copy is gone (a sweep, a lost folder): pulled again
    backend.current().expire_listings()
    since = logged(store)
    again = runs.get_run(run.run_id)
    assert again.model_path.read_bytes() == b"weights" * 100
    assert model_gets(store.log, store.bucket, since) == []  # same size and ETag: from the cache


def test_a_model_file_changed_on_the_store_is_not_taken_from_the_cache(store):
    """The cache is keyed by content: another object (another ETag and size) under the same name is downloaded."""
    store()
    run = fake_run(None, "replaced")
    folder = store()
    assert runs.get_run(run.run_id).model_path.read_bytes() == b"weights" * 100  # now in this server's cache
    store.fs.pipe(f"{store.bucket}/studio/{run.run_id}/{runs.MODEL_FILE}", b"other" * 50)
    shutil.rmtree(folder / run.run_id)
    backend.current().expire_listings()
    again = runs.get_run(run.run_id)
    assert again.model_path.read_bytes() == b"other" * 50
    sizes = sorted(entry.name.split("-")[0] for entry in (folder / backend.MODEL_CACHE).iterdir())
    assert sizes == ["250", "700"]


def test_an_uploaded_dataset_comes_back_after_a_restart_in_its_visitors_workspace_only(store, monkeypatch, tmp_path):
    """A visitor adds a dataset; after a restart it is theirs again (and nobody else's)."""
    from lib.data import catalog, datasets
    from tests.conftest import synthetic_arrays

    monkeypatch.setenv("MNIST_STUDIO_PROFILE", "public")
    store()
    key = workspaces.new_key()
    workspace = workspaces.open_workspace(key)
    arrays = synthetic_arrays(40, 20, num_classes=3)
    workspace.store(100_000, lambda folder: datasets.save_arrays(
        "letters", arrays, class_names=["a", "b", "c"], folder=datasets.uploads_dir(folder)))
    assert store.fs.exists(f"{store.bucket}/studio/{workspaces.WORKSPACES_SUBDIR}/{workspace.folder.name}/"
                           f"{datasets.UPLOADS_SUBDIR}/letters.npz")

    store()
    mine, other = workspaces.open_workspace(key), workspaces.open_workspace(workspaces.new_key())
    for visitor in (mine, other):
        backend.current().pull(visitor.folder)  # what the pages do before listing datasets
    assert "letters" in catalog.available_datasets(tmp_path, mine.uploads_dir)
    assert "letters" not in catalog.available_datasets(tmp_path, other.uploads_dir)
    loaded = catalog.load_dataset("letters", tmp_path, mine.uploads_dir)
    np.testing.assert_array_equal(loaded.x_test.reshape(arrays["x_test"].shape), arrays["x_test"])


def test_the_total_quota_counts_workspaces_this_server_has_not_opened_since_it_restarted(store, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_PROFILE", "public")
    monkeypatch.setenv("MNIST_STUDIO_TOTAL_QUOTA_MB", "1")
    store()
    first = workspaces.open_workspace(workspaces.new_key())
    first.store(1000, lambda folder: runs.write_run(lambda tmp, run_id: _big_run(tmp, run_id), folder))
    store()  # nobody has opened the first workspace here: its 700 kB is only on the store
    second = workspaces.open_workspace(workspaces.new_key())
    with pytest.raises(workspaces.QuotaExceeded):
        second.store(400_000, lambda folder: fake_run(folder, "over the server's total"))


def test_image_folder_caches_are_converted_once_per_store(store):
    """A converted image folder goes up; a restarted server gets it back instead of converting again."""
    first = store()
    cache = first / ".datasets" / ".folders" / "letters"
    cache.mkdir(parents=True)
    (cache / "abc123.npz").write_bytes(b"converted" * 10)
    backend.current().sync(cache.parent, force=True)
    second = store()
    backend.current().sync(second / ".datasets" / ".folders")
    assert (second / ".datasets" / ".folders" / "letters" / "abc123.npz").read_bytes() == b"converted" * 10


def test_after_the_first_listing_pages_do_not_wait_for_the_store_and_see_other_servers_runs_next_time(store):
    """The first listing of a folder pulls now; later ones refresh in the background: the page goes on
    with what is here, and a run another server saved meanwhile is listed on the next render."""
    store()
    first = fake_run(None, "first")
    other_folder = store()  # another server saves a run into the same store
    assert own_ids(runs.list_runs()[0]) == [first.run_id]
    second = fake_run(None, "from the other server")
    mine = store()
    assert own_ids(runs.list_runs()[0]) == [second.run_id, first.run_id] and other_folder != mine
    third = runs.write_run(lambda tmp, run_id: _big_run(tmp, run_id), other_folder)  # the other server again:
    backend.FsspecStore(backend.store_url(), other_folder).push_run(third.path)  # its own store connection
    backend.current().expire_listings()
    since = logged(store)
    assert own_ids(runs.list_runs()[0]) == [second.run_id, first.run_id]  # not waited for
    backend.current().settle()
    assert sorted(own_ids(runs.list_runs()[0])) == sorted([third.run_id, second.run_id, first.run_id])
    assert len(requests(store.log, since)) >= 1
    assert runs.get_run(third.run_id).display_name == "big"


@pytest.mark.parametrize("where", ["s3", "folder"])
def test_of_servers_creating_one_job_board_object_at_once_exactly_one_wins(store, tmp_path, monkeypatch, where):
    """The dispatchers' places on the cluster (lib.execution.raycluster) rest on create_json: of eight
    servers racing to create one object, exactly one succeeds and its content stays; put_json still
    overwrites. On S3 a conditional PUT, in a plain folder a hard link."""
    from concurrent.futures import ThreadPoolExecutor

    if where == "folder":
        monkeypatch.setenv(backend.STORE_ENV, str(tmp_path / "runs"))
    store()
    stores = [backend.FsspecStore(backend.store_url(), tmp_path / f"server-{n}") if where == "s3"
              else backend.LocalStore() for n in range(8)]
    key = f"{backend.JOBS_PREFIX}/places/0-0.json"
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda n: stores[n].create_json(key, {"job_id": f"c-{n}"}), range(8)))
    assert won.count(True) == 1
    assert stores[0].get_json(key) == {"job_id": f"c-{won.index(True)}"}
    assert stores[0].create_json(key, {"job_id": "late"}) is False
    stores[0].put_json(key, {"job_id": "overwritten"})
    assert stores[1].get_json(key) == {"job_id": "overwritten"}
    assert stores[0].list_objects(f"{backend.JOBS_PREFIX}/places").keys() == {key}


def on_server(monkeypatch, folder):
    """Act as the app server whose runs folder is `folder` (each keeps its own store connection)."""
    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(folder))


def relist():
    """A listing once LIST_TTL_S has passed, its background refresh waited for, then what it brought."""
    backend.current().expire_listings()
    runs.list_runs()
    backend.current().settle()
    return [run for run in runs.list_runs()[0] if not run.read_only]


def meta_gets(store, since):
    """GET requests of meta.json files in the store's bucket the server answered after its `since`-th request."""
    return [r for r in requests(store.log, since) if r.method == "GET" and r.path.startswith(f"/{store.bucket}/")
            and r.path.split("?")[0].endswith(f"/{runs.META_FILE}")]


def test_a_rename_on_one_server_reaches_another_that_pulled_the_run_already(store, monkeypatch):
    """Server B lists a run A saved; A renames it; B's next listing (after its 5 s) shows the new name,
    with one GET of meta.json. A listing with nothing changed downloads no meta.json."""
    server_a = store()
    run = fake_run(None, "first name")
    server_b = store()
    assert [found.display_name for found in relist()] == ["first name"]

    on_server(monkeypatch, server_a)
    runs.rename_run(run.run_id, "renamed on A")
    on_server(monkeypatch, server_b)
    since = logged(store)
    assert [found.display_name for found in relist()] == ["renamed on A"]
    assert len(meta_gets(store, since)) == 1
    assert runs.get_run(run.run_id).display_name == "renamed on A"

    meta = server_b / run.run_id / runs.META_FILE
    inode = meta.stat().st_ino
    since = logged(store)
    assert [found.display_name for found in relist()] == ["renamed on A"]
    assert meta_gets(store, since) == [] and len(requests(store.log, since)) >= 1  # listed, nothing downloaded
    assert meta.stat().st_ino == inode


def test_a_run_deleted_on_one_server_disappears_from_another(store, monkeypatch):
    """Server B lists two runs A saved (and opens one's model); A deletes them one by one; each of B's next
    listings drops the deleted run and its folder, the last one too (the store then lists nothing)."""
    server_a = store()
    kept = fake_run(None, "kept")
    gone = fake_run(None, "deleted on A")
    server_b = store()
    assert sorted(found.run_id for found in relist()) == sorted([kept.run_id, gone.run_id])
    assert runs.get_run(gone.run_id).model_path.read_bytes() == b"weights" * 100  # in B's model cache now

    on_server(monkeypatch, server_a)
    runs.delete_run(gone.run_id)
    on_server(monkeypatch, server_b)
    assert [found.run_id for found in relist()] == [kept.run_id]
    assert not (server_b / gone.run_id).exists()
    assert [entry.name for entry in server_b.iterdir() if entry.name.startswith(".trash")] == []
    with pytest.raises(runs.RunNotFound):
        runs.get_run(gone.run_id)

    on_server(monkeypatch, server_a)
    runs.delete_run(kept.run_id)
    on_server(monkeypatch, server_b)
    assert relist() == [] and backend.current().problem == ""
    assert not (server_b / kept.run_id).exists()



def test_a_run_that_vanished_from_the_store_without_a_tombstone_is_kept_here(store, monkeypatch):
    """A run B holds and the store lost without any server deleting it (its objects removed by hand, a bucket
    emptied) stays on B: only a run another server deleted, which leaves a tombstone, is dropped."""
    server_a = store()
    lost = fake_run(None, "lost by the store")
    server_b = store()
    assert [found.run_id for found in relist()] == [lost.run_id]
    fs = backend.current().fs
    fs.rm(backend.current()._key(server_b / lost.run_id), recursive=True)  # gone from the store, no tombstone
    assert [found.run_id for found in relist()] == [lost.run_id] and (server_b / lost.run_id).is_dir()

    on_server(monkeypatch, server_a)
    other = fake_run(None, "deleted on A")
    runs.delete_run(other.run_id)  # a tombstone for this one only
    on_server(monkeypatch, server_b)
    assert [found.run_id for found in relist()] == [lost.run_id]
    assert fs.exists(f"{backend.current()._key(server_b)}/{backend.DELETED}/{other.run_id}")


def test_runs_the_store_never_held_are_never_removed_by_a_listing(store, monkeypatch):
    """A listing that drops a run deleted on another server keeps the runs the store never held: one saved
    before the store was set, one saved while the store was down (then uploaded by that listing)."""
    url = backend.store_url()
    here = store()
    monkeypatch.delenv(backend.STORE_ENV)  # runs folder only, as before the store was set
    before = fake_run(None, "saved before the store was set")
    monkeypatch.setenv(backend.STORE_ENV, url)
    doomed = fake_run(None, "deleted on another server")

    endpoint = os.environ[backend.ENDPOINT_ENV]
    monkeypatch.setenv(backend.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")  # the store is down
    monkeypatch.setenv(backend.ATTEMPTS_ENV, "1")
    backend._STORES.clear()
    with pytest.raises(backend.StoreError, match="cannot be reached"):
        fake_run(None, "saved while the store was down")
    (pending,) = [p for p in here.iterdir() if (p / backend.PENDING_FILE).is_file()]
    monkeypatch.setenv(backend.ENDPOINT_ENV, endpoint)  # back

    elsewhere = store()  # another server deletes one run
    assert own_ids(runs.list_runs()[0]) == [doomed.run_id]
    runs.delete_run(doomed.run_id)

    on_server(monkeypatch, here)
    backend._STORES.clear()
    for _ in range(2):
        assert sorted(found.run_id for found in relist()) == sorted([before.run_id, pending.name])
    assert not (here / doomed.run_id).exists() and (here / before.run_id / runs.MODEL_FILE).is_file()
    assert not (pending / backend.PENDING_FILE).exists()
    assert store.fs.exists(f"{store.bucket}/studio/{pending.name}/{backend.COMMIT_FILE}")
    assert not store.fs.exists(f"{store.bucket}/studio/{before.run_id}")

    on_server(monkeypatch, elsewhere)
    assert [found.run_id for found in relist()] == [pending.name]
