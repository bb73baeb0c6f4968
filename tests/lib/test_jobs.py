"""Job manager: one job trains at a time, others queue; stop works; failures are reported."""

import threading
import time

import pytest

from lib.execution import jobs


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
    deadline = time.time() + 5
    while manager.snapshot(first).state != jobs.RUNNING and time.time() < deadline:
        time.sleep(0.01)
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
    while manager.snapshot(running).state != jobs.RUNNING:
        time.sleep(0.01)
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
    while manager.snapshot(first).state != jobs.RUNNING:
        time.sleep(0.01)
    with pytest.raises(jobs.SubmitRefused, match="You already have a training queued or running"):
        manager.submit("a2", "visitor-a")
    manager.submit("b", "visitor-b")
    manager.submit("c", "visitor-c")
    assert manager.queue_length() == 2
    with pytest.raises(jobs.SubmitRefused, match="2 trainings are already waiting on this shared app"):
        manager.submit("d", "visitor-d")
    assert manager.active_count("visitor-a") == 1 and manager.active_count("visitor-d") == 0
    gate.set()


def test_concurrent_submits_from_one_session_let_exactly_one_through():
    gate = threading.Event()
    manager = jobs.JobManager(trainer=slow_trainer(gate), max_active_per_session=1)
    outcomes = []

    def click():
        try:
            outcomes.append(manager.submit("x", "double-clicker"))
        except jobs.SubmitRefused:
            outcomes.append(None)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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
    public = jobs.manager_for(profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_MAX_QUEUE": "3"}))
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
    import os

    from lib.training.config import TrainConfig

    manager = jobs.JobManager(trainer=jobs.process_trainer, data_dir=tiny_data_dir, runs_dir=tmp_path)
    job_id = manager.submit(TrainConfig(arch="softmax", epochs=1, limit=200), "s")
    niceness = None
    while manager.snapshot(job_id).active:
        for child in _training_children():
            niceness = os.getpriority(os.PRIO_PROCESS, child)
        time.sleep(0.05)
    assert manager.snapshot(job_id).state == jobs.FINISHED
    assert niceness == os.getpriority(os.PRIO_PROCESS, 0) + jobs.TRAINING_NICENESS


def _training_children() -> list[int]:
    """This process's spawned training children (Linux /proc; not multiprocessing's resource tracker)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    command = handle.read()
            except OSError:
                continue
            if parent == os.getpid() and b"spawn_main" in command:
                found.append(int(entry))
    return found
