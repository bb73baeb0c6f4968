"""A real local Ray head for tests and benches: `ray start --head --block` bound to 127.0.0.1 with the
dashboard (the Jobs API), every port free, a temporary folder of its own; stopped by ending the
processes it started (never `ray stop`, which ends every Ray process on the machine).

Jobs find `python` on the PATH the head was started with: this interpreter's folder comes first, so
they run with the project's dependencies. `env` (the store's credentials) reaches the jobs the way a
real cluster's node environment would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 120  # a cold start on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalHead:
    """One single-node Ray cluster; `address` is its dashboard (what MNIST_STUDIO_RAY_ADDRESS names)."""

    def __init__(self, *, num_cpus: int = 2, env: dict | None = None, log_path: Path | None = None):
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must be
        ports = {name: free_port() for name in ("port", "dashboard-port", "ray-client-server-port",
                                                "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                "runtime-env-agent-port", "metrics-export-port",
                                                "node-manager-port", "object-manager-port")}
        self.address = f"http://127.0.0.1:{ports['dashboard-port']}"
        ray = Path(sys.executable).with_name("ray")
        command = [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                   "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--num-cpus={num_cpus}",
                   f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
                   *(f"--{name}={port}" for name, port in ports.items())]
        environ = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0",
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.log_path = Path(log_path or self.temp_dir / "head.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, env=environ, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"`ray start --head` exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.address}/api/version", timeout=2) as answer:
                    if answer.status == 200:
                        from ray.job_submission import JobSubmissionClient

                        JobSubmissionClient(self.address).list_jobs()  # the Jobs API answers too
                        return
            except (OSError, RuntimeError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the Ray head did not answer within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def processes(self) -> list[int]:
        """The head's process id and those of every process under it (raylet, GCS, dashboard, workers, jobs)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def stop(self) -> None:
        """End what this head started (SIGTERM, then SIGKILL), then remove its folder."""
        found = self.processes()
        for pid in found:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in found):
            self.process.poll()
            time.sleep(0.2)
        for pid in found:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """Running and not a zombie (a child ended but not yet reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
