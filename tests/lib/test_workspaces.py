"""Workspaces: in public, visitor B can neither see nor change visitor A's runs, not even by run id."""

import json
import threading
import time

import pytest

from lib.store import profile, runs, workspaces

PUBLIC = profile.current({"MNIST_STUDIO_PROFILE": "public"})
LOCAL = profile.current({})
A_RUN, B_RUN, GALLERY_RUN = "20260101-000000-aaaaaa", "20260101-000001-bbbbbb", "20260101-000002-cccccc"


def fake_run(folder, run_id, name):
    """A complete run folder (meta.json, model.keras, history.csv) without training one."""
    path = folder / run_id
    path.mkdir(parents=True)
    (path / runs.MODEL_FILE).write_bytes(b"weights" * 100)
    (path / runs.HISTORY_FILE).write_text("epoch,loss\n1,0.5\n")
    meta = {"run_id": run_id, "display_name": name, "config": {}, "dataset": {"name": "mnist"},
            "created_at": f"2026-01-01T00:00:0{run_id[-1] == 'b'}"}
    (path / runs.META_FILE).write_text(json.dumps(meta))
    return path


@pytest.fixture
def two_visitors(tmp_path):
    root = tmp_path / "runs"
    a = workspaces.open_workspace(workspaces.new_key(), current=PUBLIC, root=root)
    b = workspaces.open_workspace(workspaces.new_key(), current=PUBLIC, root=root)
    fake_run(a.folder, A_RUN, "visitor A run")
    fake_run(b.folder, B_RUN, "visitor B run")
    return root, a, b


def ids(workspace):
    return [run.run_id for run in workspace.list_runs()[0] if run.run_id != runs.BUNDLED_ID]


def test_each_visitor_lists_only_their_own_runs(two_visitors):
    root, a, b = two_visitors
    assert ids(a) == [A_RUN] and ids(b) == [B_RUN]
    assert any(run.run_id == runs.BUNDLED_ID and run.read_only for run in a.list_runs()[0])
    assert a.folder.parent == root / workspaces.WORKSPACES_SUBDIR
    assert a.key not in str(a.folder)  # the folder name does not reveal the key
    assert runs.list_runs(root, include_bundled=False)[0] == []  # nothing leaks into a plain listing


def test_b_cannot_open_rename_delete_or_share_a_run_by_its_id(two_visitors):
    _, a, b = two_visitors
    for attempt in (lambda: b.get_run(A_RUN), lambda: b.rename_run(A_RUN, "mine now"),
                    lambda: b.delete_run(A_RUN), lambda: b.share(A_RUN)):
        with pytest.raises(runs.RunNotFound, match="No run '20260101-000000-aaaaaa'"):
            attempt()
    assert a.get_run(A_RUN).display_name == "visitor A run"  # untouched


def test_the_same_key_opens_the_same_workspace_and_a_bad_key_is_refused(two_visitors):
    root, a, _ = two_visitors
    again = workspaces.open_workspace(a.key, current=PUBLIC, root=root)
    assert ids(again) == [A_RUN]
    for bad in (None, "", "short", "../" * 12, a.key + "!"):
        with pytest.raises(workspaces.WorkspaceNotFound, match="This workspace link is not valid"):
            workspaces.open_workspace(bad, current=PUBLIC, root=root)


def test_a_visitor_renames_and_deletes_their_own_runs(two_visitors):
    _, a, _ = two_visitors
    assert a.rename_run(A_RUN, "better name").display_name == "better name"
    a.delete_run(A_RUN)
    assert ids(a) == []


def test_share_link_opens_one_run_read_only_for_anyone(two_visitors):
    root, a, b = two_visitors
    token = a.share(A_RUN)
    assert a.share(A_RUN) == token  # one link per run
    assert token != a.key and workspaces.valid_key(token)
    shared = workspaces.open_share(token, root=root)
    assert shared.run_id == A_RUN and shared.read_only
    assert A_RUN not in ids(b)  # the link does not put the run into B's workspace
    for bad in (None, "x" * 10, workspaces.new_key(), a.key):
        with pytest.raises(workspaces.WorkspaceNotFound):
            workspaces.open_share(bad, root=root)
    a.delete_run(A_RUN)
    with pytest.raises(workspaces.WorkspaceNotFound, match="deleted or has expired"):
        workspaces.open_share(token, root=root)


