"""MNIST Studio load benchmark: one shared process, many trainings, many visitors.

    python bench/load.py memory [--trainings 50] [--trainer process|thread]
    python bench/load.py visitors [--visitors 8] [--limit 1000] [--rounds 3]
    python bench/load.py all

`memory`: RSS after 5 vs after N small trainings, one after another, in a fresh
process with the real job manager: `process` trains each run in a child process
(the public server's trainer), `thread` in the server's own worker thread. This is
what a long-lived Community Cloud server would see.

`visitors`: one `streamlit run` server in the `public` profile (fresh runs dir) and
N concurrent visitors in headless Chromium (one browser context each, Playwright's
async API). Each opens the app, sets up a small run on Train; they click Train one
after another (so the queue order is known), then browse Predictions and draw on
Draw while the jobs run, timing every page response; once every job has ended each
opens Compare. It reports whether the jobs finished in queue order, how many runs of
other visitors a visitor saw, the server's peak RSS (VmHWM) and the training
processes', and the 95th percentile page response while a training ran.

`all`: both. Each writes its own part of bench/results-load.json and the load section
of bench/RESULTS.md, keeping the other's. Loopback only, never a timed test. Needs
the real MNIST in $MNIST_STUDIO_DATA_DIR (or data/).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.e2e.studio import (
    CANVAS_PX,
    IDLE,
    PEN_CURSOR,
    RERUN_START_MS,
    RUNNING,
    ellipse,
    line,
)

RESULTS_JSON = PROJECT / "bench" / "results-load.json"
RESULTS_MD = PROJECT / "bench" / "RESULTS.md"
LOAD_MARKER = "<!-- bench/load.py -->"  # bench/run.py keeps RESULTS.md from this line on
# A small run, the kind a visitor starts many of: one epoch on 512 images.
SMALL_RUN = dict(dataset="mnist", arch="cnn-tf-tutorial", epochs=1, limit=512, batch_size=64)
EARLY_TRAININGS = 5  # the baseline: the server has warmed up (TensorFlow loaded, kernels built)

# `visitors`: what each visitor trains (the Train page's defaults: cnn-fast, one epoch) and how they browse.
VISITOR_ARCH = "cnn-fast"
VISITOR_LIMIT = 2000  # the Train page's "Limit training images"; on 1,000 cnn-fast's defaults nearly diverge
ROUNDS = 3  # Predictions, then Draw and a drawn digit, this many times while the jobs run
PAGE_TIMEOUT_MS = 300_000  # a page response slower than this counts as failed (8 visitors on 2 busy cores)
THINK_S = 0.5  # a visitor's pause between page responses
SUBMIT_GAP_S = 0.3  # between one visitor's job showing in its sidebar and the next visitor's Train click
JOB_TIMEOUT_S = 3600  # 8 small trainings one after another, on a busy 2-core machine
SAMPLE_S = 0.5  # how often /proc is read for the server's and its training processes' memory
ENDED = re.compile(r"^(Finished|Stopped|Failed|Diverged|Cancelled)\b.*$", re.M)
JOB_STATE = re.compile(r"^(Queued: position \d+|Starting|Running|Scored|Finished|Stopped|Failed|Diverged|Cancelled)"
                       r"\b.*$", re.M)
VISITOR_NAME = "load visitor {}"
OTHER_VISITOR = re.compile(r"^load visitor (\d+)")


def proc_status_mb(pid: int | str = "self", field_name: str = "VmRSS") -> float:
    """A memory field of a process's /proc status (VmRSS: now, VmHWM: its peak), in MB (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for row in handle:
            if row.startswith(f"{field_name}:"):
                return int(row.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process now, from /proc (Linux)."""
    return proc_status_mb(pid, "VmRSS")


def child_sequential(trainings: int, trainer: str) -> None:
    """In this process: N small trainings one after another; print RSS after each as JSON lines."""

    from lib.execution import jobs
    from lib.training.config import TrainConfig

    manager = jobs.JobManager(runs_dir=tempfile.mkdtemp(prefix="mnist-load-runs-"),
                              trainer=jobs.process_trainer if trainer == "process" else jobs._default_trainer)
    for index in range(1, trainings + 1):
        job_id = manager.submit(TrainConfig(**SMALL_RUN, seed=index), session_id=f"visitor-{index % 8}")
        job = manager.wait(job_id, timeout=600)
        print(json.dumps({"training": index, "state": job.state, "error": job.error[:200], "rss_mb": round(rss_mb(), 1),
                          "jobs_kept": manager.job_count()}), flush=True)


def sequential_rss(trainings: int, trainer: str = "process") -> dict:
    """RSS growth between training 5 and training N, measured in a fresh process."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "_child-sequential", str(trainings), trainer],
        capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    rows = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    by_index = {row["training"]: row for row in rows}
    early, last = by_index[EARLY_TRAININGS]["rss_mb"], rows[-1]["rss_mb"]
    return {
        "trainer": trainer,
        "trainings": trainings,
        "rss_after_5_mb": early,
        f"rss_after_{trainings}_mb": last,
        "rss_growth_50_mb": round(last - early, 1),
        "rss_curve_mb": [row["rss_mb"] for row in rows],
        "jobs_kept_at_end": rows[-1]["jobs_kept"],
        "all_finished": all(row["state"] == "finished" for row in rows),
        "seconds": round(time.perf_counter() - started, 1),
    }


# ------------------------------------------------------------------ visitors: one public server, many browsers


def public_server(runs_dir: Path, max_queue: int, log_path: Path, *, prewarm: bool = True):
    """`streamlit run` in the public profile on a free port, fresh runs dir; yields (url, pid); stopped after.

    `prewarm=False` sets MNIST_STUDIO_PREWARM=0: the bundled model's test predictions are then
    computed by the first visitor who needs them, as before the server warmed them at start."""
    from lib.data import paths
    from tests.e2e.conftest import streamlit_server

    return streamlit_server(runs_dir, paths.data_dir(), log_path, MNIST_STUDIO_PROFILE="public",
                            MNIST_STUDIO_MAX_QUEUE=str(max_queue), MNIST_STUDIO_PREWARM="1" if prewarm else "0",
                            TF_CPP_MIN_LOG_LEVEL="2")


def training_processes(server_pid: int) -> list[int]:
    """The server's training processes: its `python -m lib.execution.worker` children (lib.execution.process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], list(children.get(server_pid, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            if b"lib.execution.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


class MemorySampler(threading.Thread):
    """Every SAMPLE_S: the server's peak RSS, each training process's, and whether one is training."""

    def __init__(self, server_pid: int):
        super().__init__(name="load-memory-sampler", daemon=True)
        self.server_pid = server_pid
        self.server_peak_mb = 0.0
        self.training_peaks_mb: dict[int, float] = {}
        self.timeline: list[tuple[float, bool]] = []  # (time.monotonic(), a training process was alive)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_S)

    def sample(self) -> None:
        training = training_processes(self.server_pid)
        for pid in training:
            with contextlib.suppress(OSError):  # it may have just exited
                self.training_peaks_mb[pid] = max(self.training_peaks_mb.get(pid, 0.0), proc_status_mb(pid, "VmHWM"))
        with contextlib.suppress(OSError):
            self.server_peak_mb = proc_status_mb(self.server_pid, "VmHWM")
        self.timeline.append((time.monotonic(), bool(training)))

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()  # the server is still up: its final peak

    def training_during(self, start: float, end: float) -> bool:
        """Whether a training process was alive at the last sample before `start` or at any until `end`."""
        before = [alive for moment, alive in self.timeline if moment <= start]
        return bool(before and before[-1]) or any(alive for moment, alive in self.timeline if start < moment <= end)


@dataclass
class Response:
    kind: str  # "Predictions page", "Draw page", "drawn digit"
    start: float  # time.monotonic() at the click (or the end of the stroke)
    ms: float
    ok: bool = True  # False: it failed or timed out after `ms`


DRAW_INVITATION = "Draw a digit on the canvas to see the predictions."


@dataclass
class Visitor:
    """One visitor: a browser context (its own Streamlit session and workspace), driven through
    Playwright's async API with the waits of tests/e2e/studio.py."""

    number: int
    page: object
    url: str
    artifacts: Path
    responses: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # exceptions or errors on a page, JavaScript errors, timeouts
    submitted: float | None = None
    first_state: str = ""  # the sidebar right after Train: "Queued: position 3 ..."
    final_state: str = ""
    compare_names: list | None = None

    def __post_init__(self):
        self.name = VISITOR_NAME.format(self.number)
        self.page.on("pageerror", lambda error: self.problems.append(f"JavaScript error: {error}"))

    # ---------------------------------------------------------------- waiting and reading

    def heading(self, text: str):
        return self.page.get_by_role("heading", name=text, exact=True)

    async def idle(self) -> None:
        await self.page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)

    async def settle(self) -> None:
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        with contextlib.suppress(PlaywrightTimeout):
            await self.page.wait_for_selector(RUNNING, timeout=RERUN_START_MS)
        await self.idle()

    async def check_page(self, where: str) -> None:
        """Note any exception or error box the page shows."""
        for testid in ("stException", "stAlertContentError"):
            for text in await self.page.get_by_test_id(testid).all_inner_texts():
                self.problems.append(f"{where}: {testid}: {text.strip()[:300]}")

    def widget(self, testid: str, label: str):
        label_locator = self.page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
        return self.page.get_by_test_id("stMain").get_by_test_id(testid).filter(has=label_locator)

    def prediction(self):
        label = self.page.get_by_test_id("stMetricLabel").get_by_text("Prediction", exact=True)
        return self.page.get_by_test_id("stMetric").filter(has=label).first

    async def job_state(self) -> str:
        """This visitor's job as the sidebar states it ("Queued: position 3 ...", "Finished · ..."), or ""."""
        text = await self.page.get_by_test_id("stSidebarUserContent").inner_text()
        if self.name not in text:
            return ""
        found = JOB_STATE.search(text.split(self.name, 1)[1])
        return found.group(0).strip() if found else ""

    async def wait_for_state(self, pattern: re.Pattern, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            state = await self.job_state()
            if pattern.match(state):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: the sidebar still says {state!r} after {timeout_s:.0f} s")
            await self.page.wait_for_timeout(1000)

    # ---------------------------------------------------------------- acting

    async def nav(self, label: str, *ready) -> None:
        """Click a sidebar link; back once the page's heading and `ready` show and its script run has ended."""
        await self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=label, exact=True).click()
        await self.heading(label).wait_for(timeout=PAGE_TIMEOUT_MS)
        for locator in ready:
            await locator.wait_for(timeout=PAGE_TIMEOUT_MS)
        await self.idle()
        await self.check_page(label)

    async def timed(self, kind: str, action) -> None:
        """Run `action`, keeping how long it took (and whether it failed) as one page response."""
        start, ok = time.monotonic(), False
        try:
            await action()
            ok = True
        finally:
            self.responses.append(Response(kind, start, (time.monotonic() - start) * 1000, ok))

    async def attempt(self, step: str, action) -> bool:
        """Run one step; a failure is noted (with a screenshot) and the visitor goes on."""
        try:
            await action
            return True
        except Exception as problem:
            self.problems.append(f"{step}: {type(problem).__name__}: {str(problem).splitlines()[0][:300]}")
            with contextlib.suppress(Exception):
                await self.page.screenshot(path=str(self.artifacts / f"visitor-{self.number}-{step}.png"),
                                           full_page=True)
            return False

    async def set_up_training(self, arch: str, limit: int) -> None:
        """Open the app and fill in a small run on Train, named after the visitor."""
        await self.page.goto(self.url)
        await self.heading("MNIST Studio").wait_for(timeout=PAGE_TIMEOUT_MS)
        await self.idle()
        await self.nav("Train", self.heading("2 · Settings"))
        await self.choose("Architecture", arch)
        await self.type_into("stNumberInput", "Epochs", 1)
        await self.type_into("stNumberInput", "Limit training images (0 = all)", limit)
        await self.type_into("stTextInput", "Run name (optional)", self.name)

    async def choose(self, label: str, option: str) -> None:
        combobox = self.widget("stSelectbox", label).get_by_role("combobox")
        if (await combobox.input_value()).startswith(option):
            return
        await combobox.fill(option)
        await self.page.get_by_role("option").filter(has_text=re.compile("^" + re.escape(option))).first.click()
        await self.settle()

    async def type_into(self, testid: str, label: str, value) -> None:
        box = self.widget(testid, label).locator("input")
        await box.fill(str(value))
        await box.press("Enter")
        await self.settle()
        shown = await box.input_value()
        if shown != str(value):
            raise AssertionError(f"{label!r} shows {shown!r}, not {value!r}")

    async def submit(self) -> None:
        """Click Train; back once the sidebar shows the job (queued or already running)."""
        await self.page.get_by_test_id("stMain").get_by_role("button", name="Train", exact=True).click()
        self.submitted = time.monotonic()
        self.first_state = await self.wait_for_state(JOB_STATE, PAGE_TIMEOUT_MS / 1000)
        await self.check_page("Train")

    async def open_predictions(self) -> None:
        await self.nav("Predictions", self.page.locator(".st-key-pred_grid img").first,
                       self.heading("Most confused classes"))

    async def open_draw(self) -> None:
        await self.page.get_by_test_id("stSidebarNav").get_by_role("link", name="Draw", exact=True).click()
        await self.heading("Draw").wait_for(timeout=PAGE_TIMEOUT_MS)
        # The canvas is in place once its stylesheet applies: its toolbar floats (see Studio.canvas_box).
        toolbar = self.page.get_by_test_id("stMain").locator(".dc-toolbar").last
        await toolbar.wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        while await toolbar.evaluate("toolbar => getComputedStyle(toolbar).position") != "absolute":
            if time.monotonic() > deadline:
                raise TimeoutError("the drawing canvas's stylesheet never applied")
            await self.page.wait_for_timeout(50)
        await self.idle()
        await self.check_page("Draw")

    async def draw_digit(self, strokes: list) -> None:
        """Draw on the canvas (cleared first if it holds an earlier digit); timed from the mouse's
        release to the prediction shown."""
        if await self.prediction().count():
            await self.page.get_by_test_id("stMain").get_by_role("button", name="Clear", exact=True).click()
            await self.page.get_by_text(DRAW_INVITATION).wait_for(timeout=PAGE_TIMEOUT_MS)
            await self.idle()
        box = await self.wait_for_pen()
        mouse = self.page.mouse
        for stroke in strokes:
            await mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
            await mouse.down()
            for x, y in stroke[1:]:
                await mouse.move(box["x"] + x, box["y"] + y, steps=2)
            await mouse.up()
        await self.timed("drawn digit", self.wait_for_prediction)
        await self.check_page("Draw")

    async def wait_for_prediction(self) -> None:
        await self.prediction().wait_for(timeout=PAGE_TIMEOUT_MS)
        await self.idle()

    async def wait_for_pen(self) -> dict:
        """Hover the canvas until Fabric's pen is ready (a stroke before that is lost); the canvas's box."""
        canvas = self.page.get_by_test_id("stMain").locator("canvas.upper-canvas").last
        await canvas.scroll_into_view_if_needed()  # strokes leaving the viewport lose their mouse-up
        box = await canvas.bounding_box()
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        wiggle = 0
        while await canvas.evaluate("canvas => canvas.style.cursor") != PEN_CURSOR:
            if time.monotonic() > deadline:
                raise TimeoutError("the canvas's drawing pen never came")
            wiggle ^= 1  # Fabric sets the cursor on mouse moves
            await self.page.mouse.move(box["x"] + CANVAS_PX / 2 + wiggle, box["y"] + CANVAS_PX / 2)
            await self.page.wait_for_timeout(100)
        return box

    async def browse(self, rounds: int, think_s: float) -> None:
        """While the jobs run: Predictions, Draw and a digit, `rounds` times; then wait for the own job's end."""
        for turn in range(rounds):
            strokes = DIGITS[(self.number + turn) % len(DIGITS)]
            await self.attempt(f"round-{turn + 1}-predictions", self.timed("Predictions page", self.open_predictions))
            await self.page.wait_for_timeout(think_s * 1000)
            if await self.attempt(f"round-{turn + 1}-draw", self.timed("Draw page", self.open_draw)):
                await self.attempt(f"round-{turn + 1}-digit", self.draw_digit(strokes))
            await self.page.wait_for_timeout(think_s * 1000)
        if self.submitted is not None:
            self.final_state = await self.wait_for_state(ENDED, JOB_TIMEOUT_S)

    async def read_compare(self) -> None:
        """The run names this visitor's Compare table lists."""
        await self.nav("Compare", self.heading("All runs"))
        header = self.page.locator("th[role=columnheader]").filter(has_text=re.compile("^name$"))
        frame = self.page.get_by_test_id("stDataFrame").filter(has=header).first
        await frame.locator("td[role=gridcell]").first.wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
        headers = await frame.locator("th[role=columnheader]").all_inner_texts()
        names = []
        for row in await frame.locator("tr").all():
            cells = await row.locator("td[role=gridcell]").all_inner_texts()
            if len(cells) == len(headers):
                names.append(dict(zip(headers, cells))["name"].strip())
        self.compare_names = names

    def leaks(self) -> list[str]:
        """Runs of other visitors this visitor was shown."""
        return [name for name in self.compare_names or []
                if (found := OTHER_VISITOR.match(name)) and int(found.group(1)) != self.number]


