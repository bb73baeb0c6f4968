"""Real-browser fixtures: the app as `streamlit run` serves it, driven by headless Chromium.

One app server per test session, with a fresh runs directory and the shared MNIST
(`MNIST_STUDIO_DATA_DIR`, which CI sets to ../shared/datasets); tests of the `public`
profile get a second server (`public_app_url`) with runs of its own. Each test gets its own
browser tab, that is its own Streamlit session; runs and the job manager are shared
through the server, as they are for real users. The server's output, screenshots and
failure pages land in tests/e2e/artifacts/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
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
    warnings.warn(f"MNIST_STUDIO_DATA_DIR ({shared!r}) has no mnist.npz: the browser tests use a tiny MNIST.", stacklevel=2)
    return request.getfixturevalue("tiny_data_dir")


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, e2e_data_dir, artifacts_dir) -> str:
    """`streamlit run streamlit_app.py` on a free port, with fresh runs; stopped after the session."""
    _skip_without_browser()  # before paying for the server start
    runs_dir = tmp_path_factory.mktemp("e2e_runs")
    with streamlit_server(runs_dir, e2e_data_dir, artifacts_dir / "streamlit-server.log") as (url, _):
        yield url


@pytest.fixture(scope="session")
def public_app_url(tmp_path_factory, e2e_data_dir, artifacts_dir) -> str:
    """A second server in the `public` profile (one private workspace per visitor, job caps),
    with its own fresh runs; stopped after the session."""
    _skip_without_browser()
    runs_dir = tmp_path_factory.mktemp("e2e_public_runs")
    with streamlit_server(runs_dir, e2e_data_dir, artifacts_dir / "streamlit-public-server.log",
                          MNIST_STUDIO_PROFILE="public") as (url, _):
        yield url


def _skip_without_browser() -> None:
    missing = browser_missing_reason()
    if missing:
        pytest.skip(f"BROWSER TESTS SKIPPED: {missing}")


@contextlib.contextmanager
def streamlit_server(runs_dir: Path, data_dir: Path, log_path: Path, **extra_env: str) -> Iterator[tuple[str, int]]:
    """Serve the app on a free port until the block ends; yields (url, server pid); its output goes to
    `log_path`. RuntimeError if it exits or is not healthy in time (also used by bench/load.py)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # The warm spare process on, as deployed (tests/conftest.py turns it off for in-process tests): each
    # training after the server's first finds TensorFlow imported, as a visitor's would.
    env = {**os.environ, "MNIST_STUDIO_RUNS_DIR": str(runs_dir), "MNIST_STUDIO_DATA_DIR": str(data_dir),
           "MNIST_STUDIO_WARM_WORKER": "1", **extra_env}
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
        # No file watcher: the tests write screenshots and logs inside the project (and .venv is there);
        # watching them overflowed inotify and cost the 2-core machine CPU the trainings need.
        "--server.fileWatcherType", "none",
    ]
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while not _healthy(url):
                if server.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {server.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit not healthy after {SERVER_START_TIMEOUT_S} s; see {log_path}")
                time.sleep(0.5)
            yield url, server.pid
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
def browser():
    """Headless Debian Chromium through Playwright's sync API, shared by both servers' tests."""
    _skip_without_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def studio(browser, app_url, artifacts_dir, request):
    """A fresh tab (a new Streamlit session) on Home; a screenshot is kept if the test fails."""
    yield from studio_tab(browser, app_url, artifacts_dir, request)


def studio_tab(browser, url: str, artifacts_dir, request):
    """For a fixture: a fresh tab on `url`'s Home; after the test, a screenshot if it failed, and no
    uncaught JavaScript errors."""
    context = _new_context(browser)
    app = Studio(context.new_page(), url, artifacts_dir)
    app.open()
    yield app
    if getattr(request.node, "rep_call_failed", False):
        app.screenshot(f"FAILED-{request.node.name}")
    context.close()
    assert not app.page_errors, f"uncaught JavaScript errors in the page: {app.page_errors}"


@pytest.fixture
def public_visitors(browser, public_app_url, artifacts_dir, request):
    """Opens visitors of the public server: `visit(name)` is a new browser context (its own
    cookies and Streamlit session, as another person's browser) on Home, or at `url` (a
    workspace link) on the page titled `title`; a screenshot of each is kept if the test fails."""
    opened: list[tuple[str, object, Studio]] = []

    def visit(name: str, url: str | None = None, title: str = "MNIST Studio") -> Studio:
        context = _new_context(browser)
        app = Studio(context.new_page(), url or public_app_url, artifacts_dir)
        opened.append((name, context, app))
        app.open(title)
        return app

    yield visit
    failed = getattr(request.node, "rep_call_failed", False)
    for name, context, app in opened:
        if failed:
            app.screenshot(f"FAILED-{request.node.name}-{name}")
        context.close()
    errors = {name: app.page_errors for name, _, app in opened if app.page_errors}
    assert not errors, f"uncaught JavaScript errors in the pages: {errors}"


def _new_context(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return context


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Let the `studio` fixture know whether the test body failed (for the failure screenshot)."""
    report = yield
    if report.when == "call":
        item.rep_call_failed = report.failed
    return report
