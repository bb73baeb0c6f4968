"""Job manager: one job trains at a time, others queue; stop works; failures are reported."""

import threading
import time

from lib import jobs


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
