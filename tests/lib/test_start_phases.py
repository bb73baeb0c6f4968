"""A training says what it does before its first batch (issue 26.5): phases as progress events,
through the child process the public profile trains in, and in the job's state line."""

import time

from lib.execution import jobs
from lib.training import loop
from lib.training.config import TrainConfig

PHASES = [loop.LOADING_DATA, loop.LOADING_TENSORFLOW, loop.BUILDING, loop.COMPILING]


def test_a_child_training_reports_its_start_up_phases_in_order_before_the_first_batch(tiny_data_dir, tmp_path):
    """As a visitor waiting for my run's first batch, I am told each step it is on, in order."""
    events = []
    run, result = jobs.process_trainer(TrainConfig(dataset="mnist", arch="softmax", epochs=1, limit=256),
                                       events.append, lambda: False, tiny_data_dir, tmp_path)
    assert result.status == "finished" and run.run_id
    kinds = [event["kind"] for event in events]
    first_batch = kinds.index("batch")
    phases = [event["phase"] for event in events[:first_batch] if event["kind"] == "phase"]
    assert phases == PHASES
    times = [event["time"] for event in events[:first_batch] if event["kind"] == "phase"]
    assert times == sorted(times) and time.time() - times[0] < 600


def test_the_state_line_names_the_phase_and_the_seconds_since_the_start():
    job = jobs.Job("job-1", "s", TrainConfig(), state=jobs.RUNNING, started=time.time() - 7)
    assert jobs.describe_state(job) == "Starting: starting the training process… (7 s)"
    job.last = {"kind": "phase", "phase": loop.LOADING_TENSORFLOW, "time": time.time()}
    assert jobs.describe_state(job) == "Starting: loading TensorFlow… (7 s)"
    assert jobs.job_fraction(job) == 0.0
