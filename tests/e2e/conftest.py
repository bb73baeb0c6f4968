"""Real-browser fixtures: the app as `streamlit run` serves it, driven by headless Chromium.

One app server per test session, with a fresh runs directory and the shared MNIST
(`MNIST_STUDIO_DATA_DIR`, which CI sets to ../shared/datasets). Each test gets its own
browser tab, that is its own Streamlit session; runs and the job manager are shared
through the server, as they are for real users. The server's output, screenshots and
failure pages land in tests/e2e/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from tests.e2e.studio import ARTIFACTS_DIR, Studio

PROJECT_DIR = Path(__file__).resolve().parents[2]

CHROMIUM = Path("/usr/bin/chromium")  # Debian's Chromium: never `playwright install` here
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SERVER_START_TIMEOUT_S = 120  # first start on a busy 2-core machine
VIEWPORT = {"width": 1400, "height": 1000}
DEFAULT_TIMEOUT_MS = 60_000  # TensorFlow's first import in the app takes a while


def browser_missing_reason() -> str | None:
    """Why the browser layer cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as problem:
        return f"playwright is not importable ({problem}): install requirements-dev.txt"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} not found: apt-get install chromium (never `playwright install`)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.read().decode().strip() == "ok"
    except OSError:
        return False


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """tests/e2e/artifacts/, emptied once per session so every file in it is from this run."""
    shutil.rmtree(ARTIFACTS_DIR, ignore_errors=True)
    ARTIFACTS_DIR.mkdir(parents=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="session")
def e2e_data_dir(request) -> Path:
    """The shared MNIST folder from the environment; the tests' tiny MNIST when it is missing."""
    shared = os.environ.get("MNIST_STUDIO_DATA_DIR", "")
    if shared and (Path(shared) / "mnist.npz").is_file():
        return Path(shared)
    warnings.warn(f"MNIST_STUDIO_DATA_DIR ({shared!r}) has no mnist.npz: the browser tests use a tiny MNIST.")
    return request.getfixturevalue("tiny_data_dir")


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, e2e_data_dir, artifacts_dir) -> str:
    """`streamlit run streamlit_app.py` on a free port, with fresh runs; stopped after the session."""
    missing = browser_missing_reason()
    if missing:  # before paying for the server start
        pytest.skip(f"BROWSER TESTS SKIPPED: {missing}")
    runs_dir = tmp_path_factory.mktemp("e2e_runs")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MNIST_STUDIO_RUNS_DIR": str(runs_dir), "MNIST_STUDIO_DATA_DIR": str(e2e_data_dir)}
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]
    log_path = artifacts_dir / "streamlit-server.log"
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while not _healthy(url):
                if server.poll() is not None:
                    pytest.fail(f"streamlit exited with {server.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    pytest.fail(f"streamlit not healthy after {SERVER_START_TIMEOUT_S} s; see {log_path}")
                time.sleep(0.5)
            yield url
        finally:
            _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's own process group, SIGKILL it if it lingers."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


@pytest.fixture(scope="session")
def browser(app_url):
    """Headless Debian Chromium through Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def studio(browser, app_url, artifacts_dir, request):
    """A fresh tab (a new Streamlit session) on Home; a screenshot is kept if the test fails."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    app = Studio(page, app_url, artifacts_dir)
    app.open()
    yield app
    if getattr(request.node, "rep_call_failed", False):
        app.screenshot(f"FAILED-{request.node.name}")
    context.close()
    assert not app.page_errors, f"uncaught JavaScript errors in the page: {app.page_errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Let the `studio` fixture know whether the test body failed (for the failure screenshot)."""
    report = yield
    if report.when == "call":
        item.rep_call_failed = report.failed
    return report
