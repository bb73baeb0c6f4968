"""The run store seen from the pages: a store that cannot be reached is named, the rest keeps working."""

import socket

import pytest

from lib.store import backend
from tests.app.conftest import open_page


@pytest.mark.parametrize("page", ["pages/home.py", "pages/draw.py", "pages/compare.py", "pages/predictions.py"])
def test_an_unreachable_store_is_named_on_the_page_and_the_bundled_model_still_draws(
        bundled_run, page, monkeypatch):
    """A teacher's S3 bucket is down: each page that lists runs says so in one message, and the
    bundled model is still there to draw with."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(backend.STORE_ENV, "s3://class-runs/studio")
    monkeypatch.setenv(backend.ENDPOINT_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    backend._STORES.clear()
    at = open_page(page)
    errors = [error.value for error in at.error]
    assert any("cannot be reached" in text and "s3://class-runs/studio" in text for text in errors), errors
    if page == "pages/draw.py":
        assert not at.exception
        assert not any("No model to" in text for text in errors)  # the bundled model is picked, drawing works