def test_bundled_and_gallery_runs_are_visible_to_all_and_changeable_by_none(tmp_path):
    gallery = tmp_path / "gallery"
    fake_run(gallery, GALLERY_RUN, "operator's pick")
    current = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_GALLERY_DIR": str(gallery)})
    visitors = [workspaces.open_workspace(workspaces.new_key(), current=current, root=tmp_path / "runs")
                for _ in range(2)]
    for visitor in visitors:
        assert ids(visitor) == [GALLERY_RUN]
        assert visitor.get_run(GALLERY_RUN).read_only
        for change in (lambda v=visitor: v.rename_run(GALLERY_RUN, "x"), lambda v=visitor: v.delete_run(GALLERY_RUN),
                       lambda v=visitor: v.delete_run(runs.BUNDLED_ID)):
            with pytest.raises(runs.ReadOnlyRun):
                change()
    assert (gallery / GALLERY_RUN / runs.META_FILE).is_file()


def test_local_profile_is_one_workspace_the_runs_dir(tmp_path):
    root = tmp_path / "runs"
    fake_run(root, A_RUN, "mine")
    workspace = workspaces.open_workspace(None, current=LOCAL, root=root)
    assert workspace.folder == root and workspace.key is None
    assert ids(workspace) == [A_RUN]
    with workspaces.reserve(workspace, 10**15, current=LOCAL, root=root):
        pass  # no quota in local


def test_idle_workspaces_expire_with_their_share_links(two_visitors):
    root, a, b = two_visitors
    token = a.share(A_RUN)
    now = time.time()
    a.touch(now - 8 * 86_400)
    b.touch(now - 1 * 86_400)
    assert workspaces.sweep_expired(7, root=root, now=now) == [a.folder.name]
    assert not a.folder.exists() and ids(b) == [B_RUN]
    with pytest.raises(workspaces.WorkspaceNotFound):
        workspaces.open_share(token, root=root)
    b.touch(now - 30 * 86_400)
    assert workspaces.sweep_expired(7, root=root, now=now, keep={b.folder.name}) == []  # e.g. a job still running


def test_quota_refuses_with_its_message(two_visitors):
    root, a, _ = two_visitors
    tight = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_WORKSPACE_QUOTA_MB": "1"})
    with workspaces.reserve(a, 100_000, current=tight, root=root):
        pass
    with pytest.raises(workspaces.QuotaExceeded, match="Your workspace holds 0.0 MB; this would add 1.9 MB"):
        with workspaces.reserve(a, 2_000_000, current=tight, root=root):
            pass


def test_quotas_hold_under_concurrent_saves(two_visitors):
    """Twelve saves of 300 KB at once into a 1 MB workspace: only three fit, and the disk agrees."""
    root, a, _ = two_visitors
    tight = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_WORKSPACE_QUOTA_MB": "1"})
    size = 300 * 1024
    start, outcomes = threading.Barrier(12), []

    def save(n):
        start.wait()
        try:
            with workspaces.reserve(a, size, current=tight, root=root):
                time.sleep(0.05)  # the write takes a while; others try meanwhile
                (a.folder / f"blob-{n}").write_bytes(b"x" * size)
            outcomes.append("saved")
        except workspaces.QuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=save, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("saved") == 3 and outcomes.count("refused") == 9
    assert a.usage_bytes() <= 1024 * 1024


def test_total_quota_counts_every_workspace(two_visitors):
    root, a, b = two_visitors
    tight = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_TOTAL_QUOTA_MB": "1"})
    (a.folder / "blob").write_bytes(b"x" * 900_000)
    with pytest.raises(workspaces.QuotaExceeded, match="This shared app's storage is full"):
        with workspaces.reserve(b, 200_000, current=tight, root=root):
            pass


def test_an_imported_run_lands_in_the_importers_workspace_only(two_visitors):
    """The seam bundle import uses: store() hands the importer's own folder to the writer."""
    root, a, b = two_visitors
    imported = b.store(10_000, lambda folder: fake_run(folder, "20260102-000000-dddddd", "from A's bundle"),
                       current=PUBLIC)
    assert imported.parent == b.folder
    assert "20260102-000000-dddddd" in ids(b) and "20260102-000000-dddddd" not in ids(a)


def test_store_refuses_over_quota_before_writing(two_visitors):
    root, a, _ = two_visitors
    tight = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_WORKSPACE_QUOTA_MB": "1"})
    written = []
    with pytest.raises(workspaces.QuotaExceeded):
        a.store(5_000_000, written.append, current=tight)
    assert written == []


