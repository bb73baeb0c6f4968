"""Job manager: one job trains at a time, others queue; stop works; failures are reported; trainings and
imports run in child processes that are ended when they hang, and never touch the server's __main__."""

import json
import os
import sys
import threading
import time
import types
import zipfile

import numpy as np
import pytest

from lib.execution import imports, jobs, process
from lib.store import bundles, runs
from lib.training.config import TrainConfig
from tests.conftest import forged, synthetic_arrays, wait_until, worker_children

HOOKS = "tests.lib.child_tasks"  # misbehaving child tasks





def running(manager, job_id):
    return wait_until(lambda: manager.snapshot(job_id).state == jobs.RUNNING, what=f"{job_id} to run")


class FakeRun:
    def __init__(self, run_id):
        self.run_id = run_id


class FakeResult:
    status, stop_reason, test_accuracy, test_loss, seconds, samples_per_s, precision = (
        "finished", "done", 0.9, 0.3, 1.0, 100.0, "float32")


def slow_trainer(gate):
    """Reports a batch, then waits for the gate (or a stop) before finishing."""

    def trainer(config, on_progress, should_stop, data_dir, runs_dir):
        on_progress({"kind": "batch", "epoch": 1, "epochs": 1, "step": 1, "steps": 2})
        while not gate.is_set() and not should_stop():
            time.sleep(0.01)
        result = FakeResult()
        if should_stop():
            result = type("Stopped", (FakeResult,), {"status": "stopped"})()
        return FakeRun(f"run-{config}"), result

    return trainer


def test_one_job_at_a_time_and_the_queue_reports_positions():
    gate = threading.Event()
    manager = jobs.JobManager(trainer=slow_trainer(gate))
    first = manager.submit("a", "session-1")
    second = manager.submit("b", "session-2")
    third = manager.submit("c", "session-1")
    running(manager, first)
    assert manager.snapshot(second).state == jobs.QUEUED and manager.snapshot(second).position == 1
    assert manager.snapshot(third).position == 2
    assert [job.job_id for job in manager.jobs_for("session-1")] == [third, first]  # own jobs only
    gate.set()
    assert manager.wait(third, timeout=5).state == jobs.FINISHED
    assert manager.snapshot(first).run_id == "run-a"
    assert manager.snapshot(first).batches  # progress recorded for the charts


def test_stop_ends_a_running_job_and_cancels_a_queued_one():
    gate = threading.Event()
    manager = jobs.JobManager(trainer=slow_trainer(gate))
    running = manager.submit("a", "s")
    queued = manager.submit("b", "s")
    wait_until(lambda: manager.snapshot(running).state == jobs.RUNNING, what="the first job to run")
    manager.stop(queued)
    manager.stop(running)
    assert manager.wait(running, timeout=5).state == jobs.STOPPED
    assert manager.snapshot(queued).state == jobs.CANCELLED


def test_a_failing_job_reports_its_error_and_the_worker_survives():
    def trainer(config, on_progress, should_stop, data_dir, runs_dir):
        if config == "bad":
            raise ValueError("The last layer has 5 units, but this dataset has 10 classes.")
        return FakeRun("ok"), FakeResult()

    manager = jobs.JobManager(trainer=trainer)
    bad = manager.submit("bad", "s")
    good = manager.submit("good", "s")
    assert manager.wait(bad, timeout=5).error.startswith("The last layer has 5 units")
    assert manager.wait(good, timeout=5).state == jobs.FINISHED


def instant_trainer(config, on_progress, should_stop, data_dir, runs_dir):
    for step in range(1000):
        on_progress({"kind": "batch", "epoch": 1, "epochs": 1, "step": step, "steps": 1000, "epoch_float": step / 1000})
    return FakeRun(f"run-{config}"), FakeResult()


def test_ended_jobs_are_bounded_per_session_and_overall_and_keep_few_batch_points():
    manager = jobs.JobManager(trainer=instant_trainer, ended_per_session=3, ended_total=5)
    ids = []
    for n in range(12):
        ids.append(manager.submit(f"r{n}", f"session-{n % 2}"))
        manager.wait(ids[-1], timeout=5)
    assert manager.job_count() == 5  # not 12: the history does not grow with every training
    assert [job.job_id for job in manager.jobs_for("session-1")] == [ids[11], ids[9], ids[7]]
    assert [job.job_id for job in manager.jobs_for("session-0")] == [ids[10], ids[8]]
    assert manager.snapshot(ids[0]) is None  # forgotten; its run folder keeps the history
    newest = manager.snapshot(ids[11])
    assert 0 < len(newest.batches) <= jobs.ENDED_BATCH_POINTS  # thinned from 1,000 points
    assert newest.batches[-1]["step"] == 999  # the last point survives thinning


