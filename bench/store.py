"""Run-store bench: page renders with 50 runs in a workspace on a real S3 server vs the local folder.

    python bench/store.py [--runs 50] [--renders 5]

A moto S3 server (server mode, 127.0.0.1, as the tests start it) holds the runs of one public
workspace; the app (AppTest, the public profile, the workspace's link) renders Compare and Draw.
For S3 the app server starts with an empty runs folder (a restart), so its first visit pulls;
"after the first visit" is what the ratios compare. Before every timed render the store's listing
time is expired (as if the visitor clicked after LIST_TTL_S), so each Compare render pays its
listing call: an upper bound, not the common case of clicks within a few seconds.

Requests are counted from the S3 server's own request log (every HTTP request it answered),
not estimated. The 50 runs are one tiny Keras model (softmax, 1 epoch on 500 MNIST images)
trained once and saved 50 times through the real save path (`runs.save_run`: atomic folder,
pushed file by file with the commit object last), each with its own name and learning rate in
its config; their scores are that one model's.

Writes bench/results-store.json (`runs`, `compare_ratio`, `draw_ratio`, `requests_per_compare`,
and the details under `detail`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import numpy as np  # noqa: E402

from tests.moto_s3 import requests, start_moto  # noqa: E402

APP_FILE = str(PROJECT / "streamlit_app.py")
RESULTS = PROJECT / "bench" / "results-store.json"


def a_drawn_one() -> np.ndarray:
    image = np.zeros((280, 280, 4), dtype=np.uint8)
    image[60:220, 130:150] = 255
    return image


def save_runs(count: int, workspace_folder: Path, data_dir: Path) -> None:
    """One tiny model trained, then saved `count` times through the real save path."""
    from lib.data import catalog, datasets
    from lib.store import runs
    from lib.training import loop
    from lib.training.config import TrainConfig

    base = TrainConfig(dataset="mnist", arch="softmax", epochs=1, limit=500, name="bench")
    dataset = catalog.load_dataset("mnist", data_dir)
    data = datasets.prepare(dataset, validation_split=base.validation_split, limit=base.limit, seed=base.seed)
    result = loop.train(base, data)
    for index in range(count):
        config = dataclasses.replace(base, name=f"bench run {index:02d}", learning_rate=0.001 * (1 + index))
        runs.save_run(result, config, data.info, workspace_folder)


def logged(log: Path | None) -> int:
    if log is None:
        return 0
    time.sleep(0.3)  # the server logs a request after answering it
    return len(requests(log))


def measure(label: str, key: str, renders: int, log: Path | None) -> dict:
    """First visit and `renders` timed renders of Compare and Draw, with the S3 requests of each."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from lib.store import backend, workspaces
    from lib.ui import draw as ui_draw

    ui_draw.canvas = lambda stroke_width, key=None: a_drawn_one()  # the canvas component cannot run in AppTest
    st.cache_data.clear()
    st.cache_resource.clear()
    out = {}
    for page in ("pages/compare.py", "pages/draw.py"):
        st.cache_data.clear()  # each page's first visit starts from a restarted server's caches
        st.cache_resource.clear()
        backend._STORES.clear()
        since = logged(log)
        started = time.perf_counter()
        at = AppTest.from_file(APP_FILE, default_timeout=300)
        at.query_params["ws"] = key
        at.run()  # Home, the link's first page
        at.switch_page(page).run()
        if page == "pages/draw.py":  # ask the newest of the 50 runs (the page starts on the bundled model)
            newest = workspaces.open_workspace(key).list_runs()[0][0]  # listed already: no request
            assert newest.display_name.startswith("bench run"), newest.display_name
            at.multiselect(key="draw_models").set_value([newest.run_id]).run()
        first_s = time.perf_counter() - started
        assert not at.exception and not at.error, (label, page, at.exception, [e.value for e in at.error])
        backend.current().settle()
        first_requests = logged(log) - since
        times, counts, model_gets = [], [], 0
        quick_times, quick_counts = [], []
        for _ in range(renders):  # clicks within LIST_TTL_S of the last listing: nothing asked of the store
            since = logged(log)
            started = time.perf_counter()
            at.run()
            quick_times.append(time.perf_counter() - started)
            quick_counts.append(logged(log) - since)
        for _ in range(renders):
            backend.current().expire_listings()  # the listing's time is up: this render lists the store again
            since = logged(log)
            started = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - started)
            assert not at.exception and not at.error, (label, page)
            backend.current().settle()  # the listing refreshed in the background: its requests count here
            counts.append(logged(log) - since)
            if log is not None:
                model_gets += sum(1 for r in requests(log, since) if r.method == "GET" and "model.keras" in r.path)
        name = Path(page).stem
        out[name] = {"first_visit_s": round(first_s, 3), "first_visit_requests": first_requests,
                     "render_s_median": round(statistics.median(times), 4), "render_s": [round(t, 4) for t in times],
                     "requests_per_render": counts, "model_gets_after_first_visit": model_gets,
                     "within_ttl_render_s_median": round(statistics.median(quick_times), 4),
                     "within_ttl_render_s": [round(t, 4) for t in quick_times],
                     "within_ttl_requests_per_render": quick_counts}
        if name == "compare":
            out[name]["runs_listed"] = sum(len(frame.value) for frame in at.dataframe if "name" in frame.value.columns)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()

    from lib.data import paths
    from lib.store import backend, workspaces

    data_dir = paths.data_dir()
    os.environ["MNIST_STUDIO_PROFILE"] = "public"
    os.environ["MNIST_STUDIO_PREWARM"] = "0"
    os.environ.pop(backend.STORE_ENV, None)
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    log = work / "moto-requests.log"
    process, endpoint = start_moto(log=log)
    try:
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", backend.ENDPOINT_ENV: endpoint})
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        key = workspaces.new_key()

        os.environ["MNIST_STUDIO_RUNS_DIR"] = str(work / "local")  # the local folder is the store
        save_runs(args.runs, workspaces.open_workspace(key).folder, data_dir)
        os.environ[backend.STORE_ENV] = f"s3://{bucket}/studio"
        os.environ["MNIST_STUDIO_RUNS_DIR"] = str(work / "s3-server-1")
        backend._STORES.clear()
        started = time.perf_counter()
        save_runs(args.runs, workspaces.open_workspace(key).folder, data_dir)
        save_s3_s = time.perf_counter() - started

        os.environ.pop(backend.STORE_ENV)
        os.environ["MNIST_STUDIO_RUNS_DIR"] = str(work / "local")
        backend._STORES.clear()
        measure("warm-up", key, 1, None)  # TensorFlow, Streamlit and the test set loaded once for both
        local = measure("local", key, args.renders, None)

        os.environ[backend.STORE_ENV] = f"s3://{bucket}/studio"
        os.environ["MNIST_STUDIO_RUNS_DIR"] = str(work / "s3-server-2")  # restarted: nothing here yet
        backend._STORES.clear()
        remote = measure("s3", key, args.renders, log)
    finally:
        process.terminate()
        process.wait(10)

    result = {
        "runs": args.runs,
        "compare_ratio": round(remote["compare"]["render_s_median"] / local["compare"]["render_s_median"], 2),
        "draw_ratio": round(remote["draw"]["render_s_median"] / local["draw"]["render_s_median"], 2),
        "requests_per_compare": statistics.median(remote["compare"]["requests_per_render"]),
        "within_ttl_compare_ratio": round(remote["compare"]["within_ttl_render_s_median"]
                                          / local["compare"]["within_ttl_render_s_median"], 2),
        "within_ttl_draw_ratio": round(remote["draw"]["within_ttl_render_s_median"]
                                       / local["draw"]["within_ttl_render_s_median"], 2),
        "detail": {"local": local, "s3": remote, "renders": args.renders, "save_50_runs_to_s3_s": round(save_s3_s, 1),
                   "load_average": os.getloadavg(), "cpus": os.cpu_count(),
                   "how": "AppTest renders in one process; moto S3 server on 127.0.0.1; listing TTL expired "
                          "before every timed render; requests from the S3 server's request log; one tiny "
                          "softmax model trained once and saved 50 times through runs.save_run"},
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "detail"}))


if __name__ == "__main__":
    main()