def test_a_training_over_quota_is_refused_before_it_starts(two_visitors, tiny_data_dir):
    from lib.execution import jobs
    from lib.training.config import TrainConfig

    root, a, _ = two_visitors
    tight = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_WORKSPACE_QUOTA_MB": "1"})
    started = []

    def trainer(config, on_progress, should_stop, data_dir, runs_dir):
        started.append(runs_dir)
        result = jobs.ChildResult("finished", "done", 0.9, 0.3, 1.0, 10.0, "float32")
        return jobs.ChildRun("r"), result

    manager = jobs.JobManager(trainer=workspaces.quota_guarded(trainer, current=tight), data_dir=tiny_data_dir)
    big = manager.wait(manager.submit(TrainConfig(arch="mlp-500x2"), "a", runs_dir=a.folder), timeout=10)
    assert big.state == jobs.FAILED and big.error.startswith("Your workspace holds")
    assert "the limit is 1 MB" in big.error and started == []
    small = manager.wait(manager.submit(TrainConfig(arch="softmax"), "a", runs_dir=a.folder), timeout=10)
    assert small.state == jobs.FINISHED and started == [a.folder]


def test_a_training_over_the_budget_is_refused_by_the_server_too(two_visitors, tiny_data_dir):
    """The Train page checks the limits first; the job manager checks again for any other caller."""
    from lib.execution import jobs
    from lib.training.config import TrainConfig

    root, a, _ = two_visitors
    started = []

    def trainer(config, on_progress, should_stop, data_dir, runs_dir):
        started.append(config)
        return jobs.ChildRun("r"), jobs.ChildResult("finished", "done", 0.9, 0.3, 1.0, 10.0, "float32")

    strict = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_MAX_EPOCH_IMAGES": "5000"})
    manager = jobs.JobManager(trainer=workspaces.quota_guarded(trainer, current=strict), data_dir=tiny_data_dir)
    greedy = TrainConfig(arch="softmax", epochs=500)
    job = manager.wait(manager.submit(greedy, "a", runs_dir=a.folder), timeout=10)
    assert job.state == jobs.FAILED and "this shared app allows 5,000 per run" in job.error
    assert started == []


def test_datasets_a_visitor_uploads_are_theirs_and_their_trainings_find_them(two_visitors, tiny_data_dir):
    """A's uploaded dataset is listed and trainable in A's workspace only; B does not see it."""
    from lib.data import catalog, datasets
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig
    from tests.conftest import synthetic_arrays

    root, a, b = two_visitors
    a.store(100_000, lambda folder: datasets.save_arrays(
        "a_shapes", synthetic_arrays(60, 20, num_classes=3), class_names=["o", "x", "+"],
        folder=datasets.uploads_dir(folder)), current=PUBLIC)
    assert "a_shapes" in catalog.available_datasets(tiny_data_dir, a.uploads_dir)
    assert "a_shapes" not in catalog.available_datasets(tiny_data_dir, b.uploads_dir)
    run, _ = train_and_save(TrainConfig(dataset="a_shapes", arch="softmax", epochs=1), data_dir=tiny_data_dir,
                            runs_dir=a.folder)
    assert run.path.parent == a.folder and run.class_names == ["o", "x", "+"]
    with pytest.raises(ValueError, match="Unknown dataset: 'a_shapes'"):
        train_and_save(TrainConfig(dataset="a_shapes", arch="softmax", epochs=1), data_dir=tiny_data_dir,
                       runs_dir=b.folder)


def test_opening_a_workspace_renews_its_stamp_only_when_it_is_old(two_visitors):
    """Pages open the workspace several times a rerun: the stamp is written when it is stale, not each time."""
    root, a, _ = two_visitors
    stamp = a.folder / workspaces.LAST_USED_FILE
    a.touch(time.time() - 60)
    before = stamp.read_text()
    workspaces.open_workspace(a.key, current=PUBLIC, root=root)
    assert stamp.read_text() == before  # a minute old: left alone
    a.touch(time.time() - 2 * workspaces.TOUCH_EVERY_S)
    workspaces.open_workspace(a.key, current=PUBLIC, root=root)
    assert time.time() - workspaces.last_used(a.folder) < 60  # stale: renewed


