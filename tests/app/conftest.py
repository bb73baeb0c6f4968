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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto's server mode on 127.0.0.1) for the session: (endpoint, request log)."""
    from tests.moto_s3 import start_moto

    log = tmp_path_factory.mktemp("moto") / "requests.log"
    process, endpoint = start_moto(log=log)
    yield endpoint, log
    process.terminate()
    process.wait(10)


@pytest.fixture
def s3_store(s3_server, monkeypatch) -> str:
    """A fresh bucket on the S3 server as this test's MNIST_STUDIO_STORE; returns the bucket's name."""
    import uuid

    import boto3

    from lib.store import backend

    endpoint, _ = s3_server
    bucket = f"runs-{uuid.uuid4().hex[:12]}"
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", backend.ENDPOINT_ENV: endpoint,
                        backend.STORE_ENV: f"s3://{bucket}/studio"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    backend._STORES.clear()
    yield bucket
    backend._STORES.clear()
