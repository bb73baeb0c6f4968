"""Training speed in the real app with a browser tab watching the live charts vs nobody watching.

    python bench/watched.py [--images N] [--repeats R]

Starts `streamlit run` on a free port (fresh runs dir, MNIST from $MNIST_STUDIO_DATA_DIR),
drives Debian Chromium through Playwright like tests/e2e, trains cnn-tf-tutorial for one
epoch per run, alternating a tab that keeps watching with a tab that leaves after clicking
Train, and prints each run's images/s (from its meta.json) and the CPU seconds the server
and Chromium used. Chromium runs on the same machine here, unlike a real deployment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, _free_port, _healthy, _stop
from tests.e2e.studio import Studio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import subprocess

    from playwright.sync_api import sync_playwright

    runs_dir = Path(tempfile.mkdtemp(prefix="watched-runs-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MNIST_STUDIO_RUNS_DIR": str(runs_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    results = {"watched": [], "nobody watching": []}
    cpu = {"watched": [], "nobody watching": []}
    try:
        while not _healthy(url):
            time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for repeat in range(args.repeats):
                for mode in results:
                    rate, seconds = one_run(browser, url, runs_dir, mode, f"{mode} {repeat}", args.images, server.pid)
                    results[mode].append(round(rate, 1))
                    cpu[mode].append(seconds)
                    print(f"{mode}: {rate:,.0f} images/s, CPU s server {seconds[0]:.1f} chromium {seconds[1]:.1f}",
                          flush=True)
            browser.close()
    finally:
        _stop(server)
    ratio = statistics.median(results["nobody watching"]) / statistics.median(results["watched"])
    print(json.dumps({"images_per_s": results, "cpu_seconds_server_chromium": cpu,
                      "nobody_over_watched": round(ratio, 3)}))
    return 0


def one_run(browser, url, runs_dir, mode, name, images, server_pid):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(120_000)
    page = context.new_page()
    app = Studio(page, url, Path(tempfile.mkdtemp()))
    app.open()
    before = set(os.listdir(runs_dir))
    app.nav("Train")
    app.choose("Architecture", "cnn-tf-tutorial ·")
    app.type_into("stNumberInput", "Epochs", 1)
    app.type_into("stNumberInput", "Limit training images (0 = all)", images)
    app.type_into("stTextInput", "Run name (optional)", name)
    start = _cpu_seconds(server_pid), _chromium_cpu_seconds()
    app.button("Train").click()
    if mode == "nobody watching":
        time.sleep(3)
        page.goto("about:blank")
    meta = _new_run_meta(runs_dir, before)
    end = _cpu_seconds(server_pid), _chromium_cpu_seconds()
    context.close()
    return meta["samples_per_s"], (round(end[0] - start[0], 1), round(end[1] - start[1], 1))


def _new_run_meta(runs_dir: Path, before: set, timeout_s: float = 900) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name in set(os.listdir(runs_dir)) - before:
            meta = runs_dir / name / "meta.json"
            if not name.startswith(".") and meta.is_file():
                return json.loads(meta.read_text(encoding="utf-8"))
        time.sleep(0.5)
    raise TimeoutError("the run did not finish")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _chromium_cpu_seconds() -> float:
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if "chrom" in Path(f"/proc/{entry}/comm").read_text():
                    total += _cpu_seconds(int(entry))
            except OSError:
                pass
    return total


if __name__ == "__main__":
    sys.exit(main())