def test_a_visitor_who_comes_back_while_the_sweep_looks_keeps_their_workspace(two_visitors, monkeypatch):
    """The sweep reads A's week-old stamp; A opens their link at that very moment: A's runs stay."""
    root, a, _ = two_visitors
    a.touch(time.time() - 8 * 86_400)
    sweep_looked, came_back = threading.Barrier(2, timeout=10), threading.Event()
    real_last_used, first_look = workspaces.last_used, []

    def last_used(folder):
        stamp = real_last_used(folder)
        if threading.current_thread().name == "sweeper" and folder.name == a.folder.name and not first_look:
            first_look.append(stamp)
            sweep_looked.wait()  # A comes back now, between the sweep's look and what it does about it
            came_back.wait(timeout=5)
        return stamp

    monkeypatch.setattr(workspaces, "last_used", last_used)
    removed = []
    sweeper = threading.Thread(target=lambda: removed.extend(workspaces.sweep_expired(7, root=root)),
                               name="sweeper")

    def visitor():
        sweep_looked.wait()
        workspaces.open_workspace(a.key, current=PUBLIC, root=root)
        came_back.set()

    returning = threading.Thread(target=visitor)
    sweeper.start()
    returning.start()
    sweeper.join()
    returning.join()
    assert first_look and time.time() - first_look[0] > 7 * 86_400  # the sweep did see it idle
    assert removed == [] and ids(a) == [A_RUN]
    assert time.time() - real_last_used(a.folder) < 60


def test_a_save_in_progress_or_a_kept_workspace_is_not_swept(two_visitors):
    """A save holding a reservation, and a workspace the caller keeps (a job in it), survive the sweep."""
    root, a, b = two_visitors
    now = time.time()
    a.touch(now - 8 * 86_400)
    b.touch(now - 8 * 86_400)
    with workspaces.reserve(a, 1_000, current=PUBLIC, root=root):
        assert workspaces.sweep_expired(7, root=root, now=now, keep={b.folder.name}) == []
    assert ids(a) == [A_RUN] and ids(b) == [B_RUN]
    assert workspaces.sweep_expired(7, root=root, now=now) == sorted([a.folder.name, b.folder.name])


def test_the_apps_sweep_keeps_workspaces_with_a_training_queued_or_running(tmp_path, monkeypatch):
    """The app passes the job manager's active jobs into the sweep: their workspaces stay, whoever queued them."""
    from lib.execution import jobs
    from lib.training.config import TrainConfig
    from lib.ui import common as ui

    root = tmp_path / "runs"
    monkeypatch.setenv("MNIST_STUDIO_PROFILE", "public")
    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(root))
    running, queued, idle = (workspaces.open_workspace(workspaces.new_key(), root=root) for _ in range(3))
    for workspace in (running, queued, idle):
        workspace.touch(time.time() - 8 * 86_400)
    release = threading.Event()

    def trainer(config, on_progress, should_stop, data_dir, runs_dir):
        release.wait(timeout=30)
        return jobs.ChildRun("r"), jobs.ChildResult("finished", "done", 0.9, 0.3, 1.0, 10.0, "float32")

    manager = jobs.JobManager(trainer=trainer)
    monkeypatch.setattr(ui, "job_manager", lambda: manager)
    first = manager.submit(TrainConfig(), "tab-1", runs_dir=running.folder)
    second = manager.submit(TrainConfig(), "tab-2", runs_dir=queued.folder)
    ui.sweep_idle_workspaces.clear()
    try:
        assert ui.sweep_idle_workspaces() == [idle.folder.name]
        assert running.folder.is_dir() and queued.folder.is_dir()
    finally:
        release.set()
        manager.wait(first, timeout=10)
        manager.wait(second, timeout=10)
        ui.sweep_idle_workspaces.clear()
    assert ui.sweep_idle_workspaces() == sorted([running.folder.name, queued.folder.name])
    ui.sweep_idle_workspaces.clear()


def big_run(folder, run_id, nbytes):
    """A run folder whose model takes `nbytes`."""
    path = fake_run(folder, run_id, "bigger than it said")
    (path / runs.MODEL_FILE).write_bytes(b"w" * nbytes)
    return path