def test_a_forgotten_cancelled_job_does_not_kill_the_worker():
    gate = threading.Event()
    manager = jobs.JobManager(trainer=slow_trainer(gate), ended_per_session=1)
    running = manager.submit("a", "s")
    cancelled = [manager.submit(name, "s") for name in ("b", "c")]
    for job_id in cancelled:
        manager.stop(job_id)  # the first cancelled job is forgotten when the second one ends
    assert manager.snapshot(cancelled[0]) is None
    gate.set()
    manager.wait(running, timeout=5)
    assert manager.wait(manager.submit("d", "s"), timeout=5).state == jobs.FINISHED


def test_caps_refuse_a_second_active_job_per_session_and_a_full_queue_with_a_message():
    gate = threading.Event()
    manager = jobs.JobManager(trainer=slow_trainer(gate), max_active_per_session=1, max_queue=2)
    first = manager.submit("a", "visitor-a")
    running(manager, first)
    with pytest.raises(jobs.SubmitRefused, match="You already have a training queued or running"):
        manager.submit("a2", "visitor-a")
    manager.submit("b", "visitor-b")
    manager.submit("c", "visitor-c")
    assert manager.queue_length() == 2
    with pytest.raises(jobs.SubmitRefused, match="2 trainings are already waiting on this shared app"):
        manager.submit("d", "visitor-d")
    assert manager.active_count("visitor-a") == 1 and manager.active_count("visitor-d") == 0
    gate.set()


def test_concurrent_submits_from_one_session_let_exactly_one_through(monkeypatch):
    """Eight clicks released at once by a barrier; the cap's check is slowed so that, were check and
    enqueue not under one lock, all eight would pass it before any is counted."""
    gate = threading.Event()
    manager = jobs.JobManager(trainer=slow_trainer(gate), max_active_per_session=1)
    check = manager._refusal

    def slow_check(session_id):
        problem = check(session_id)
        time.sleep(0.05)  # the window a second click would slip through
        return problem

    monkeypatch.setattr(manager, "_refusal", slow_check)
    barrier = threading.Barrier(8)
    outcomes = []

    def click():
        barrier.wait(timeout=10)
        try:
            outcomes.append(manager.submit("x", "double-clicker"))
        except jobs.SubmitRefused:
            outcomes.append(None)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == 8
    assert sum(outcome is not None for outcome in outcomes) == 1
    gate.set()


def test_each_job_saves_into_the_runs_dir_it_was_submitted_with(tmp_path):
    seen = []

    def trainer(config, on_progress, should_stop, data_dir, runs_dir):
        seen.append(runs_dir)
        return FakeRun("r"), FakeResult()

    manager = jobs.JobManager(trainer=trainer, runs_dir=tmp_path / "default")
    manager.wait(manager.submit("a", "s", runs_dir=tmp_path / "workspace-a"), timeout=5)
    manager.wait(manager.submit("b", "s"), timeout=5)
    assert seen == [tmp_path / "workspace-a", tmp_path / "default"]


def test_a_training_in_a_child_process_reports_progress_saves_and_can_fail_cleanly(tiny_data_dir, tmp_path):
    """The public server's trainer: a real 1-epoch fit in a fresh process, its run saved, its errors readable."""
    from lib.store import runs
    from lib.training.config import TrainConfig

    manager = jobs.JobManager(trainer=jobs.process_trainer, data_dir=tiny_data_dir, runs_dir=tmp_path)
    job = manager.wait(manager.submit(TrainConfig(arch="softmax", epochs=1, limit=200), "s"), timeout=300)
    assert job.state == jobs.FINISHED, job.error
    saved = runs.get_run(job.run_id, tmp_path).meta
    assert job.epochs and job.epochs[-1]["epoch"] == saved["epochs_completed"] == 1  # progress came back
    assert job.summary["test_accuracy"] == saved["test_accuracy"] is not None  # and so did the outcome
    bad = manager.wait(manager.submit(TrainConfig(dataset="nope", arch="softmax", epochs=1), "s"), timeout=300)
    assert bad.state == jobs.FAILED and bad.error.startswith("Unknown dataset: 'nope'")


