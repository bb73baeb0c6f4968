"""A visitor of the public app trains on a Ray cluster, in a real browser.

The module starts a real local Ray head (tests/lib/ray_head.py) and moto's S3 server, and serves
the app with `streamlit run` in the `public` profile with MNIST_STUDIO_RAY_ADDRESS and the S3 run
store: as a Community Cloud front end with a cluster behind it. The visitor trains on the Train
page, sees where the job runs, watches the live curves and progress bar move (they come back from
the cluster through the store), and finds the finished run's report and the run on Compare. If Ray
cannot start, the test fails.
"""

import json
import re
import time
import uuid

import boto3
import pytest

from tests.e2e.conftest import browser_missing_reason, streamlit_server, studio_tab
from tests.e2e.studio import SLOW_MS
from tests.lib.ray_head import LocalHead
from tests.moto_s3 import start_moto

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
TRAIN_TIMEOUT_S = 420  # a cold job on the cluster: runtime env, TensorFlow's import, 2 epochs, scoring, upload
RUN_NAME = "trained on the cluster"


@pytest.fixture(scope="module")
def cluster_app_url(tmp_path_factory, e2e_data_dir, artifacts_dir):
    """The public app with its trainings on a local Ray cluster and its runs on an S3 server."""
    moto, endpoint = start_moto()
    head = None
    try:
        head = LocalHead(env=CREDENTIALS, log_path=artifacts_dir / "ray-head.log")
        bucket = f"runs-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        settings = {**CREDENTIALS, "MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_STORE": f"s3://{bucket}/studio",
                    "MNIST_STUDIO_STORE_ENDPOINT": endpoint, "MNIST_STUDIO_RAY_ADDRESS": head.address}
        with streamlit_server(tmp_path_factory.mktemp("e2e_cluster_runs"), e2e_data_dir,
                              artifacts_dir / "streamlit-cluster-server.log", **settings) as (url, _):
            yield url
    finally:
        if head is not None:
            head.stop()
        moto.terminate()
        moto.wait(10)


@pytest.fixture
def visitor(browser, cluster_app_url, artifacts_dir, request):
    yield from studio_tab(browser, cluster_app_url, artifacts_dir, request)


def job_state(app, name: str) -> str:
    head = app.page.get_by_test_id("stMain").get_by_test_id("stMarkdownContainer").filter(
        has=app.page.get_by_role("heading", name=name, level=4))
    texts = head.all_inner_texts()
    return texts[-1].replace(name, "", 1).strip() if texts else ""


def loss_points(app) -> int:
    return max((sum(chart.values()) for chart in app.chart_points("live_loss_")), default=0)


def test_a_visitor_trains_on_the_cluster_and_watches_it_live(visitor, artifacts_dir):
    """As a learner on the shared app, I train the tutorial CNN: the page says it runs on the cluster, the
    loss curve and the progress bar move while it trains there, and the finished run's report
    and its row on Compare appear as for a training on the app's own machine."""
    visitor.nav("Train")
    visitor.choose("Architecture", "cnn-tf-tutorial ·")
    visitor.type_into("stNumberInput", "Epochs", 2)
    visitor.type_into("stNumberInput", "Limit training images (0 = all)", 8000)  # long enough to be watched on a fast CPU
    visitor.choose("Batch size", "16")  # many batches: the curves move over several polls
    visitor.type_into("stTextInput", "Run name (optional)", RUN_NAME)
    visitor.button("Train").click()

    samples, started = [], time.monotonic()
    results = visitor.heading("4 · Results", level=3)

    def finished() -> bool:
        if results.is_visible():
            return True
        samples.append({"t": round(time.monotonic() - started, 1), "points": loss_points(visitor),
                        "progress": visitor.progress_values(), "state": job_state(visitor, RUN_NAME)})
        if samples[-1]["points"] and not any(sample["points"] for sample in samples[:-1]):
            visitor.screenshot("cluster-training-live")
        return False

    visitor.wait_until(finished, timeout_s=TRAIN_TIMEOUT_S, what="the finished run's results", every_s=0.5)
    (artifacts_dir / "cluster-live-samples.json").write_text(json.dumps(samples))
    points = [sample["points"] for sample in samples if sample["points"]]
    progress = sorted({value for sample in samples for value in sample["progress"]})
    states = list(dict.fromkeys(sample["state"] for sample in samples))
    print(f"\nlive loss points: {points[:1]} .. {points[-1:]}, {len(set(points))} distinct counts; "
          f"progress seen: {progress}; states: {states[:3]} .. {states[-2:]}")
    assert any("on the cluster" in state for state in states), states
    assert points and points[-1] > points[0], f"the live loss chart did not gain points: {points}"
    assert len(progress) >= 2 and progress[-1] > progress[0], f"the progress bar did not move: {progress}"

    visitor.wait_idle()
    assert visitor.page.get_by_text(re.compile(r"^Finished · test accuracy \d")).first.is_visible()
    assert visitor.exception_count() == 0
    visitor.screenshot("cluster-training-finished")

    visitor.nav("Compare")
    visitor.heading("All runs", level=3).wait_for(timeout=SLOW_MS)
    rows = [row for row in visitor.table_rows() if row["name"] == RUN_NAME]
    assert len(rows) == 1 and rows[0]["status"] == "finished" and rows[0]["epochs"] == "2", rows
