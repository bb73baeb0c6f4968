"""8 visitors training at once on a Ray cluster behind one public app server.

    python bench/cluster.py [--visitors 8] [--limit 1000] [--max-running 2]

Starts moto's S3 server and a local Ray head (tests/lib/ray_head.py; both ended afterwards), then
`streamlit run` in the `public` profile with MNIST_STUDIO_RAY_ADDRESS and the S3 run store: a
Community Cloud front end with a cluster behind it. N headless Chromium visitors (one browser
context each: their own workspace) open the Train page and set up a small run (mlp-128, one
epoch on `--limit` images); after a warm-up the server's RSS is sampled idle, then the visitors
click Train one after another as fast as the browser allows (the queue order is the click order).
While the jobs run the bench samples the server's RSS (VmRSS, every 0.2 s) and reads the job board
on the store (`.jobs/`: each job's record and progress object, every 0.25 s, as a second reader
would) to time each job's first batch after its click. Writes bench/results-cluster.json (exactly
`visitors`, `jobs_finished_in_order`: every job finished and they finished in queue order, the
order the server took the clicks in; `server_rss_ratio`: peak while the jobs run / idle after the
warm-up; `first_progress_s`: median time from the server's submit to the job's first batch), the details per command in bench/results-cluster-detail.json, and one row per
command in the cluster section of bench/RESULTS.md. Needs the real MNIST in $MNIST_STUDIO_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402
from tests.e2e.studio import Studio  # noqa: E402
from tests.lib.ray_head import LocalHead  # noqa: E402
from tests.moto_s3 import start_moto  # noqa: E402

RESULTS_JSON = PROJECT / "bench" / "results-cluster.json"
DETAIL_JSON = PROJECT / "bench" / "results-cluster-detail.json"
RESULTS_MD = PROJECT / "bench" / "RESULTS.md"
MARKER = "<!-- bench/cluster.py -->"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
WARM_UP_S = 20.0  # after every visitor's Train page is up: the server settles, then idle RSS is sampled
IDLE_SAMPLE_S = 10.0
JOBS_TIMEOUT_S = 1200


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for row in handle:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """The server's RSS every 0.2 s while `active`; `window(start, end)` gives its peak in a span."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            try:
                self.samples.append((time.monotonic(), rss_mb(self.pid)))
            except OSError:
                return

    def window(self, start: float, end: float) -> list[float]:
        return [mb for at, mb in self.samples if start <= at <= end]


def board_reader(endpoint: str, bucket: str):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing")
    base = f"{bucket}/studio/.jobs"

    def read(path: str):
        try:
            return json.loads(fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            return None

    def records() -> dict:
        fs.invalidate_cache(base)
        try:
            names = [name for name in fs.ls(base, detail=False) if name.endswith(".json")]
        except FileNotFoundError:
            return {}
        found = {}
        for name in names:
            record = read(name)
            if record:
                found[record["job_id"]] = record
        return found

    return records, lambda job_id: read(f"{base}/progress/{job_id}.json")


def set_up(app: Studio, limit: int, name: str) -> None:
    app.open()
    app.nav("Train")
    app.choose("Architecture", "mlp-128 ·")
    app.type_into("stNumberInput", "Epochs", 1)
    app.type_into("stNumberInput", "Limit training images (0 = all)", limit)
    app.type_into("stTextInput", "Run name (optional)", name)


def bench(visitors: int, limit: int, max_running: int) -> dict:
    from playwright.sync_api import sync_playwright

    data_dir = Path(os.environ.get("MNIST_STUDIO_DATA_DIR") or PROJECT / "data")
    if not (data_dir / "mnist.npz").is_file():
        raise SystemExit(f"No mnist.npz in {data_dir}: set MNIST_STUDIO_DATA_DIR to the folder that has it.")
    work = Path(tempfile.mkdtemp(prefix="mnist-cluster-bench-"))
    print(f"visitors {visitors}, mlp-128 1 epoch on {limit:,} images, {max_running} at once on the cluster; "
          f"logs and screenshots in {work}", flush=True)
    moto, endpoint = start_moto()
    head = None
    started = time.monotonic()
    try:
        head = LocalHead(env=CREDENTIALS, log_path=work / "ray-head.log")
        import boto3

        bucket = f"runs-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        settings = {**CREDENTIALS, "MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_STORE": f"s3://{bucket}/studio",
                    "MNIST_STUDIO_STORE_ENDPOINT": endpoint, "MNIST_STUDIO_RAY_ADDRESS": head.address,
                    "MNIST_STUDIO_RAY_MAX_RUNNING": str(max_running), "MNIST_STUDIO_MAX_QUEUE": str(visitors),
                    "TF_CPP_MIN_LOG_LEVEL": "2"}
        records, progress_of = board_reader(endpoint, bucket)
        with streamlit_server(work / "runs", data_dir, work / "server.log", **settings) as (url, pid), \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            apps = []
            for n in range(1, visitors + 1):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.set_default_timeout(120_000)
                app = Studio(context.new_page(), url, work)
                set_up(app, limit, f"visitor {n}")
                apps.append(app)
            sampler = Sampler(pid)
            sampler.start()
            time.sleep(WARM_UP_S)
            idle_from = time.monotonic()
            time.sleep(IDLE_SAMPLE_S)
            idle = statistics.median(sampler.window(idle_from, time.monotonic()))
            for app in apps:
                app.button("Train").click()
            busy_from = time.monotonic()
            first_batch, deadline = {}, time.monotonic() + JOBS_TIMEOUT_S
            while time.monotonic() < deadline:
                board = records()
                for job_id, record in board.items():
                    if job_id not in first_batch and record["state"] in ("running",):
                        progress = progress_of(job_id) or {}
                        if progress.get("batches"):
                            first_batch[job_id] = time.time()
                if len(board) == visitors and all(r["state"] not in ("queued", "running", "waiting")
                                                  for r in board.values()):
                    break
                time.sleep(0.25)
            busy_to = time.monotonic()
            apps[0].screenshot("cluster-bench-visitor-1")
            board = records()
            peak = max(sampler.window(busy_from, busy_to), default=0.0)
            sampler.done.set()
            browser.close()
    finally:
        if head is not None:
            head.stop()
        moto.terminate()
        moto.wait(10)

    by_name = {record["config"]["name"]: record for record in board.values()}
    names = [f"visitor {n}" for n in range(1, visitors + 1)]
    queue_order = [record["config"]["name"] for record in sorted(board.values(), key=lambda r: r["created"])]
    ended = [record for record in board.values() if record.get("ended")]
    finish_order = [record["config"]["name"] for record in sorted(ended, key=lambda r: r["ended"])]
    start_order = [record["config"]["name"] for record in sorted(board.values(), key=lambda r: r.get("started") or 1e20)]
    all_finished = len(board) == visitors and all(r["state"] == "finished" for r in board.values())
    waits, after_start = [], []
    for name in names:  # from the server's submit (the job's record) to its first batch on the board
        record = by_name.get(name)
        if record and record["job_id"] in first_batch:
            waits.append(first_batch[record["job_id"]] - record["created"])
            if record.get("started"):
                after_start.append(first_batch[record["job_id"]] - record["started"])
    return {
        "visitors": visitors,
        # The queue is the order the server took the clicks in (a busy server may take two the other way round).
        "jobs_finished_in_order": all_finished and sorted(queue_order) == sorted(names) and finish_order == queue_order,
        "server_rss_ratio": round(peak / idle, 3) if idle else None,
        "first_progress_s": round(statistics.median(waits), 1) if waits else None,
        "detail": {
            "command": f"python bench/cluster.py --visitors {visitors} --limit {limit} --max-running {max_running}",
            "run": f"mlp-128, 1 epoch on {limit:,} MNIST images per visitor; a local Ray head with 2 CPUs "
                   f"(1 CPU declared per training, {max_running} at once), moto S3 as the run store",
            "queue_order": queue_order,
            "start_order": start_order,
            "finish_order": finish_order,
            "states": {record["config"]["name"]: record["state"] for record in board.values()},
            "server_rss_idle_mb": round(idle, 1),
            "server_rss_peak_while_jobs_mb": round(peak, 1),
            "first_progress_each_s": [round(w, 1) for w in waits],
            "first_progress_min_max_s": [round(min(waits), 1), round(max(waits), 1)] if waits else None,
            "first_progress_after_submission_to_ray_each_s": [round(w, 1) for w in after_start],
            "first_progress_after_submission_to_ray_median_s": round(statistics.median(after_start), 1)
                                                               if after_start else None,
            "jobs_seconds": round(busy_to - busy_from, 1),
            "cpu_count": os.cpu_count(),
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.monotonic() - started, 1),
        },
    }