@pytest.mark.parametrize("limit, message", [
    ("MNIST_STUDIO_WORKSPACE_QUOTA_MB", r"on disk it takes 1\.9 MB.*Your workspace holds 0\.0 MB.*the limit is 1 MB"),
    ("MNIST_STUDIO_TOTAL_QUOTA_MB", r"on disk it takes 1\.9 MB.*This shared app's storage is full"),
])
def test_a_save_bigger_than_its_estimate_is_taken_back_with_a_message(two_visitors, limit, message):
    """The quota was checked against 10 KB; the save wrote 2 MB: it is deleted again and the visitor told why."""
    root, a, b = two_visitors
    tight = profile.current({"MNIST_STUDIO_PROFILE": "public", limit: "1"})
    with pytest.raises(workspaces.QuotaExceeded, match=f"^It was not kept: {message}"):
        a.store(10_000, lambda folder: big_run(folder, "20260103-000000-eeeeee", 2_000_000), current=tight)
    assert ids(a) == [A_RUN] and ids(b) == [B_RUN]  # what was there stays
    with pytest.raises(workspaces.QuotaExceeded, match="^It was not kept"):  # a save that returns no path
        a.store(10_000, lambda folder: (folder / "blob.bin").write_bytes(b"x" * 2_000_000), current=tight)
    assert sorted(path.name for path in a.folder.iterdir() if not path.name.startswith(".")) == [A_RUN]
    assert not list(a.folder.glob(f"{workspaces.UNDO_PREFIX}*"))
    fits = a.store(10_000, lambda folder: fake_run(folder, "20260103-000001-ffffff", "fits"), current=tight)
    assert fits.is_dir() and "20260103-000001-ffffff" in ids(a)


def test_a_dataset_replaced_over_quota_gets_its_old_file_back(two_visitors, tiny_data_dir):
    """Saving a dataset under an existing name, too big after all: the old dataset is back, byte for byte."""
    import numpy as np

    from lib.data import catalog, datasets
    from tests.conftest import synthetic_arrays

    root, a, _ = two_visitors
    tight = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_WORKSPACE_QUOTA_MB": "1"})

    def save(arrays):
        return lambda folder: datasets.save_arrays("shapes", arrays, class_names=["o", "x", "+"],
                                                   folder=datasets.uploads_dir(folder))

    small = a.store(100_000, save(synthetic_arrays(60, 20, num_classes=3)), current=tight)
    before = small.path.read_bytes()
    noise = np.random.default_rng(0).integers(0, 256, size=(1_600, 28, 28), dtype=np.uint8)  # incompressible
    big = {"x_train": noise, "y_train": np.arange(1_600, dtype=np.uint8) % 3,
           "x_test": noise[:30], "y_test": np.arange(30, dtype=np.uint8) % 3}
    with pytest.raises(workspaces.QuotaExceeded, match="^It was not kept"):
        a.store(100_000, save(big), current=tight)
    assert small.path.read_bytes() == before
    assert catalog.available_datasets(tiny_data_dir, a.uploads_dir)["shapes"].train_images == 60
    assert not list(a.folder.glob(f"{workspaces.UNDO_PREFIX}*"))


def test_a_training_whose_run_is_bigger_than_estimated_is_not_kept(two_visitors, tiny_data_dir):
    """The job's run was estimated small from its parameters but wrote 2 MB: the job fails with the
    message and the run folder is gone."""
    from lib.execution import jobs
    from lib.training.config import TrainConfig

    root, a, _ = two_visitors
    tight = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_WORKSPACE_QUOTA_MB": "1"})

    def trainer(config, on_progress, should_stop, data_dir, runs_dir):
        big_run(runs_dir, "20260103-000002-aaaaaa", 2_000_000)
        return jobs.ChildRun("20260103-000002-aaaaaa"), jobs.ChildResult("finished", "done", 0.9, 0.3, 1.0, 10.0,
                                                                           "float32")

    manager = jobs.JobManager(trainer=workspaces.quota_guarded(trainer, current=tight), data_dir=tiny_data_dir)
    job = manager.wait(manager.submit(TrainConfig(arch="softmax"), "a", runs_dir=a.folder), timeout=10)
    assert job.state == jobs.FAILED and job.error.startswith("It was not kept: on disk it takes 1.9 MB")
    assert ids(a) == [A_RUN]


def test_local_saves_are_not_measured_or_taken_back(tmp_path):
    root = tmp_path / "runs"
    workspace = workspaces.open_workspace(None, current=LOCAL, root=root)
    path = workspace.store(10, lambda folder: big_run(folder, A_RUN, 3_000_000), current=LOCAL)
    assert path.is_dir() and ids(workspace) == [A_RUN]
