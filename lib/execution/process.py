"""Child processes for the work a shared server must not do in its own process: trainings and imports.

A child is `python -m lib.execution.worker`, started with subprocess. Nothing of the server's
`__main__` (a Streamlit page script) is looked at, re-run or swapped, and no thread of the server
is forked. Parent and child talk in JSON lines, never pickle: a child runs a visitor's model and
must not be able to hand the server code to run.

- server -> child, on the child's stdin: the request `{"task": "module:function", "payload": {...},
  "limits": {...}, "what": "training"}`; later the line `stop` (save what you have, then end).
  The end of stdin (the server is gone) is a stop too.
- child -> server, on a pipe of its own (stdout and stderr stay the server's log, as before):
  progress events `{"kind": "batch", ...}`, then `{"kind": "_outcome", "result": {...}}` or
  `{"kind": "_outcome", "error": "what went wrong, for the user"}`.

`ChildLimits`: the child lowers its own CPU priority and caps its address space (RLIMIT_AS)
before it imports anything heavy; the server ends a child that runs past its time limit, is silent
for too long, does not stop when asked, or does not exit after its outcome: SIGTERM first, SIGKILL
`kill_grace_s` later. Every way a child can fail ends in `ChildFailed` with a message for the user.

A `Spare` is one such child started ahead of time: its first stdin line `{"warm": {"limits": ...,
"preload": "module:function", "idle_s": ...}}` makes it apply its limits, run the preload (import
TensorFlow: ~12 s on a busy 2-core box) and wait for its request, which the next job sends instead of
starting a child of its own. Once taken it is that job's child like any other (same limits, clocks,
stop and kill); a spare nobody takes exits by itself after `idle_s`, and when the server is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass

from lib.data import datasets, paths
from lib.i18n import N_

WORKER_MODULE = "lib.execution.worker"
OUTCOME = "_outcome"  # the kind of a child's last message
STOP_LINE = b"stop\n"
MAX_LINE_BYTES = 1024 * 1024  # a progress event is ~300 bytes; a longer line is not from our worker
EVENT_BACKLOG = 1000  # events read ahead of the server; then the child waits (it cannot flood memory)
POLL_S = 0.2  # how often the server looks at a stop request and the clocks
SPARE_IDLE_S = 900.0  # a spare nobody took in this long exits, giving back its ~650 MB
# A spare starts only when the machine has this much memory available: the ~650 MB it holds while it
# waits, and room left for the server's pages (the training that takes it needs the same memory anyway).
SPARE_MIN_AVAILABLE_MB = 1500


@dataclass(frozen=True)
class ChildLimits:
    """What a child may take, and how long the server waits for it."""

    niceness: int = 10  # the child yields the CPU to the server's page runs (visitors clicking around)
    memory_mb: int | None = None  # its address space (RLIMIT_AS), MiB; None: no limit
    time_limit_s: float | None = None  # wall clock from its request (a spare's waiting not counted); None: none
    silence_limit_s: float | None = None  # longest gap between two messages before it counts as hung
    stop_grace_s: float = 60.0  # after a stop request, time to save the weights so far and end
    exit_grace_s: float = 10.0  # after its outcome, time to exit
    kill_grace_s: float = 5.0  # after SIGTERM, time before SIGKILL


class ChildFailed(RuntimeError):
    """A child process gave no outcome or an error; the message is meant for the user."""


def run_child(task: str, payload: dict, *, limits: ChildLimits, what: str = "training", on_event=None,
              should_stop=None, crash_hint: str = "", quiet: bool = False, spare: Spare | None = None) -> dict:
    """Run `task` ("module:function", see lib.execution.worker) in a child process; return its result.

    `on_event(dict)` gets each progress event; `should_stop()` is polled and, once true, the
    child is asked to stop (with `stop_grace_s` 0 it is ended at once: nothing to save). `what`
    names the work in messages ("training", "import"); `crash_hint` follows the message when the
    child dies. `quiet`: the child's stdout and stderr go nowhere (the CLI prints one line).
    `spare`: take its waiting child if it was started with these limits (else start one as usual).
    Raises ChildFailed with a message for the user; the child is gone when this returns or raises.
    """
    started = spare.take(limits) if spare is not None and not quiet else None
    child = _Child(task, payload, limits, what, started or _spawn(quiet))
    try:
        return child.supervise(on_event, should_stop, crash_hint)
    finally:
        child.end()


def stopped_message(what: str) -> str:
    """How a job that was stopped with nothing to save ended (an import: stop_grace_s 0)."""
    return (N_("The import was stopped before it finished; nothing was saved.") if what == "import" else
            N_("The training was stopped before it finished; nothing was saved."))


def user_message(error: Exception, what: str = "training", memory_mb: int | None = None) -> str:
    """What went wrong, in the words of the exception lib raised on purpose."""
    from lib.store import workspaces

    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        memory = N_("the {size:,} MB of memory it may use here").format(size=memory_mb) if memory_mb else \
            N_("the memory this computer has")
        return (N_("The import needed more than {memory}. Import a smaller model.") if what == "import" else
                N_("The training needed more than {memory}. Try a smaller model or batch size.")).format(memory=memory)
    from lib.store import backend

    known = (datasets.DatasetUnavailable, datasets.InvalidDataset, ValueError, ChildFailed, workspaces.QuotaExceeded,
             backend.StoreError)
    if isinstance(error, known):
        return str(error)
    return (N_("The import failed unexpectedly ({error}). Try again, or a smaller model or batch size.")
            if what == "import" else
            N_("The training failed unexpectedly ({error}). Try again, or a smaller model or batch size.")).format(
        error=f"{type(error).__name__}: {error}")


def _spawn(quiet: bool = False) -> tuple[subprocess.Popen, int]:
    """Start `python -m lib.execution.worker`: the process and the read end of its event pipe."""
    read_fd, write_fd = os.pipe()
    sink = subprocess.DEVNULL if quiet else None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.PROJECT_DIR),
                                                                      os.environ.get("PYTHONPATH")]))}
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(write_fd)], stdin=subprocess.PIPE, stdout=sink,
            stderr=sink, pass_fds=(write_fd,), cwd=paths.PROJECT_DIR, env=env,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the child holds the only write end: its exit is our end of file
    return child, read_fd


class Spare:
    """At most one child started ahead of time with `limits`, TensorFlow (or whatever `preload` names)
    imported, waiting for the next job's request. Thread-safe.

    `prepare()` starts one unless one waits already or the machine is short of memory; `take(limits)`
    hands it over (or None). It exits by itself after `idle_s` without a request, or when the server
    (its stdin) is gone; `close()` ends it now.
    """

    def __init__(self, preload: str, limits: ChildLimits, *, idle_s: float = SPARE_IDLE_S,
                 min_available_mb: int = SPARE_MIN_AVAILABLE_MB):
        self.preload, self.limits, self.idle_s, self.min_available_mb = preload, limits, idle_s, min_available_mb
        self._lock = threading.Lock()
        self._waiting: tuple[subprocess.Popen, int] | None = None

    def prepare(self) -> bool:
        """Start a spare if none is waiting and memory allows; True if one is waiting now."""
        with self._lock:
            if self._waiting is not None and self._waiting[0].poll() is None:
                return True
            self._discard()
            available = available_memory_mb()
            if available is not None and available < self.min_available_mb:
                return False
            child, read_fd = _spawn()
            warm = {"limits": asdict(self.limits), "preload": self.preload, "idle_s": self.idle_s}
            with contextlib.suppress(OSError):
                child.stdin.write(json.dumps({"warm": warm}).encode("utf-8") + b"\n")
                child.stdin.flush()
            self._waiting = (child, read_fd)
            return True

    def take(self, limits: ChildLimits) -> tuple[subprocess.Popen, int] | None:
        """The waiting child, now the caller's, if it is alive and was started with `limits`; else None."""
        with self._lock:
            if self._waiting is None or self._waiting[0].poll() is not None or limits != self.limits:
                return None
            taken, self._waiting = self._waiting, None
            return taken

    def pid(self) -> int | None:
        """The waiting child's process id (None: none waits)."""
        with self._lock:
            alive = self._waiting is not None and self._waiting[0].poll() is None
            return self._waiting[0].pid if alive else None

    def close(self) -> None:
        """End the waiting child, if any."""
        with self._lock:
            if self._waiting is not None and self._waiting[0].poll() is None:
                self._waiting[0].kill()
                self._waiting[0].wait()
            self._discard()

    def _discard(self) -> None:
        """Called under the lock: forget a child that is gone (closing our end of its pipes)."""
        if self._waiting is not None:
            child, read_fd = self._waiting
            child.wait()
            with contextlib.suppress(OSError):
                child.stdin.close()
            with contextlib.suppress(OSError):
                os.close(read_fd)
            self._waiting = None


