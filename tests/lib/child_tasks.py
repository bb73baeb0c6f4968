"""Tasks for lib.execution.worker that misbehave on purpose; tests name them ("tests.lib.child_tasks:hang").

Each takes (payload, emit, should_stop) like the real tasks and runs in the child process; as a
trainer's task (jobs.ChildTrainer) its payload holds the job's config under "config".
"""

import os
import signal
import sys
import time


def crash(payload, emit, should_stop):
    """Report a little progress, then die without a word, as an out-of-memory kill would."""
    emit({"kind": "batch", "epoch": 1, "epochs": 1, "step": 1, "steps": 10})
    os._exit(3)


def hang(payload, emit, should_stop):
    """Ignore SIGTERM (leaving a mark that it came) and never answer again: only SIGKILL ends this."""

    def note_term(signum, frame):
        with open(payload["config"]["marker"], "a", encoding="utf-8") as handle:
            handle.write("SIGTERM\n")

    signal.signal(signal.SIGTERM, note_term)
    emit({"kind": "pid", "pid": os.getpid()})
    while True:
        time.sleep(0.05)


def deaf(payload, emit, should_stop):
    """Keep reporting but never stop when asked."""
    while True:
        emit({"kind": "batch", "epoch": 1, "epochs": 1, "step": 1, "steps": 10, "stop_asked": should_stop()})
        time.sleep(0.05)


def main_module(payload, emit, should_stop):
    """What this child runs as its __main__ (the server's page script must never be it)."""
    main = sys.modules["__main__"]
    return {"main_file": getattr(main, "__file__", None), "marker_made": os.path.exists(
        payload["marker"])}


def no_preload():
    """A spare's preload that imports nothing: spares without TensorFlow, for fast tests."""
