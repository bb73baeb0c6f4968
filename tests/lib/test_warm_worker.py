"""A spare training process (issue 26.5): started ahead of time with TensorFlow imported, taken by the next
training, which keeps every safety property of a fresh child (its limits, stop and kill, one child per
training); a spare nobody takes exits by itself, and none starts when memory is short."""

import os
import time

from lib.execution import jobs, process
from lib.store import profile, runs
from lib.training.config import TrainConfig
from tests import conftest
from tests.conftest import worker_children

HOOKS = "tests.lib.child_tasks"
CHEAP_PRELOAD = f"{HOOKS}:no_preload"


def wait_until(condition, timeout: float = 60.0, what: str = "the condition"):
    return conftest.wait_until(condition, timeout, what, every=0.02)


def has_tensorflow_loaded(pid: int) -> bool:
    """TensorFlow's native library is mapped into the process: it was imported."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as handle:
            return "libtensorflow" in handle.read()
    except OSError:
        return False


def test_the_next_training_runs_in_the_spare_that_already_imported_tensorflow(tiny_data_dir, tmp_path):
    """As the second visitor of the day, my training starts in a process that loaded TensorFlow before I
    clicked; it is niced like any training, saves my run, and a new spare waits for the next visitor."""
    spare = process.Spare(jobs.TRAIN_PRELOAD, jobs.TRAINING_LIMITS)
    trainer = jobs.ChildTrainer(spare=spare)
    try:
        assert spare.prepare()
        warm_pid = spare.pid()
        wait_until(lambda: has_tensorflow_loaded(warm_pid), timeout=300, what="the spare to import TensorFlow")
        assert os.getpriority(os.PRIO_PROCESS, warm_pid) == os.getpriority(os.PRIO_PROCESS, 0) + jobs.TRAINING_NICENESS
        manager = jobs.JobManager(trainer=trainer, data_dir=tiny_data_dir, runs_dir=tmp_path)
        job_id = manager.submit(TrainConfig(arch="softmax", epochs=1, limit=200), "s")
        trained_in = set()
        while manager.snapshot(job_id).active:
            if manager.snapshot(job_id).last.get("kind") in ("batch", "epoch"):
                trained_in.update(worker_children())
            time.sleep(0.02)
        job = manager.snapshot(job_id)
        assert job.state == jobs.FINISHED, job.error
        assert warm_pid in trained_in  # the spare trained; the new spare may start only after it ended
        assert runs.get_run(job.run_id, tmp_path).meta["epochs_completed"] == 1
        assert not os.path.exists(f"/proc/{warm_pid}")  # it ended with its training, as a fresh child does
        next_pid = spare.pid()
        assert next_pid is not None and next_pid != warm_pid  # a new spare for the next training
        assert worker_children() == [next_pid]  # one spare at most
    finally:
        spare.close()
    assert worker_children() == []


def test_a_spare_that_hangs_in_its_training_is_terminated_then_killed_like_any_child(tmp_path):
    """The limits of today's child hold for a spare: silent past its limit, it is ended and reported."""
    marker = tmp_path / "signals.txt"
    limits = process.ChildLimits(silence_limit_s=1.5, kill_grace_s=1.0)
    spare = process.Spare(CHEAP_PRELOAD, limits)
    manager = jobs.JobManager(trainer=jobs.ChildTrainer(task=f"{HOOKS}:hang", limits=limits, spare=spare),
                              runs_dir=tmp_path)

    class Config(dict):
        def to_dict(self):
            return {"marker": str(marker)}

    try:
        spare.prepare()
        warm_pid = spare.pid()
        job_id = manager.submit(Config(), "s")
        pid = wait_until(lambda: (manager.snapshot(job_id).last or {}).get("pid"), what="the child's pid")
        assert pid == warm_pid
        job = manager.wait(job_id, timeout=30)
        assert job.state == jobs.FAILED
        assert job.error == "The training process stopped responding (no word for 1.5 s), so it was ended."
        assert marker.read_text() == "SIGTERM\n" and not os.path.exists(f"/proc/{pid}")
    finally:
        spare.close()


def test_a_stop_reaches_a_training_that_runs_in_a_spare(tmp_path):
    limits = process.ChildLimits(stop_grace_s=1.0, kill_grace_s=1.0)
    spare = process.Spare(CHEAP_PRELOAD, limits)
    manager = jobs.JobManager(trainer=jobs.ChildTrainer(task=f"{HOOKS}:deaf", limits=limits, spare=spare),
                              runs_dir=tmp_path)
    try:
        spare.prepare()
        job_id = manager.submit(TrainConfig(arch="softmax"), "s")
        wait_until(lambda: manager.snapshot(job_id).batches, what="the first report")
        manager.stop(job_id)
        job = manager.wait(job_id, timeout=30)
        assert job.last["stop_asked"] is True and job.state == jobs.FAILED
    finally:
        spare.close()


def test_a_spare_nobody_takes_exits_by_itself_and_the_next_training_starts_a_child_as_before(tmp_path):
    spare = process.Spare(CHEAP_PRELOAD, process.ChildLimits(), idle_s=0.5)
    assert spare.prepare()
    pid = spare.pid()
    wait_until(lambda: spare.pid() is None, timeout=30, what="the idle spare to exit")
    assert not os.path.exists(f"/proc/{pid}")
    result = process.run_child(f"{HOOKS}:main_module", {"marker": str(tmp_path / "m")},
                               limits=process.ChildLimits(), spare=spare)
    assert result["marker_made"] is False


def test_a_spare_is_only_taken_with_the_limits_it_applied_and_never_started_when_memory_is_short():
    spare = process.Spare(CHEAP_PRELOAD, process.ChildLimits(niceness=5))
    try:
        spare.prepare()
        assert spare.take(process.ChildLimits()) is None  # its niceness cannot be undone: not this job's
        assert spare.pid() is not None
    finally:
        spare.close()
    short = process.Spare(CHEAP_PRELOAD, process.ChildLimits(), min_available_mb=10**9)
    assert short.prepare() is False and short.pid() is None


def test_the_public_profile_starts_a_spare_unless_turned_off():
    public = profile.current({"MNIST_STUDIO_PROFILE": "public"})
    assert public.limits.warm_worker == 1
    off = profile.current({"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_WARM_WORKER": "0"})
    jobs.warm_trainer.spare.close()
    jobs.manager_for(off)
    assert jobs.warm_trainer.spare.pid() is None and worker_children() == []
    try:
        jobs.manager_for(public)
        assert jobs.warm_trainer.spare.pid() is not None and worker_children() == [jobs.warm_trainer.spare.pid()]
    finally:
        jobs.warm_trainer.spare.close()


def test_available_memory_is_capped_by_the_containers_cgroup_limit(tmp_path):
    """A container sees the host's MemAvailable; what its cgroup limit leaves is what a spare may use."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    8192000 kB\n")
    assert process.available_memory_mb(str(meminfo), str(tmp_path / "none")) == 8000
    (tmp_path / "memory.max").write_text(f"{2700 * 2**20}\n")
    (tmp_path / "memory.current").write_text(f"{1900 * 2**20}\n")
    assert process.available_memory_mb(str(meminfo), str(tmp_path)) == 800
    (tmp_path / "memory.max").write_text("max\n")
    assert process.available_memory_mb(str(meminfo), str(tmp_path)) == 8000
    assert process.available_memory_mb(str(tmp_path / "nothing"), str(tmp_path / "none")) is None
