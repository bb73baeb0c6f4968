"""The public profile through the pages: each visitor sees and changes only their own runs.

Visitor A's workspace holds two real trained runs; visitor B opens the same pages with
another workspace key. Nothing of A's may show, open, change or be reached by run id,
limits refuse with their message before anything starts, and what B imports or trains
lands in B's workspace only.
"""

import shutil
import time

import pytest
from streamlit.testing.v1 import AppTest

from lib.data import catalog
from lib.execution import jobs
from lib.models import inference
from lib.store import bundles, profile, runs, workspaces
from lib.ui import (
    common as ui,
    data as ui_data,
    predictions as ui_predictions,
    train as ui_train,
    workspace as ui_workspace,
)
from tests.app.conftest import APP_FILE, APP_TIMEOUT, GOOD_RUN, WEAK_RUN

PAGES = ("pages/home.py", "pages/compare.py", "pages/predictions.py", "pages/draw.py", "pages/inside.py",
         "pages/train.py")


@pytest.fixture
def public_app(app_runs, monkeypatch):
    """Public profile; A's workspace holds the two trained runs. Returns (runs root, A's workspace)."""
    monkeypatch.setenv(profile.PROFILE_ENV, "public")
    ui.job_manager.clear()  # the next call builds the public manager: child processes and caps
    ui_predictions._prewarm_thread.clear()  # once per server: each test is a new server
    a = workspaces.open_workspace(workspaces.new_key(), root=app_runs)
    for run in runs.list_runs(app_runs, include_bundled=False)[0]:
        shutil.move(run.path, a.folder / run.run_id)
    yield app_runs, a
    ui.job_manager.clear()


def visit(page: str, key: str | None, **state) -> AppTest:
    """One visitor opening the app with their workspace link, then `page`."""
    at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
    if key:
        at.query_params[ui_workspace.WORKSPACE_PARAM] = key
    at.run()
    for name, value in state.items():
        at.session_state[name] = value
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def everything_shown(at: AppTest) -> str:
    """The text of every table, picker option and message on the page."""
    parts = [str(frame.value.to_dict()) for frame in at.dataframe]
    for kind in ("selectbox", "multiselect"):
        for widget in at.get(kind):
            parts += [str(option) for option in widget.options]
    parts += [str(element.value) for element in [*at.markdown, *at.caption, *at.info, *at.success]]
    return " ".join(parts)


def texts(elements) -> str:
    return " ".join(str(element.value) for element in elements)


@pytest.mark.parametrize("page", PAGES)
def test_visitor_b_sees_none_of_visitor_a_runs(public_app, page):
    """As visitor B, no page lists, picks or mentions visitor A's runs; A sees them on the same page."""
    _, a = public_app
    seen_by_b = everything_shown(visit(page, workspaces.new_key()))
    assert GOOD_RUN not in seen_by_b and WEAK_RUN not in seen_by_b
    if page not in ("pages/train.py", "pages/draw.py"):  # Train lists no runs; Draw asks the newest
        assert GOOD_RUN in everything_shown(visit(page, a.key))


@pytest.mark.parametrize("page", ["pages/predictions.py", "pages/inside.py", "pages/draw.py", "pages/compare.py"])
def test_visitor_b_cannot_open_a_run_of_a_by_its_id(public_app, page):
    """As visitor B, putting A's run id into my session opens nothing of A's."""
    _, a = public_app
    a_run = a.list_runs()[0][0]
    at = visit(page, workspaces.new_key(), **{ui.SELECTED_RUN: a_run.run_id, ui.DRAW_FOCUS: a_run.run_id,
                                               "compare_runs": [a_run.run_id], "compare_manage_run": a_run.run_id})
    shown = everything_shown(at)
    assert a_run.display_name not in shown and a_run.run_id not in shown