def available_memory_mb(meminfo: str = "/proc/meminfo", cgroup_root: str = "/sys/fs/cgroup") -> int | None:
    """Memory this server may still take, MiB: the machine's MemAvailable, capped by what its cgroup's
    limit leaves (a container sees the host's meminfo); None where neither can be read (not Linux)."""
    found = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(meminfo, encoding="ascii") as handle:
            found += [int(line.split()[1]) // 1024 for line in handle if line.startswith("MemAvailable:")]
    for limit_file, usage_file in (("memory.max", "memory.current"),  # cgroup v2, then v1
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(cgroup_root, limit_file), encoding="ascii") as handle:
                limit = handle.read().strip()
            with open(os.path.join(cgroup_root, usage_file), encoding="ascii") as handle:
                usage = int(handle.read().strip())
            if limit != "max" and int(limit) < 2**60:  # v1 writes "no limit" as a huge number
                found.append(max(int(limit) - usage, 0) // (1024 * 1024))
                break
    return min(found) if found else None


class _Child:
    """One child process seen from the server: its pipes, its clocks, and how to end it."""

    def __init__(self, task: str, payload: dict, limits: ChildLimits, what: str,
                 started: tuple[subprocess.Popen, int]):
        self.limits, self.what = limits, what
        self.process, read_fd = started
        self.started = self.last_word = time.monotonic()
        self.events: queue.Queue = queue.Queue(maxsize=EVENT_BACKLOG)
        self.stream = os.fdopen(read_fd, "rb")
        self.closed = threading.Event()  # set by end(): the reader thread gives up on a full backlog
        self.reader = threading.Thread(target=self._read, name=f"mnist-studio-{what}-events", daemon=True)
        self.reader.start()
        request = {"task": task, "payload": payload, "limits": asdict(limits), "what": what}
        self._send(json.dumps(request).encode("utf-8") + b"\n")

    def supervise(self, on_event, should_stop, crash_hint: str) -> dict:
        limits, stop_asked = self.limits, None
        while True:
            if stop_asked is None and should_stop is not None and should_stop():
                stop_asked = time.monotonic()
                self._send(STOP_LINE)
            try:
                kind, event = self.events.get(timeout=POLL_S)
            except queue.Empty:
                kind, event = "", None
            now = time.monotonic()
            if kind == "event":  # then the clocks: a chatty child is held to its limits too
                self.last_word = now
                if event.get("kind") == OUTCOME:
                    return self._outcome(event)
                if on_event is not None:
                    on_event(event)
            if kind == "garbage":
                raise self._failed(f"The {self.what} process sent something that is not a progress report, "
                                   "so it was ended.")
            if kind == "eof":
                raise self._failed(self._crash_message(crash_hint, stop_asked))
            if limits.time_limit_s is not None and now - self.started > limits.time_limit_s:
                raise self._failed(f"The {self.what} took longer than {limits.time_limit_s:g} s, the limit here, "
                                   "so it was ended.")
            if limits.silence_limit_s is not None and now - self.last_word > limits.silence_limit_s:
                raise self._failed(f"The {self.what} process stopped responding (no word for "
                                   f"{limits.silence_limit_s:g} s), so it was ended.")
            if stop_asked is not None and now - stop_asked >= limits.stop_grace_s:
                if limits.stop_grace_s <= 0:
                    raise self._failed(stopped_message(self.what))
                raise self._failed(f"The {self.what} did not stop within {limits.stop_grace_s:g} s of the stop "
                                   "request, so it was ended; nothing was saved.")

    def end(self) -> None:
        """Make sure the child is gone: wait briefly if it is exiting, else SIGTERM, then SIGKILL."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.limits.kill_grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.closed.set()
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.reader.join(timeout=5)  # the child is gone: its pipe is at its end
        with contextlib.suppress(OSError):
            self.stream.close()

    def _outcome(self, event: dict) -> dict:
        """The child's last word: its result, or its error as ChildFailed. It then has exit_grace_s to exit."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=self.limits.exit_grace_s)
        error, result = event.get("error"), event.get("result")
        if error is not None:
            raise ChildFailed(str(error)[:2000])
        if not isinstance(result, dict):
            raise ChildFailed(f"The {self.what} process ended without a result.")
        return result

    def _failed(self, message: str) -> ChildFailed:
        self.end()
        return ChildFailed(message)

    def _crash_message(self, hint: str, stop_asked) -> str:
        """The child closed its pipe (it exited, or died) without an outcome."""
        try:
            code = self.process.wait(timeout=self.limits.exit_grace_s)
        except subprocess.TimeoutExpired:
            code = None
        if stop_asked is not None and self.limits.stop_grace_s <= 0:
            return stopped_message(self.what)
        how = f"exit code {code}" if code is None or code >= 0 else f"killed by signal {-code}"
        if self.limits.memory_mb:
            likely = f"most likely it needed more than the {self.limits.memory_mb:,} MB of memory it may use here"
        else:
            likely = "most likely it ran out of memory"
        return f"The {self.what} process ended unexpectedly ({how}; {likely}). {hint}".strip()

    def _send(self, line: bytes) -> None:
        with contextlib.suppress(OSError):  # a child that is gone is reported by its end of file
            self.process.stdin.write(line)
            self.process.stdin.flush()

    def _read(self) -> None:
        """The reader thread: the child's JSON lines into `events`, then "eof" (or "garbage", and stop)."""
        try:
            while True:
                line = self.stream.readline(MAX_LINE_BYTES + 1)
                if not line:
                    self._put("eof", None)
                    return
                try:
                    event = json.loads(line) if line.endswith(b"\n") else None
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    self._put("garbage", None)
                    return
                if not self._put("event", event):
                    return
        except (OSError, ValueError):  # the stream was closed under us: the child was ended
            self._put("eof", None)

    def _put(self, kind: str, event) -> bool:
        """Hand one item to the server; False once the server stopped listening (end())."""
        while not self.closed.is_set():
            with contextlib.suppress(queue.Full):
                self.events.put((kind, event), timeout=POLL_S)
                return True
        return False