DIGITS = [[line((140, 40), (140, 240))],  # 1
          [ellipse((140, 140), (60, 95))],  # 0
          [line((70, 50), (210, 50)) + line((210, 50), (120, 245))[1:]]]  # 7


async def drive_visitors(url: str, count: int, *, arch: str, limit: int, rounds: int, think_s: float,
                         artifacts: Path) -> list[Visitor]:
    """All visitors in one headless Chromium, one context each: set up together, click Train in
    order, browse together, then read Compare."""
    from playwright.async_api import async_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        visitors = []
        for number in range(1, count + 1):
            context = await browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            visitors.append(Visitor(number, await context.new_page(), url, artifacts))
        await asyncio.gather(*(v.attempt("set-up", v.set_up_training(arch, limit)) for v in visitors))
        print(f"{count} visitors ready on Train; clicking Train in order", flush=True)
        for visitor in visitors:  # one after another, so the queue order is the visitors' order
            await visitor.attempt("submit", visitor.submit())
            print(f"  {visitor.name}: {visitor.first_state or 'not submitted'}", flush=True)
            await asyncio.sleep(SUBMIT_GAP_S)
        await asyncio.gather(*(v.attempt("browse", v.browse(rounds, think_s)) for v in visitors))
        print("every job has ended; each visitor opens Compare", flush=True)
        await asyncio.gather(*(v.attempt("compare", v.read_compare()) for v in visitors))
        await browser.close()
    return visitors


