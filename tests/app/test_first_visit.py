"""A first visit, page by page (issue 26): the live job first on Train, every chosen run on Compare,
pickers that say what each run is, and a deep link followed through the router."""

import json
import shutil

from streamlit.testing.v1 import AppTest

from lib.execution.pipeline import train_and_save
from lib.store import profile, runs, workspaces
from lib.training.config import TrainConfig
from lib.ui import common as ui, train as ui_train, workspace as ui_workspace
from tests.app.conftest import APP_FILE, APP_TIMEOUT, GOOD_RUN, WEAK_RUN, open_page

ONE_CLICK_RUN = "one click, no validation"


def subheaders(at: AppTest) -> list[str]:
    return [header.value for header in at.subheader]


def form_expander(at: AppTest):
    return next(expander for expander in at.expander if expander.label == ui_train.FORM_WHILE_TRAINING)


def chart(at: AppTest, key: str) -> dict:
    element = next((element for element in at.get("plotly_chart") if element.key == key), None)
    assert element is not None, f"no chart {key!r}: {[element.key for element in at.get('plotly_chart')]}"
    return json.loads(element.proto.spec)


def test_the_live_job_comes_first_and_the_form_waits_collapsed(app_runs):
    """As a visitor who just clicked Train, the page shows my training on top and folds the long form
    away; once it has ended, its results stay on top and the form opens again for the next run."""
    at = open_page("pages/train.py")
    assert subheaders(at)[:2] == ["1 · Architecture", "2 · Settings"]  # nothing trained yet: the form
    at.selectbox(key="train_arch").set_value("mlp-128").run()
    at.number_input(key="train_epochs").set_value(200)
    at.selectbox(key="train_batch_size").set_value(16)
    at.run()
    at.button(key="train_start").click().run()
    job_id = at.session_state[ui.LAST_JOB]
    assert ui.job_manager().snapshot(job_id).active
    headers = subheaders(at)
    assert headers.index("3 · Training") < headers.index("1 · Architecture"), headers
    assert not form_expander(at).proto.expanded  # collapsed while it trains
    assert at.button(key="train_start")  # the form is still there, one click away

    at.button(key=f"stop_{job_id}").click().run()
    ui.job_manager().wait(job_id, timeout=120)
    at.run()
    headers = subheaders(at)
    assert headers.index("3 · Training") < headers.index("4 · Results") < headers.index("1 · Architecture"), headers
    assert form_expander(at).proto.expanded


def test_compare_shows_a_run_trained_without_validation(app_runs, tiny_data_dir):
    """As a visitor whose first run held out no validation split (Home's one click), Compare still
    draws my run, on training curves, and a bar of test accuracy for every chosen run."""
    config = TrainConfig(dataset="mnist", arch="softmax", epochs=1, limit=200, validation_split=0.0,
                         name=ONE_CLICK_RUN)
    train_and_save(config, data_dir=tiny_data_dir, runs_dir=app_runs)
    at = open_page("pages/compare.py")
    at.multiselect(key="compare_runs").set_value([run.run_id for run in runs.list_runs(app_runs)[0]]).run()
    for key in ("compare_train_accuracy", "compare_train_loss"):
        names = sorted(trace["name"] for trace in chart(at, key)["data"])
        assert names == sorted([ONE_CLICK_RUN, GOOD_RUN, WEAK_RUN]), (key, names)
    bars = chart(at, "compare_test_accuracy")["data"][0]
    assert sorted(bars["y"]) == sorted([ONE_CLICK_RUN, GOOD_RUN, WEAK_RUN])
    assert any(ONE_CLICK_RUN in caption.value and "no validation split" in caption.value for caption in at.caption)
    assert not any(element.key and element.key.startswith("compare_val") for element in at.get("plotly_chart"))


def test_compare_keeps_validation_curves_when_every_run_has_them(app_runs):
    """As a visitor whose runs all held out validation images, I compare them on validation curves."""
    at = open_page("pages/compare.py")
    assert sorted(trace["name"] for trace in chart(at, "compare_val_accuracy")["data"]) == sorted([GOOD_RUN, WEAK_RUN])
    assert sorted(chart(at, "compare_test_accuracy")["data"][0]["y"]) == sorted([GOOD_RUN, WEAK_RUN])


def test_pickers_say_whose_each_run_is(app_runs, bundled_run, monkeypatch, tmp_path):
    """As a visitor of the public app with a share link, my pickers tell my runs (no mark) from the
    run shared with me, the operator's gallery and the bundled model."""
    monkeypatch.setenv(profile.PROFILE_ENV, "public")
    ui.job_manager.clear()
    gallery = tmp_path / "gallery"
    mine = workspaces.open_workspace(workspaces.new_key(), root=app_runs)
    sharer = workspaces.open_workspace(workspaces.new_key(), root=app_runs)
    good, weak = sorted(runs.list_runs(app_runs, include_bundled=False)[0], key=lambda run: run.display_name)
    shutil.move(good.path, mine.folder / good.run_id)
    shutil.copytree(weak.path, gallery / runs.new_run_id())  # ids are unique per folder only
    shutil.move(weak.path, sharer.folder / weak.run_id)
    sharer.rename_run(weak.run_id, "from a friend")
    monkeypatch.setenv("MNIST_STUDIO_GALLERY_DIR", str(gallery))
    token = sharer.share(weak.run_id)

    at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
    at.query_params[ui_workspace.WORKSPACE_PARAM] = mine.key
    at.query_params[ui_workspace.SHARE_PARAM] = token
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    options = at.selectbox(key="compare_manage_run").options
    marks = {option.split(" · ")[0] + " " + option.rpartition("%")[2].strip() for option in options}
    assert marks == {f"{GOOD_RUN} ", "from a friend (shared with you, read-only)", f"{WEAK_RUN} (gallery, read-only)",
                     f"{bundled_run.display_name} (bundled, read-only)"}, options  # mine: no mark
    ui.job_manager.clear()