def test_the_public_profile_gets_capped_process_training_and_local_stays_as_it_was():
    from lib.store import profile

    local = jobs.manager_for(profile.current({}))
    assert local.max_active_per_session is None and local._trainer is jobs._default_trainer
    public = jobs.manager_for(profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_MAX_QUEUE": "3",
                                               "MNIST_STUDIO_WARM_WORKER": "0"}))  # spares: test_warm_worker.py
    assert (public.max_active_per_session, public.max_queue) == (1, 3)
    assert public._trainer.__qualname__.startswith("quota_guarded")


def test_a_chain_holds_one_place_per_session_and_runs_in_order():
    """A lesson's pair is one click: the second run waits (not queued) until the first ends."""
    gate = threading.Event()
    finished = []

    def trainer(config, on_progress, should_stop, data_dir, runs_dir):
        while not gate.is_set():
            time.sleep(0.01)
        finished.append(config)
        return FakeRun(f"run-{config}"), FakeResult()

    manager = jobs.JobManager(trainer=trainer, max_active_per_session=1)
    first, second = manager.submit_chain(["a", "b"], "visitor")
    assert manager.snapshot(second).state == jobs.WAITING and manager.snapshot(second).position == 0
    assert "joins the queue when the run before it ends" in jobs.describe_state(manager.snapshot(second))
    assert manager.active_count("visitor") == 2 and manager.queue_length() <= 1
    with pytest.raises(jobs.SubmitRefused):
        manager.submit("c", "visitor")  # the chain's first job holds the visitor's one place
    gate.set()
    assert manager.wait(second, timeout=5).state == jobs.FINISHED
    assert finished == ["a", "b"]


def test_cancelling_a_chained_job_lets_the_rest_go_on_and_cancelling_the_waiting_one_works():
    gate = threading.Event()
    manager = jobs.JobManager(trainer=slow_trainer(gate))
    blocker = manager.submit("x", "other")
    first, second, third = manager.submit_chain(["a", "b", "c"], "visitor")
    manager.stop(first)  # queued behind the blocker: cancelled, the next joins the queue
    assert manager.snapshot(first).state == jobs.CANCELLED
    assert manager.snapshot(second).state == jobs.QUEUED and manager.snapshot(third).state == jobs.WAITING
    manager.stop(third)
    assert manager.snapshot(third).state == jobs.CANCELLED
    gate.set()
    assert manager.wait(second, timeout=5).state == jobs.FINISHED
    assert manager.wait(blocker, timeout=5).state == jobs.FINISHED


def test_a_training_process_runs_at_a_lower_cpu_priority_than_the_server(tiny_data_dir, tmp_path):
    """Pages stay responsive while a visitor trains: the child process is niced."""
    manager = jobs.JobManager(trainer=jobs.process_trainer, data_dir=tiny_data_dir, runs_dir=tmp_path)
    job_id = manager.submit(TrainConfig(arch="softmax", epochs=1, limit=200), "s")
    niceness = None
    deadline = time.monotonic() + 300
    while manager.snapshot(job_id).active:
        assert time.monotonic() < deadline, "the training did not end within 300 s"
        for child in worker_children():
            niceness = os.getpriority(os.PRIO_PROCESS, child)
        time.sleep(0.05)
    assert manager.snapshot(job_id).state == jobs.FINISHED
    assert niceness == os.getpriority(os.PRIO_PROCESS, 0) + jobs.TRAINING_NICENESS


# ---------------------------------------------------------------- children that misbehave


def test_stopping_a_training_in_a_child_process_ends_it_stopped_with_its_run_saved(tiny_data_dir, tmp_path):
    """Stop asks the child; it keeps the weights so far, saves the run and the job ends stopped."""
    manager = jobs.JobManager(trainer=jobs.process_trainer, data_dir=tiny_data_dir, runs_dir=tmp_path)
    job_id = manager.submit(TrainConfig(arch="softmax", epochs=500, limit=200), "s")
    wait_until(lambda: manager.snapshot(job_id).epochs, timeout=300, what="the first epoch")
    manager.stop(job_id)
    job = manager.wait(job_id, timeout=120)
    assert job.state == jobs.STOPPED, job.error
    saved = runs.get_run(job.run_id, tmp_path).meta
    assert saved["status"] == "stopped" and 1 <= saved["epochs_completed"] < 500
    assert "weights so far kept" in saved["stop_reason"]
    assert runs.load_model(runs.get_run(job.run_id, tmp_path)) is not None


def test_a_training_child_that_dies_is_reported_with_a_message(tmp_path):
    """A child killed mid-training (here it calls os._exit, as the out-of-memory killer would end it)."""
    manager = jobs.JobManager(trainer=jobs.ChildTrainer(task=f"{HOOKS}:crash"), runs_dir=tmp_path)
    job = manager.wait(manager.submit(TrainConfig(arch="softmax"), "s"), timeout=60)
    assert job.state == jobs.FAILED
    assert job.error == ("The training process ended unexpectedly (exit code 3; most likely it ran out of memory). "
                         "Try a smaller model, batch size or number of images.")
    assert job.batches  # what it reported before dying still came back