def percentile(values: list[float], share: int) -> float | None:
    """The `share`-th percentile (linear between the nearest ranks), None without values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[share - 1]


def finished_runs(runs_dir: Path) -> list[dict]:
    """Every run saved in a workspace, oldest first (meta.json is written when the run has finished)."""
    found = []
    for meta_path in (runs_dir / ".workspaces").glob("*/*/meta.json"):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        found.append({"workspace": meta_path.parent.parent.name, "name": meta.get("display_name", ""),
                      "created_at": meta.get("created_at", ""), "status": meta.get("status")})
    return sorted(found, key=lambda run: run["created_at"])


def visitors_benchmark(count: int, *, arch: str = VISITOR_ARCH, limit: int = VISITOR_LIMIT, rounds: int = ROUNDS,
                       think_s: float = THINK_S, prewarm: bool = True) -> dict:
    """N concurrent visitors on one public server: queue order, isolation, peak RSS, page response times."""
    data_dir = Path(os.environ.get("MNIST_STUDIO_DATA_DIR") or PROJECT / "data")
    if not (data_dir / "mnist.npz").is_file():
        raise SystemExit(f"No mnist.npz in {data_dir}: set MNIST_STUDIO_DATA_DIR to the folder that has it.")
    work = Path(tempfile.mkdtemp(prefix="mnist-load-visitors-"))
    runs_dir = work / "runs"
    runs_dir.mkdir()
    print(f"visitors: {count}, {arch} 1 epoch on {limit:,} images each, prewarm {'on' if prewarm else 'off'}; "
          f"server log, runs and screenshots in {work}", flush=True)
    load_before, started = os.getloadavg(), time.monotonic()
    with public_server(runs_dir, max(count, 8), work / "server.log", prewarm=prewarm) as (url, server_pid):
        sampler = MemorySampler(server_pid)
        sampler.start()
        try:
            visitors = asyncio.run(drive_visitors(url, count, arch=arch, limit=limit, rounds=rounds,
                                                  think_s=think_s, artifacts=work))
        finally:
            sampler.stop()
    load_after = os.getloadavg()

    submitted = [v.number for v in sorted((v for v in visitors if v.submitted), key=lambda v: v.submitted)]
    saved = finished_runs(runs_dir)
    numbers = [int(found.group(1)) for run in saved if (found := OTHER_VISITOR.match(run["name"]))]
    workspaces_of = {}
    for run in saved:
        workspaces_of.setdefault(run["workspace"], set()).add(run["name"])
    in_order = (numbers == submitted == list(range(1, count + 1))
                and all(run["status"] == "finished" for run in saved))
    # A response that failed (timed out) counts with the time it took to fail: a lower bound, never left out.
    timed = [r for v in visitors for r in v.responses]
    during = [r for r in timed if sampler.training_during(r.start, r.start + r.ms / 1000)]
    by_kind = {}
    for kind in sorted({r.kind for r in timed}):
        values = [r.ms for r in during if r.kind == kind]
        by_kind[kind] = {"count": len(values), "failed": sum(not r.ok for r in during if r.kind == kind),
                         "median_ms": _rounded(percentile(values, 50)), "p95_ms": _rounded(percentile(values, 95)),
                         "max_ms": _rounded(max(values, default=None))}
    leaks = sum(len(v.leaks()) for v in visitors)
    return {
        "visitors": count,
        "jobs_finished_in_order": in_order,
        "cross_visitor_leaks": leaks,
        "peak_rss_mb": round(sampler.server_peak_mb, 1),
        "page_p95_ms": _rounded(percentile([r.ms for r in during], 95)),
        "detail": {
            "command": f"python bench/load.py visitors --visitors {count} --limit {limit} --rounds {rounds}"
                       + (f" --arch {arch}" if arch != VISITOR_ARCH else "")
                       + (f" --think {think_s:g}" if think_s != THINK_S else ""),
            "run": f"{arch}, 1 epoch on {limit:,} MNIST images per visitor",
            "rounds": rounds,
            "think_s": think_s,
            "prewarm": prewarm,
            "submission_order": submitted,
            "finish_order": numbers,
            "first_states": {v.name: v.first_state for v in visitors},
            "final_states": {v.name: v.final_state for v in visitors},
            "runs_saved": len(saved),
            "one_visitor_per_workspace": all(len(names) == 1 for names in workspaces_of.values())
                                         and len(workspaces_of) == len(saved),
            "compare_read_by": sum(v.compare_names is not None for v in visitors),
            "compare_names": {v.name: v.compare_names for v in visitors},
            "leaked": {v.name: v.leaks() for v in visitors if v.leaks()},
            "training_processes": len(sampler.training_peaks_mb),
            "training_process_peak_rss_mb": round(max(sampler.training_peaks_mb.values(), default=0.0), 1),
            "responses_timed": len(timed),
            "responses_while_training": len(during),
            "responses_failed": sum(not r.ok for r in timed),
            "page_p95_ms_all_responses": _rounded(percentile([r.ms for r in timed], 95)),
            "page_response_ms_while_training": by_kind,
            "responses_s": {v.name: [[r.kind, round(r.start - started, 1), round(r.ms / 1000, 1), r.ok]
                                     for r in v.responses] for v in visitors},  # kind, at, seconds, ok
            "problems": {v.name: v.problems for v in visitors if v.problems},
            "load_average_start": [round(x, 2) for x in load_before],
            "load_average_end": [round(x, 2) for x in load_after],
            "cpu_count": os.cpu_count(),
            "seconds": round(time.monotonic() - started, 1),
        },
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value)


# ------------------------------------------------------------------ results


def record(update) -> dict:
    """Apply `update(saved)` to results-load.json (keeping what the other subcommand wrote) and
    rewrite the load section of RESULTS.md from it."""
    saved = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.exists() else {}
    update(saved)
    RESULTS_JSON.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    old = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else ""
    head = old[:old.index(LOAD_MARKER)] if LOAD_MARKER in old else old
    RESULTS_MD.write_text(head.rstrip("\n") + "\n\n" + load_section(saved), encoding="utf-8")
    return saved


def record_memory(result: dict) -> None:
    """One memory measurement into results-load.json and RESULTS.md."""
    def update(saved):
        saved.setdefault("memory", {})[result["trainer"]] = result
        if result["trainer"] == "process":  # the public server's trainer is the headline number
            saved["rss_growth_50_mb"] = result["rss_growth_50_mb"]

    record(update)


VISITOR_KEYS = ("visitors", "jobs_finished_in_order", "cross_visitor_leaks", "peak_rss_mb", "page_p95_ms")


def record_visitors(result: dict) -> dict:
    """One visitors measurement into results-load.json (its keys and `visitors_detail`) and RESULTS.md."""
    def update(saved):
        saved.update({key: result[key] for key in VISITOR_KEYS})
        saved["page_p95_ms_without_prewarm"] = result.get("page_p95_ms_without_prewarm")
        saved["visitors_detail"] = result["detail"]

    return record(update)


def load_section(saved: dict) -> str:
    """RESULTS.md from LOAD_MARKER on: the visitors table (if measured), then the memory table."""
    lines = [LOAD_MARKER, "## Load: one shared server (`python bench/load.py all`)", ""]
    if "visitors" in saved:
        detail = saved["visitors_detail"]
        lines += [
            f"### {saved['visitors']} concurrent visitors (`{detail['command']}`)",
            "",
            f"One `streamlit run` server in the `public` profile; {saved['visitors']} visitors in headless Chromium "
            f"(one browser context each) each train {detail['run']}, clicking Train one after another, then "
            f"browse Predictions and Draw (draw a digit, wait for the answer) {detail['rounds']} times while the "
            "jobs run; once all have ended each opens Compare. A page response is a click (or the end of a "
            "stroke) until the page has rendered and its script run has ended; p95 counts the responses while "
            f"a training process was alive; one that failed (timed out after {PAGE_TIMEOUT_MS // 1000} s) counts "
            "with its time to fail. Chromium runs on the same machine as the server.",
            "",
            "| visitors | jobs finished in queue order | cross-visitor leaks | peak RSS (server) | peak RSS "
            "(one training process) | page p95 while training | responses | load average (start → end) |",
            "|---|---|---|---|---|---|---|---|",
            f"| {saved['visitors']} | {'yes' if saved['jobs_finished_in_order'] else '**no**'} | "
            f"{saved['cross_visitor_leaks']} | {saved['peak_rss_mb']:,.0f} MB | "
            f"{detail['training_process_peak_rss_mb']:,.0f} MB | **{_ms(saved['page_p95_ms'])}** | "
            f"{detail['responses_while_training']} of {detail['responses_timed']}"
            f"{', %d failed' % detail['responses_failed'] if detail.get('responses_failed') else ''} | "
            f"{detail['load_average_start'][0]:.1f} → {detail['load_average_end'][0]:.1f} "
            f"({detail['cpu_count']} cores) |",
            "",
            "| response while training | count | failed | median | p95 | max |",
            "|---|---|---|---|---|---|",
            *(f"| {kind} | {row['count']} | {row.get('failed', 0)} | {_ms(row['median_ms'])} | {_ms(row['p95_ms'])} | "
              f"{_ms(row['max_ms'])} |"
              for kind, row in detail["page_response_ms_while_training"].items()),
            "",
        ]
        cold = detail.get("without_prewarm")
        if cold:
            lines += [
                "Side by side in the same run, first on a server started with `MNIST_STUDIO_PREWARM=0` (the "
                "bundled model's test predictions computed by the first visitors who open Predictions), then "
                "as deployed (computed in the background when the server starts):",
                "",
                "| server | page p95 while training | Predictions page median / p95 | Draw page median / p95 | "
                "load average (start → end) |",
                "|---|---|---|---|---|",
                _prewarm_row("without prewarm", cold["page_p95_ms"], cold),
                _prewarm_row("with prewarm (deployed)", saved["page_p95_ms"], detail),
                "",
            ]
        if detail["problems"]:
            lines += [f"Problems seen: {sum(map(len, detail['problems'].values()))} (see `visitors_detail.problems` "
                      "in results-load.json).", ""]
    if "memory" in saved:
        rows = []
        for name, row in sorted(saved["memory"].items()):
            last = row["rss_after_%d_mb" % row["trainings"]]
            rows.append(f"| {name} | {row['trainings']} | {row['rss_after_5_mb']:,.0f} MB | "
                        f"{last:,.0f} MB | **{row['rss_growth_50_mb']:+,.0f} MB** | "
                        f"{row['jobs_kept_at_end']} |")
        lines += [
            "### Memory over many trainings (`python bench/load.py memory --trainer process|thread`)",
            "",
            f"Small trainings ({SMALL_RUN['arch']}, {SMALL_RUN['epochs']} epoch on {SMALL_RUN['limit']} MNIST images) "
            "one after another through the job manager in one fresh process; RSS of that (server) process. "
            "Target: growth under 50 MB from training 5 to training 50. `process` trains each run in a child "
            "process (the public server's trainer); `thread` in the server's worker thread (local). Jobs kept: "
            "8 visitors x the 5 newest ended jobs each, however many ran.",
            "",
            "| trainer | trainings | RSS after 5 | RSS after last | growth | jobs kept |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    return "\n".join(lines)


def _prewarm_row(label: str, p95_ms: float | None, run: dict) -> str:
    """One server's line of the prewarm comparison: p95, Predictions and Draw median / p95, load."""
    by_kind = run["page_response_ms_while_training"]
    pages = " | ".join(f"{_ms(by_kind.get(kind, {}).get('median_ms'))} / {_ms(by_kind.get(kind, {}).get('p95_ms'))}"
                       for kind in ("Predictions page", "Draw page"))
    return (f"| {label} | **{_ms(p95_ms)}** | {pages} | "
            f"{run['load_average_start'][0]:.1f} → {run['load_average_end'][0]:.1f} |")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def run_memory(trainings: int, trainer: str) -> None:
    result = sequential_rss(trainings, trainer)
    print(json.dumps({k: v for k, v in result.items() if k != "rss_curve_mb"}, indent=2))
    print("RSS curve (MB):", result["rss_curve_mb"])
    record_memory(result)