def record(result: dict) -> None:
    """results-cluster.json: the four keys of this run; the detail file and RESULTS.md: one entry per command."""
    detail = result.pop("detail")
    RESULTS_JSON.write_text(json.dumps(result, indent=2) + "\n")
    saved = json.loads(DETAIL_JSON.read_text()) if DETAIL_JSON.exists() else {}
    saved[detail["command"]] = {**result, **detail}
    DETAIL_JSON.write_text(json.dumps(saved, indent=2) + "\n")
    rows = []
    for command, run in saved.items():
        low, high = run["first_progress_min_max_s"] or (None, None)
        rows.append(f"| `{command}` | {'yes' if run['jobs_finished_in_order'] else 'no'} (queue "
                    f"{', '.join(name.split()[-1] for name in run['queue_order'])}; started "
                    f"{', '.join(name.split()[-1] for name in run['start_order'])}; ended "
                    f"{', '.join(name.split()[-1] for name in run['finish_order'])}) | {run['server_rss_ratio']} "
                    f"({run['server_rss_peak_while_jobs_mb']:,.0f} / {run['server_rss_idle_mb']:,.0f} MB) | "
                    f"{run['first_progress_s']} s (min {low}, max {high}); "
                    f"{run['first_progress_after_submission_to_ray_median_s']} s after its turn came | "
                    f"{run['jobs_seconds']} s, load average {run['load_average_end'][0]} |")
    section = (f"{MARKER}\n### Trainings on a Ray cluster (bench/cluster.py)\n\n"
               f"8 public visitors in Chromium click Train at once; each run is mlp-128, one epoch on 1,000 MNIST "
               f"images, a Ray job on a local head (2 CPUs, 1 declared per training) on the same 2 shared cores; "
               f"moto S3 is the run store.\n\n"
               f"| command | every job finished, in queue order | server RSS peak while jobs run / idle after "
               f"warm-up | submit to first batch (median) | all jobs |\n|---|---|---|---|---|\n"
               + "\n".join(rows) + "\n")
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    if MARKER in text:
        before, _, rest = text.partition(MARKER)
        after = rest.split("\n<!-- ", 1)
        text = before + section + ("\n<!-- " + after[1] if len(after) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--limit", type=int, default=1000, help="training images per visitor's run")
    parser.add_argument("--max-running", type=int, default=2, help="trainings on the cluster at once")
    args = parser.parse_args()
    result = bench(args.visitors, args.limit, args.max_running)
    print(json.dumps(result, indent=2))
    record(result)
    return 0 if result["jobs_finished_in_order"] else 1


if __name__ == "__main__":
    sys.exit(main())