def test_visitor_b_cannot_rename_or_delete_a_run_of_a(public_app):
    """As visitor B on Compare, A's run is neither in my picker nor changeable through my workspace."""
    _, a = public_app
    a_run = a.list_runs()[0][0]
    b_key = workspaces.new_key()
    at = visit("pages/compare.py", b_key)
    assert all(a_run.run_id not in box.options for box in at.selectbox)
    b = workspaces.open_workspace(b_key)
    with pytest.raises(runs.RunNotFound, match="in your workspace"):
        b.delete_run(a_run.run_id)
    assert a_run.path.is_dir() and a.get_run(a_run.run_id).display_name == a_run.display_name


def test_a_workspace_link_brings_the_visitor_back_and_survives_page_changes(public_app):
    """As a visitor, the key stays in the URL on every page, so a reload or bookmark finds my runs."""
    _, a = public_app
    at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
    at.query_params[ui_workspace.WORKSPACE_PARAM] = a.key
    at.run()
    # (AppTest drops the sidebar from its tree after a page switch, so it is read on the first page.)
    assert any(f"ws={a.key}" in code.value for code in at.sidebar.code)
    assert any("Storage here is temporary" in caption.value for caption in at.sidebar.caption)
    for page in ("pages/compare.py", "pages/predictions.py"):
        at.switch_page(page).run()
        assert at.query_params[ui_workspace.WORKSPACE_PARAM] in (a.key, [a.key])
    assert GOOD_RUN in everything_shown(at)


def test_a_share_link_shows_one_run_read_only_to_another_visitor(public_app):
    """As visitor B with A's share link, I see that one run (read-only), and none of A's others."""
    _, a = public_app
    shared, other = a.list_runs()[0][:2]
    token = a.share(shared.run_id)
    at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
    at.query_params[ui_workspace.WORKSPACE_PARAM] = workspaces.new_key()
    at.query_params[ui_workspace.SHARE_PARAM] = token
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    shown = everything_shown(at)
    assert shared.display_name in shown and other.display_name not in shown
    at.selectbox(key="compare_manage_run").set_value(shared.run_id).run()
    assert "read-only" in texts(at.caption)
    assert at.button(key="compare_delete").disabled


def test_a_run_over_the_training_budget_is_refused_before_it_starts(public_app, monkeypatch):
    """As a visitor asking for more training than the shared app allows, I am told what to change."""
    _, a = public_app
    monkeypatch.setenv(profile.ENV["max_epoch_images"], "1000")
    at = visit("pages/train.py", a.key)
    at.number_input(key=ui_train.K["epochs"]).set_value(50).run()
    assert "This run is over this shared app's limits" in texts(at.error)
    assert "this shared app allows 1,000 per run" in texts(at.error)
    assert at.button(key="train_start").disabled
    assert "Limits on this shared app" in [expander.label for expander in at.expander]


def test_a_second_training_is_refused_while_the_first_runs_and_the_run_lands_in_my_workspace(public_app):
    """As a visitor, a second Train click while my first run is queued or running says why it did not start;
    the first trains (in its own process) and its run is mine only."""
    root, a = public_app
    b_key = workspaces.new_key()
    at = visit("pages/train.py", b_key)
    at.selectbox(key=ui_train.K["arch"]).set_value("softmax").run()
    at.text_input(key=ui_train.K["name"]).set_value("b's softmax")
    at.run()
    at.button(key="train_start").click().run()
    first = at.session_state[ui.LAST_JOB]
    at.button(key="train_start").click().run()
    assert "You already have a training queued or running" in texts(at.error)
    assert at.session_state[ui.LAST_JOB] == first
    job = ui.job_manager().wait(first, timeout=300)
    assert job.state == jobs.FINISHED, job.error
    b = workspaces.open_workspace(b_key, root=root)
    assert [run.display_name for run in b.list_runs()[0] if not run.read_only] == ["b's softmax"]
    assert "b's softmax" not in [run.display_name for run in a.list_runs()[0]]
    assert not runs.list_runs(root, include_bundled=False)[0]  # nothing outside the workspaces


