"""What the pages ask of a remote run store: a model is downloaded once, never per rerun.

A real S3-compatible server (moto's server mode on 127.0.0.1) holds two trained runs; the app
server starts with an empty runs folder (a restart), and the server's own request log says which
objects each render fetched.
"""

import time

import numpy as np
import pytest

from lib.store import backend, runs
from lib.ui import draw as ui_draw
from tests.app.conftest import WEAK_RUN, open_page
from tests.moto_s3 import requests


@pytest.fixture
def runs_on_store(s3_server, s3_store, app_runs, tmp_path, monkeypatch):
    """The two trained runs on the S3 store, and this app server's runs folder empty (it restarted)."""
    trained = runs.list_runs(app_runs, include_bundled=False)[0]
    for run in trained:
        backend.current().push_run(run.path)
    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(tmp_path / "after-restart"))
    backend._STORES.clear()
    newest = next(run.run_id for run in trained if run.display_name == WEAK_RUN)  # what the pages pick first
    return s3_store, s3_server[1], newest


def logged(log) -> int:
    time.sleep(0.3)  # the server logs a request after answering it
    return len(requests(log))


def model_gets(log, bucket, since) -> list[str]:
    return [r.path for r in requests(log, since) if r.method == "GET" and r.path.startswith(f"/{bucket}/")
            and r.path.split("?")[0].endswith(f"/{runs.MODEL_FILE}")]


def a_drawing() -> np.ndarray:
    image = np.zeros((280, 280, 4), dtype=np.uint8)
    image[60:220, 130:150] = 255  # a one
    return image


@pytest.mark.parametrize("page", ["pages/draw.py", "pages/predictions.py", "pages/inside.py"])
def test_a_model_on_the_store_is_downloaded_once_and_never_again_on_a_rerun(runs_on_store, page, monkeypatch):
    """A class's runs live on S3 and the app restarted: the first page a learner opens fetches the
    model it shows once; clicking around (reruns) fetches no model again."""
    bucket, log, newest = runs_on_store
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: a_drawing())
    since = logged(log)
    at = open_page(page)
    assert not at.error, [error.value for error in at.error]
    first = model_gets(log, bucket, since)
    assert first == [f"/{bucket}/studio/{newest}/{runs.MODEL_FILE}"]  # the run the page shows, once
    since = logged(log)
    for _ in range(2):
        at.run()
        assert not at.exception and not at.error
    assert model_gets(log, bucket, since) == []
