"""App-test fixtures: real runs trained once per session, copied into each test's runs dir.

Training takes seconds, so two tiny runs are made once; every test gets its own
copy (tests rename and delete runs) and a bundled-models folder of its own, so
nothing depends on the repository's models/ or runs/.
"""

import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.data import paths
from lib.store import runs

APP_FILE = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
APP_TIMEOUT = 60
# A learner that is wrong often enough that the misclassified filter has something to show.
WEAK_RUN = "weak softmax"
GOOD_RUN = "good softmax"


@pytest.fixture(scope="session")
def trained_runs(tiny_data_dir, tmp_path_factory) -> Path:
    """A runs folder holding two real 1-epoch runs on the tiny MNIST: a good one, then a weak one (newest)."""
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    folder = tmp_path_factory.mktemp("trained_runs")
    good = TrainConfig(dataset="mnist", arch="softmax", epochs=1, limit=200, name=GOOD_RUN)
    weak = TrainConfig(dataset="mnist", arch="softmax", epochs=1, limit=200, name=WEAK_RUN,
                       optimizer="sgd", learning_rate=1e-5)
    train_and_save(good, data_dir=tiny_data_dir, runs_dir=folder)
    train_and_save(weak, data_dir=tiny_data_dir, runs_dir=folder)
    return folder


@pytest.fixture
def app_runs(trained_runs, runs_dir, data_env, tmp_path, monkeypatch) -> Path:
    """This test's own copy of the trained runs, with no bundled model unless a test adds one."""
    shutil.copytree(trained_runs, runs_dir)
    monkeypatch.setattr(paths, "BUNDLED_MODELS_DIR", tmp_path / "bundled")
    st.cache_data.clear()  # run lists and dataset listings are keyed by folders that differ per test
    return runs_dir


@pytest.fixture
def bundled_run(app_runs, tmp_path) -> runs.RunInfo:
    """A copy of a trained run installed as the read-only bundled default model."""
    source = runs.list_runs(app_runs, include_bundled=False)[0][0]
    shutil.copytree(source.path, paths.BUNDLED_MODELS_DIR / runs.BUNDLED_ID)
    return runs.bundled_run()


def open_page(page: str) -> AppTest:
    """The app as a user opens it: the entry file first, then the page."""
    at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def run_names(at: AppTest, table_key: str | None = None) -> list[str]:
    """The run names the page's runs table shows (read-only runs without their 🔒).

    AppTest does not report an st.dataframe's key, so `table_key` only documents
    which table the caller means; the table is found by its "name" column.
    """
    table = next(frame.value for frame in at.dataframe if "name" in frame.value.columns)
    return [name.replace(" 🔒", "") for name in table["name"]]