def test_an_imported_bundle_lands_in_the_importers_workspace_only(public_app):
    """As visitor B importing A's downloaded run bundle, the run becomes mine; A's workspace is unchanged."""
    _, a = public_app
    source = a.list_runs()[0][0]
    b_key = workspaces.new_key()
    at = visit("pages/compare.py", b_key)
    at.file_uploader(key="compare_" + ui_data.IMPORT_FILE).set_value(
        ("run.studio.zip", bundles.export_bundle(source), "application/zip")).run()
    at.button(key="compare_import_go").click().run()
    job = ui.job_manager().wait(at.session_state["compare_" + ui_data.IMPORT_JOB], timeout=300)  # a child imports
    assert job.state == jobs.FINISHED, job.error
    at.run()
    assert "Imported as run" in texts(at.success)
    b = workspaces.open_workspace(b_key)
    assert [run.display_name for run in b.list_runs()[0] if not run.read_only] == [source.display_name]
    assert len(a.list_runs()[0]) == 2


@pytest.fixture
def test_set_work(monkeypatch) -> dict:
    """How often the test set is read and predicted from now on (the calls still run)."""
    calls = {"load_dataset": 0, "predict_proba": 0}

    def counted(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counted(catalog, "load_dataset")
    counted(inference, "predict_proba")
    return calls


def test_visitors_share_one_prediction_of_the_test_set(bundled_run, public_app, test_set_work):
    """As two visitors opening Predictions on the bundled model, we see the same scores, and the
    shared server read the test set and predicted it once, not once per visitor (with eight
    visitors at once, per-visitor copies kept the page from rendering for minutes)."""
    shown = [[metric.value for metric in visit("pages/predictions.py", workspaces.new_key()).metric]
             for _ in range(2)]
    assert shown[0] and shown[0] == shown[1]
    assert test_set_work == {"load_dataset": 1, "predict_proba": 1}


def test_the_server_predicts_the_bundled_model_before_anyone_opens_predictions(bundled_run, public_app, test_set_work,
                                                                               monkeypatch):
    """The first visitor's first page starts the shared work in the background; a visitor opening
    Predictions afterwards finds the test set and its predictions ready: nothing is read or
    predicted for them. On your own computer nothing is started."""
    visit("pages/home.py", workspaces.new_key())
    deadline = time.monotonic() + APP_TIMEOUT
    while test_set_work["predict_proba"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert test_set_work == {"load_dataset": 1, "predict_proba": 1}  # done by the server, nobody asked yet

    at = visit("pages/predictions.py", workspaces.new_key())
    assert [metric.label for metric in at.metric][0] == "Test accuracy"
    assert test_set_work == {"load_dataset": 1, "predict_proba": 1}  # nothing more for the visitor

    monkeypatch.setenv(profile.PROFILE_ENV, "local")
    assert ui_predictions.prewarm_shared() is None


def test_local_profile_keeps_one_shared_workspace(app_runs, monkeypatch):
    """On your own computer nothing changes: every session sees the runs dir, no link, no limits."""
    monkeypatch.delenv(profile.PROFILE_ENV, raising=False)
    at = visit("pages/compare.py", None)
    assert GOOD_RUN in everything_shown(at)
    assert ui_workspace.WORKSPACE_PARAM not in at.query_params and not at.sidebar.code


def test_the_server_deletes_idle_workspaces_but_not_a_recently_used_one(public_app):
    """As the operator, workspaces nobody opened for longer than the limit are deleted when the app runs;
    a workspace used today stays."""
    import time

    root, a = public_app
    idle = workspaces.open_workspace(workspaces.new_key(), root=root)
    idle.touch(now=time.time() - 8 * 86_400)  # the default limit is 7 days
    ui.sweep_idle_workspaces.clear()  # it runs at most once an hour per server
    visit("pages/home.py", a.key)
    assert not idle.folder.exists()
    assert a.folder.is_dir() and len(a.list_runs()[0]) == 2
