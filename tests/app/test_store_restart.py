"""The restart story in AppTest: a visitor of a public server whose run store is a real S3 server
(moto, 127.0.0.1) trains; the server restarts with its local folders gone; the visitor's link
brings back the run, its predictions and its share link."""

import re
import shutil
from urllib.parse import parse_qs, urlparse

import streamlit as st

from lib.data import paths
from lib.execution import jobs
from lib.store import backend, profile
from lib.ui import common as ui, predictions as ui_predictions, train as ui_train, workspace as ui_workspace
from tests.app.conftest import run_names
from tests.app.test_predictions_page import grid_captions
from tests.app.test_public_profile import everything_shown, visit

RUN_NAME = "kept across restarts"


def new_server() -> None:
    """What a server process starts without: jobs, caches, the store's connection and listing times."""
    ui.job_manager.clear()
    ui_predictions._prewarm_thread.clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    backend._STORES.clear()


def test_a_visitors_run_its_predictions_and_share_link_survive_a_restart(s3_store, data_env, runs_dir, tmp_path,
                                                                          monkeypatch):
    """As a learner on the class's shared app, I train a run and make a share link; the app restarts
    overnight with an empty disk; my workspace link shows my run and its predictions again, and the
    share link I sent still opens it (and is the same link when I ask again)."""
    monkeypatch.setenv(profile.PROFILE_ENV, "public")
    monkeypatch.setattr(paths, "BUNDLED_MODELS_DIR", tmp_path / "bundled")  # only the visitor's run to see
    new_server()
    key = ui_workspace.workspaces.new_key()

    at = visit("pages/train.py", key)
    at.selectbox(key=ui_train.K["arch"]).set_value("softmax").run()
    at.number_input(key=ui_train.K["epochs"]).set_value(1)
    at.text_input(key=ui_train.K["name"]).set_value(RUN_NAME)
    at.run()
    at.button(key="train_start").click().run()
    job = ui.job_manager().wait(at.session_state[ui.LAST_JOB], timeout=300)
    assert job.state == jobs.FINISHED, job.error
    at.run()
    at.button(key=f"report_share_{job.run_id}").click().run()
    token = parse_qs(urlparse(next(code.value for code in at.code if "share=" in code.value)).query)["share"][0]
    at.switch_page("pages/predictions.py").run()
    before = grid_captions(at)
    assert before and not at.exception

    new_server()  # the server restarts with its local folders gone
    shutil.rmtree(runs_dir)
    monkeypatch.setenv("MNIST_STUDIO_RUNS_DIR", str(tmp_path / "runs-after-restart"))

    at = open_with(ws=key)  # the workspace link, the next morning
    # (AppTest drops the sidebar after a page switch: read on the first page)
    assert any("kept in the run store" in caption.value for caption in at.sidebar.caption)
    at.switch_page("pages/compare.py").run()
    assert run_names(at) == [RUN_NAME] and not at.error
    at.switch_page("pages/predictions.py").run()
    assert at.selectbox(key="pred_run").value == job.run_id and not at.error
    assert grid_captions(at) == before  # the same images, the same answers

    stranger = visit("pages/compare.py", ui_workspace.workspaces.new_key())
    assert RUN_NAME not in everything_shown(stranger)  # only through the link
    friend = open_with(ws=ui_workspace.workspaces.new_key(), share=token)
    friend.switch_page("pages/compare.py").run()
    assert run_names(friend) == [RUN_NAME]
    assert ui_workspace.workspaces.open_workspace(key).share(job.run_id) == token
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)


def open_with(**params):
    """The app opened at a link with these query parameters (ws=..., share=...), on its first page."""
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import APP_FILE, APP_TIMEOUT

    at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at
