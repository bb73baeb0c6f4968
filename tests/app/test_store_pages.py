"""The run store seen from the pages: a store that cannot be reached is named, the rest keeps working."""

import io
import json
import socket

import numpy as np
import pytest

from lib.store import backend
from tests.app.conftest import open_page


@pytest.mark.parametrize("page", ["pages/home.py", "pages/draw.py", "pages/compare.py", "pages/predictions.py", "pages/inside.py"])
def test_an_unreachable_store_is_named_on_the_page_and_the_bundled_model_still_draws(
        bundled_run, page, monkeypatch):
    """A teacher's S3 bucket is down: each page that lists runs says so in one message, and the
    bundled model is still there to draw with."""
    unreachable_store(monkeypatch)
    at = open_page(page)
    errors = [error.value for error in at.error]
    assert any("cannot be reached" in text and "s3://class-runs/studio" in text for text in errors), errors
    if page == "pages/draw.py":
        assert not at.exception
        assert not any("No model to" in text for text in errors)  # the bundled model is picked, drawing works


def unreachable_store(monkeypatch) -> None:
    """MNIST_STUDIO_STORE on an S3 endpoint where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(backend.STORE_ENV, "s3://class-runs/studio")
    monkeypatch.setenv(backend.ENDPOINT_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # One attempt per request: the refused connection fails at once, but botocore's backoff before each
    # retry (up to 1 s, then 2 s) cost seconds per call, and a page makes several (a minute per test).
    monkeypatch.setenv(backend.ATTEMPTS_ENV, "1")
    backend._STORES.clear()


def test_a_dataset_uploaded_while_the_store_is_down_is_named_and_still_usable_here(bundled_run, monkeypatch):
    """A teacher uploads a dataset while the bucket is down: the Data page says it is on this server only
    for now and will be sent once the store is back, and shows no traceback."""
    from tests.conftest import synthetic_arrays

    unreachable_store(monkeypatch)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **synthetic_arrays(40, 20, num_classes=3))
    at = open_page("pages/data.py")
    assert any("cannot be reached" in error.value for error in at.error)  # said before anything is uploaded
    at.text_input(key="data_upload_name").set_value("letters").run()
    at.file_uploader(key="data_upload_file").set_value(("letters.npz", buffer.getvalue(), "application/zip")).run()
    at.button(key="data_upload_add").click().run()
    assert not at.exception
    errors = [error.value for error in at.error]
    assert any("added here but not to the run store" in text and "cannot be reached" in text
               and "sent to the run store by itself once the store answers again" in text for text in errors), errors


def test_a_model_the_store_cannot_send_is_named_on_draw_and_inside(app_runs, monkeypatch, tmp_path):
    """The runs were listed, then the bucket went down before their model came: Draw and Inside say so
    (no traceback), and the bundled model still answers on Draw."""
    from lib.store import runs
    from lib.ui import draw as ui_draw

    run = runs.list_runs(app_runs, include_bundled=False)[0][0]
    (run.path / runs.MODEL_FILE).unlink()  # pulled, its model still on the store only
    (run.path / backend.REMOTE_FILE).write_text(json.dumps({runs.MODEL_FILE: {"size": 1000, "etag": '"x"'}}))
    unreachable_store(monkeypatch)
    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(app_runs))
    image = np.zeros((280, 280, 4), dtype=np.uint8)
    image[60:220, 130:150] = 255
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: image)
    for page in ("pages/draw.py", "pages/inside.py"):
        at = open_page(page)
        if page == "pages/inside.py":
            at.selectbox(key="inside_run").set_value(run.run_id).run()
        else:
            at.multiselect(key="draw_models").set_value([run.run_id]).run()
        assert not at.exception
        errors = [error.value for error in at.error]
        assert any("could not be loaded" in text or "cannot be loaded" in text for text in errors), errors
        assert any("cannot be reached" in text for text in errors), errors