def run_visitors(args) -> None:
    kwargs = dict(arch=args.arch, limit=args.limit, rounds=args.rounds, think_s=args.think)
    cold = None
    if args.compare_prewarm:  # the same visitors on a server that does not warm its shared caches, first
        cold = visitors_benchmark(args.visitors, prewarm=False, **kwargs)
        print(json.dumps({key: cold[key] for key in VISITOR_KEYS}, indent=2))
    result = visitors_benchmark(args.visitors, **kwargs)
    if cold is not None:
        result["page_p95_ms_without_prewarm"] = cold["page_p95_ms"]
        result["detail"]["command"] += " --compare-prewarm"
        result["detail"]["without_prewarm"] = {key: cold[key] for key in VISITOR_KEYS} | {
            key: cold["detail"][key] for key in ("page_response_ms_while_training", "load_average_start",
                                                 "load_average_end", "responses_failed", "seconds")}
    detail = result["detail"]
    print(json.dumps({key: result[key] for key in VISITOR_KEYS}, indent=2))
    print(json.dumps({key: detail[key] for key in (
        "submission_order", "finish_order", "final_states", "training_process_peak_rss_mb", "responses_timed",
        "responses_while_training", "page_p95_ms_all_responses", "page_response_ms_while_training",
        "load_average_start", "load_average_end", "seconds")}, indent=2))
    if detail["problems"]:
        print("Problems:", json.dumps(detail["problems"], indent=2))
    saved = record_visitors(result)
    print(f"RSS growth from training 5 to 50 (`memory`, recorded): {saved.get('rss_growth_50_mb', 'not measured')} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    memory = sub.add_parser("memory", help="RSS after 5 vs after N sequential small trainings")
    visitors = sub.add_parser("visitors", help="N concurrent visitors in a browser on one public server")
    both = sub.add_parser("all", help="memory (process trainer), then visitors")
    for command in (memory, both):
        command.add_argument("--trainings", type=int, default=50)
    memory.add_argument("--trainer", choices=("process", "thread"), default="process")
    for command in (visitors, both):
        command.add_argument("--visitors", type=int, default=8)
        command.add_argument("--limit", type=int, default=VISITOR_LIMIT, help="training images per visitor's run")
        command.add_argument("--arch", default=VISITOR_ARCH)
        command.add_argument("--rounds", type=int, default=ROUNDS, help="Predictions + Draw visits per visitor")
        command.add_argument("--think", type=float, default=THINK_S, help="seconds between a visitor's actions")
        command.add_argument("--compare-prewarm", action="store_true",
                             help="first the same visitors on a server with MNIST_STUDIO_PREWARM=0, side by side")
    child = sub.add_parser("_child-sequential")
    child.add_argument("trainings", type=int)
    child.add_argument("trainer")
    args = parser.parse_args()
    if args.command == "_child-sequential":
        child_sequential(args.trainings, args.trainer)
    if args.command in ("memory", "all"):
        run_memory(args.trainings, getattr(args, "trainer", "process"))
    if args.command in ("visitors", "all"):
        run_visitors(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