def test_a_hung_training_child_is_terminated_then_killed_and_reported(tmp_path):
    """A child silent past its limit gets SIGTERM; one that ignores it is killed after the grace period."""
    marker = tmp_path / "signals.txt"
    limits = process.ChildLimits(silence_limit_s=1.5, kill_grace_s=1.0)
    manager = jobs.JobManager(trainer=jobs.ChildTrainer(task=f"{HOOKS}:hang", limits=limits), runs_dir=tmp_path)

    class Config(dict):  # the hook reads its payload; a TrainConfig-like object carries the marker's path
        def to_dict(self):
            return {"marker": str(marker)}

    job_id = manager.submit(Config(), "s")
    pid = wait_until(lambda: (manager.snapshot(job_id).last or {}).get("pid"), timeout=60, what="the child's pid")
    silent_from = time.monotonic()
    job = manager.wait(job_id, timeout=30)
    took = time.monotonic() - silent_from
    assert job.state == jobs.FAILED
    assert job.error == "The training process stopped responding (no word for 1.5 s), so it was ended."
    assert marker.read_text() == "SIGTERM\n"  # asked to end first ...
    assert not os.path.exists(f"/proc/{pid}")  # ... then killed, and reaped
    assert took < 1.5 + 1.0 + 3.0  # silence limit + kill grace + polling slack


def test_a_child_that_will_not_stop_is_ended_after_the_stop_grace(tmp_path):
    limits = process.ChildLimits(stop_grace_s=1.0, kill_grace_s=1.0)
    manager = jobs.JobManager(trainer=jobs.ChildTrainer(task=f"{HOOKS}:deaf", limits=limits), runs_dir=tmp_path)
    job_id = manager.submit(TrainConfig(arch="softmax"), "s")
    wait_until(lambda: manager.snapshot(job_id).batches, timeout=60, what="the first report")
    manager.stop(job_id)
    job = manager.wait(job_id, timeout=30)
    assert job.state == jobs.FAILED
    assert job.error == ("The training did not stop within 1 s of the stop request, so it was ended; "
                         "nothing was saved.")
    assert job.last["stop_asked"] is True  # the request reached the child


def test_starting_a_child_never_replaces_the_servers_main_module(tmp_path, monkeypatch):
    """Under Streamlit __main__ is a page script that every session's thread may be using: a child
    start must neither swap it (not even for an instant) nor run it again in the child."""
    marker = tmp_path / "page_ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'w').close()\n")
    server_main = types.ModuleType("__main__")
    server_main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", server_main)
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            seen.add(id(sys.modules.get("__main__")))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = process.run_child(f"{HOOKS}:main_module", {"marker": str(marker)}, limits=process.ChildLimits())
    finally:
        done.set()
        watcher.join()
    assert seen == {id(server_main)} and sys.modules["__main__"] is server_main
    assert result["main_file"].endswith(os.path.join("lib", "execution", "worker.py"))
    assert result["marker_made"] is False and not marker.exists()


# ---------------------------------------------------------------- imports as jobs


def gated_importer(gate):
    def importer(request, on_progress, should_stop, data_dir, runs_dir):
        gate.wait(10)
        return jobs.ChildRun("r"), imports.ImportResult("imported", "", 0.9, 0.3, "measured", 1.0)

    return importer


def test_an_import_counts_in_the_per_visitor_cap_and_its_staged_upload_is_deleted(tmp_path):
    gate = threading.Event()
    manager = jobs.JobManager(trainer=slow_trainer(gate), importer=gated_importer(gate), max_active_per_session=1)
    training = manager.submit(TrainConfig(arch="softmax"), "visitor")
    refused = imports.stage_upload(b"PK\x03\x04 a model", "model.keras", dataset="mnist")
    with pytest.raises(jobs.SubmitRefused, match="You already have a training queued or running"):
        manager.submit(refused, "visitor")
    imports.discard(refused)
    assert not os.path.exists(refused.path)
    gate.set()
    manager.wait(training, timeout=10)
    gate.clear()
    request = imports.stage_upload(b"PK\x03\x04 a model", "model.keras", dataset="mnist")
    importing = manager.submit(request, "visitor")
    running(manager, importing)
    assert jobs.describe_state(manager.snapshot(importing)).startswith("Importing:")
    with pytest.raises(jobs.SubmitRefused, match="You already have an import queued or running"):
        manager.submit(TrainConfig(arch="softmax"), "visitor")
    manager.submit(TrainConfig(arch="softmax"), "someone-else")  # other visitors queue as before
    assert manager.queue_length() == 1 and os.path.exists(request.path)
    gate.set()
    job = manager.wait(importing, timeout=10)
    assert job.state == jobs.FINISHED and job.summary["scores"] == "measured"
    assert not os.path.exists(request.path)  # the staged copy goes with the job


