"""Fashion-MNIST everywhere MNIST is: the real file's images on Data, Predictions and Draw, with class names."""

import os
import re
from pathlib import Path

import numpy as np
import pytest
import streamlit as st

from lib.data import paths
from lib.store import runs
from tests.app.conftest import open_page
from tests.app.test_predictions_page import grid_captions
from tests.conftest import mnist_slice

FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory) -> Path:
    """A data dir with a slice of the real Fashion-MNIST (shared file) and of MNIST."""
    shared = Path(os.environ.get("MNIST_STUDIO_DATA_DIR", "")) / "fashion_mnist.npz"
    if not shared.is_file():
        pytest.fail(f"{shared} is missing: CI points MNIST_STUDIO_DATA_DIR at ../shared/datasets")
    folder = tmp_path_factory.mktemp("fashion_data")
    with np.load(shared) as npz:
        np.savez_compressed(folder / "fashion_mnist.npz", x_train=npz["x_train"][:1500], y_train=npz["y_train"][:1500],
                            x_test=npz["x_test"][:300], y_test=npz["y_test"][:300])
    np.savez_compressed(folder / "mnist.npz", **mnist_slice(300, 100))
    return folder


@pytest.fixture(scope="module")
def fashion_runs(fashion_dir, tmp_path_factory) -> Path:
    from lib.execution.pipeline import train_and_save
    from lib.training import presets

    folder = tmp_path_factory.mktemp("fashion_runs")
    train_and_save(presets.get_preset("mlp-128").config(limit=1500, epochs=1), data_dir=fashion_dir, runs_dir=folder)
    return folder


@pytest.fixture
def fashion_app(fashion_dir, fashion_runs, tmp_path, monkeypatch) -> Path:
    import shutil

    folder = tmp_path / "runs"
    shutil.copytree(fashion_runs, folder)
    monkeypatch.setenv("MNIST_STUDIO_DATA_DIR", str(fashion_dir))
    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(folder))
    monkeypatch.setattr(paths, "BUNDLED_MODELS_DIR", tmp_path / "bundled")
    st.cache_data.clear()
    return folder


def test_data_page_shows_fashion_samples_with_their_class_names(fashion_app):
    """As a learner I pick Fashion-MNIST and see its clothes by name, its counts and pixel statistics."""
    at = open_page("pages/data.py")
    at.session_state["dataset"] = "fashion_mnist"  # the sidebar's dataset picker
    at.run()
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Training images"] == "1,500" and metrics["Classes"] == "10"
    charts = " ".join(chart.proto.spec for chart in at.get("plotly_chart"))
    for name in ("Ankle boot", "Trouser", "Sneaker"):  # (Plotly's JSON writes T-shirt/top's slash escaped)
        assert name in charts, name


def test_predictions_name_the_clothes(fashion_app):
    """As a learner I see each Fashion test image with its true and predicted class by name."""
    at = open_page("pages/predictions.py")
    captions = grid_captions(at)
    assert len(captions) == 10
    named = "|".join(re.escape(name) for name in FASHION_NAMES)
    for text in captions:
        assert re.search(rf"predicted ({named}) \(\d+\.\d%\)\n[✓✗] true ({named})$", text), text


def test_draw_with_a_clothing_model_offers_upload_and_says_why(fashion_app):
    """As a learner with only a Fashion model, Draw asks for a photo and explains why a drawing won't do."""
    at = open_page("pages/draw.py")
    run = runs.list_runs(include_bundled=False)[0][0]
    assert at.multiselect(key="draw_models").value == [run.run_id]
    assert any("photos of objects" in info.value for info in at.info)
    assert at.get("segmented_control")[0].value == "Upload an image instead"
    assert at.get("file_uploader"), "the upload control is offered"
