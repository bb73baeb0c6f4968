"""A real S3-compatible server for tests and benches: moto's server mode on 127.0.0.1, in a child process.

Its request log (werkzeug's access log on stderr, one line per HTTP request) is kept in a file, so a
test counts what the app really asked of the store: `requests(log)` parses it.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)?(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/[0-9.]+')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Request:
    method: str
    path: str  # /bucket/key?query


def start_moto(extra_env=None, log: Path | None = None, port: int | None = None):
    """(process, endpoint URL); the server's request log goes to `log` when given; on a free port unless
    `port` names one (a store that comes back where it was)."""
    port = port or free_port()
    env = {"PATH": "/usr/bin:/bin", **(extra_env or {})}
    stderr = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - the child writes it until it ends
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("moto server did not start")


def requests(log: Path, since: int = 0) -> list[Request]:
    """The HTTP requests the server logged, from the `since`-th on."""
    found = []
    for line in Path(log).read_text(errors="replace").splitlines():
        match = REQUEST_LINE.search(line)
        if match:
            found.append(Request(match.group(1), match.group(2)))
    return found[since:]


def wait_logged(log: Path, count: int, timeout_s: float = 5.0) -> None:
    """Until the log holds at least `count` requests (the server writes each line after answering)."""
    deadline = time.monotonic() + timeout_s
    while len(requests(log)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
