"""The child side of lib.execution.process: `python -m lib.execution.worker <event pipe fd>`.

Reads one request (a JSON line) from stdin, applies its limits to itself before anything heavy is
imported (a lower CPU priority; RLIMIT_AS, so a model too big for the limit fails with a memory
error instead of taking the server's memory), runs the task and writes its progress events and its
outcome as JSON lines to the event pipe. An error becomes a message for the user (its traceback
goes to stderr, the server's log). The line `stop` on stdin, or stdin's end (the server is gone),
asks the task to stop; a child whose server is gone exits after `stop_grace_s` whatever it does.

A task is `function(payload: dict, emit, should_stop) -> dict` (JSON in, JSON out): `train` and
`import_file` here; tests name their own.

A spare (lib.execution.process.Spare) first gets the line `{"warm": {"limits", "preload", "idle_s"}}`:
it applies the limits, runs the preload (`preload_training` imports TensorFlow and Keras) and then
waits for its request as above; without one within `idle_s` (or at stdin's end) it exits.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import sys
import threading
import traceback

from lib.execution.process import OUTCOME, STOP_LINE, user_message


def main(argv: list[str]) -> int:
    channel = os.fdopen(int(argv[0]), "w", encoding="utf-8")
    os.set_inheritable(channel.fileno(), False)  # nothing this process starts may hold the server's pipe
    lock = threading.Lock()

    def emit(event: dict) -> None:
        line = json.dumps(event, default=_plain)
        with lock:
            channel.write(line + "\n")
            channel.flush()

    request = json.loads(sys.stdin.readline())
    if "warm" in request:
        _limit_self(request["warm"]["limits"])  # before the preload: it is the heavy part
        _task(request["warm"]["preload"])()
        request = _await_request(request["warm"]["idle_s"])
    else:
        _limit_self(request["limits"])
    limits, what = request["limits"], request.get("what", "training")
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop, limits["stop_grace_s"]), daemon=True).start()
    try:
        task = _task(request["task"])
        outcome = {"kind": OUTCOME, "result": task(request["payload"], emit, stop.is_set)}
    except Exception as error:  # noqa: BLE001 - the server gets a message, the log the traceback
        traceback.print_exc()
        outcome = {"kind": OUTCOME, "error": user_message(error, what, limits.get("memory_mb"))}
    emit(outcome)
    channel.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # now: TensorFlow's threads can hold a normal interpreter exit for seconds


def train(payload: dict, emit, should_stop) -> dict:
    """A TrainConfig (as a dict) -> a saved run in payload["runs_dir"]; progress events on the way."""
    from lib.execution import pipeline
    from lib.training.config import TrainConfig

    config = TrainConfig.from_dict(payload["config"])
    run, result = pipeline.train_and_save(config, data_dir=payload["data_dir"], runs_dir=payload["runs_dir"],
                                          on_progress=emit, should_stop=should_stop)
    return {"run_id": run.run_id, "status": result.status, "stop_reason": result.stop_reason,
            "test_accuracy": result.test_accuracy, "test_loss": result.test_loss, "seconds": result.seconds,
            "samples_per_s": result.samples_per_s, "precision": result.precision}


def import_file(payload: dict, emit, should_stop) -> dict:
    """A run bundle or a bare .keras file -> a new run in payload["runs_dir"], scored on the test set here."""
    from lib.store import bundles
    from lib.training import hardware

    hardware.configure_threads()  # before TensorFlow starts: as many threads as the cores we may use
    run = bundles.import_file(payload["path"], payload["runs_dir"], dataset=payload["dataset"],
                              data_dir=payload["data_dir"], filename=payload["filename"], name=payload["name"])
    meta = run.meta
    return {"run_id": run.run_id, "status": meta.get("status"), "stop_reason": meta.get("stop_reason", ""),
            "test_accuracy": meta.get("test_accuracy"), "test_loss": meta.get("test_loss"),
            "scores": meta.get("scores")}


def preload_training() -> None:
    """What every training does first and a spare does ahead of time: size TensorFlow's threads, import
    Keras and the training code (about 12 s of a training's start on a busy 2-core box)."""
    from lib.training import hardware

    hardware.configure_threads()  # before TensorFlow's runtime starts, as a training does
    from lib.training import callbacks, loop  # noqa: F401 - imported for their import time (Keras, TensorFlow)


def _await_request(idle_s: float) -> dict:
    """A spare's request; it exits if none comes within `idle_s` or its server is gone (end of stdin)."""
    idle = threading.Timer(idle_s, os._exit, args=(0,))
    idle.daemon = True
    idle.start()
    line = sys.stdin.readline()
    idle.cancel()
    if not line:
        os._exit(0)
    return json.loads(line)


def _limit_self(limits: dict) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.nice(limits["niceness"])
    if limits.get("memory_mb"):
        size = int(limits["memory_mb"]) * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            size = min(size, hard)
        resource.setrlimit(resource.RLIMIT_AS, (size, hard if hard != resource.RLIM_INFINITY else size))


def _watch_stdin(stop: threading.Event, grace_s: float) -> None:
    """`stop` on a stop line; at stdin's end (the server is gone) also a deadline to exit."""
    for line in sys.stdin.buffer:
        if line == STOP_LINE:
            stop.set()
    stop.set()
    timer = threading.Timer(max(grace_s, 1.0), os._exit, args=(3,))
    timer.daemon = True
    timer.start()


def _task(name: str):
    """"package.module:function" -> the function (requests come from the server's code, never a visitor)."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _plain(value):
    """numpy scalars and paths in an event, as JSON."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


if __name__ == "__main__":
    main(sys.argv[1:])