def weak_run(tiny_data_dir, folder):
    from lib.execution.pipeline import train_and_save

    run, _ = train_and_save(TrainConfig(arch="softmax", epochs=1, limit=100, optimizer="sgd", learning_rate=1e-3),
                            data_dir=tiny_data_dir, runs_dir=folder)
    return run


def test_a_forged_bundle_claiming_99_99_percent_is_listed_with_its_measured_accuracy(tiny_data_dir, tmp_path):
    """The import job re-scores the bundle's model on its test set (in the child) and lists that."""
    weak = weak_run(tiny_data_dir, tmp_path / "source")
    honest = weak.meta["test_accuracy"]
    assert honest < 0.9
    boast = forged(bundles.export_bundle(weak), test_accuracy=0.9999, test_loss=0.0001)
    manager = jobs.JobManager(data_dir=tiny_data_dir, runs_dir=tmp_path / "runs")
    job = manager.wait(manager.submit(imports.stage_upload(boast, "best.studio.zip"), "s"), timeout=300)
    assert job.state == jobs.FINISHED, job.error
    listed = runs.list_runs(tmp_path / "runs", include_bundled=False)[0]
    assert [run.run_id for run in listed] == [job.run_id]
    meta = listed[0].meta
    assert meta["test_accuracy"] == pytest.approx(honest, abs=1e-9) and meta["scores"] == "measured"
    assert meta["claimed"]["test_accuracy"] == 0.9999
    assert job.summary["test_accuracy"] == meta["test_accuracy"]
    assert jobs.describe_state(job) == f"Imported · test accuracy {honest:.2%}"


def huge_layer_model(folder):
    """A real small .keras file whose config declares a 784 x 1,000,000 Dense layer (3.1 GB of weights to build)."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(folder / "small.keras")
    with zipfile.ZipFile(folder / "small.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
    dense["config"]["units"] = 1_000_000
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(folder / "huge.keras", "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return folder / "huge.keras"


def test_an_import_too_big_for_the_memory_limit_is_refused_by_the_child(tiny_data_dir, tmp_path):
    """A 3 GB layer is refused at the child's address-space limit, with a message; the server never holds it."""
    path = huge_layer_model(tmp_path)
    request = imports.ImportRequest("huge.keras", str(path), path.stat().st_size, dataset="mnist", staged=False)
    with pytest.raises((bundles.InvalidBundle, process.ChildFailed), match="memory") as refused:
        imports.run_import(request, data_dir=tiny_data_dir, runs_dir=tmp_path / "runs")
    assert "Traceback" not in str(refused.value)
    assert runs.list_runs(tmp_path / "runs", include_bundled=False) == ([], [])


def test_an_import_past_the_time_limit_is_ended(tmp_path):
    """A model far too slow to score is ended at the time limit.

    Six 256-channel convolutions at 28x28 cost about 5.5 GFLOP an image; scored on 10,000 test images that is
    55 TFLOP, minutes even on a fast CPU, so the 15 s limit is always the thing that ends it."""
    import keras

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    np.savez_compressed(data_dir / "mnist.npz", **synthetic_arrays(100, 10_000))
    slow = keras.Sequential([keras.Input((28, 28, 1)), *[keras.layers.Conv2D(256, 3, padding="same")
                                                         for _ in range(6)],
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    slow.save(tmp_path / "slow.keras")
    limits = process.ChildLimits(memory_mb=imports.IMPORT_MEMORY_MB, time_limit_s=15, stop_grace_s=0, kill_grace_s=2)
    request = imports.ImportRequest("slow.keras", str(tmp_path / "slow.keras"), 1, dataset="mnist", staged=False)
    started = time.monotonic()
    with pytest.raises(process.ChildFailed, match="The import took longer than 15 s, the limit here, so it was ended"):
        imports.run_import(request, data_dir=data_dir, runs_dir=tmp_path / "runs", limits=limits)
    assert time.monotonic() - started < 15 + 2 + 5
    assert not worker_children()
    assert runs.list_runs(tmp_path / "runs", include_bundled=False) == ([], [])
