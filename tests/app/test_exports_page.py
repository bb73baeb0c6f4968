"""Use your model elsewhere: SavedModel, TFLite and ONNX downloads on the run report and on Compare,
made on request outside the page run, each shown with its size and its check against Keras."""

import numpy as np

from lib.execution import exporting
from lib.models import exports
from lib.store import runs
from lib.ui import common as ui, exports as ui_exports
from tests.app.conftest import GOOD_RUN, open_page

TITLES = {"savedmodel": "TensorFlow SavedModel", "tflite": "TFLite (float32)", "tflite-quant": "TFLite (quantized)",
          "onnx": "ONNX"}


def make_and_wait(at, key: str, run: runs.RunInfo):
    """Click "Make the export files", wait for the worker's child process, and show the page again."""
    at.button(key=f"{key}_exports_make").click().run()
    assert not at.exception, at.exception
    task = ui_exports.export_manager().wait(exports.export_dir(run.path), timeout=300)
    assert task.state == exporting.DONE, task.error
    at.run()
    assert not at.exception, at.exception
    return at


def downloads(at) -> dict[str, str]:
    return {button.proto.label: button.key for button in at.get("download_button")}


def test_compare_offers_each_export_with_its_size_and_its_check_against_keras(app_runs):
    """As a learner I pick my run on Compare, ask for its exports and download SavedModel, TFLite (float32 and
    quantized) and ONNX files, each with its size, how it compared with Keras on 100 test images and a snippet."""
    at = open_page("pages/compare.py")
    run = next(run for run in runs.list_runs(app_runs)[0] if run.display_name == GOOD_RUN)
    at.selectbox(key="compare_manage_run").set_value(run.run_id).run()
    assert not downloads(at).keys() & {f"compare_dl_{name}" for name in exports.FORMATS}
    make_and_wait(at, "compare", run)

    offered = downloads(at)
    for name, check in exports.read_checks(exports.export_dir(run.path), run.model_path).items():
        assert check.ok, check.reason
        label = f"{TITLES[name]} · {exports.human_bytes(check.bytes)}"
        assert offered[label] == f"compare_dl_{name}"
    labels = [button.proto.label for button in at.get("download_button")]
    assert labels.count("Download the snippet") == 4
    assert "Run bundle" in offered and "Model (.keras)" not in offered  # the bundle stays; .keras is on the report
    assert offered["Browser page (.html)"] == "compare_dl_onnx_page"
    table = next(frame.value for frame in at.dataframe if "format" in frame.value.columns)
    assert list(table["format"]) == list(TITLES.values())
    assert set(table["same class as Keras"][:2]) == {"100/100"} and set(table["offered"]) == {"yes"}
    assert table["same class as Keras"][3] == "100/100"  # ONNX; the quantized file may differ on near-ties only
    assert all(float(diff) <= exports.LOSSY_TOLERANCE for diff in table["largest probability difference"])
    code = [block.value for block in at.code]
    assert any("import onnxruntime" in text and f"{run.run_id}-model.onnx" in text for text in code)
    assert "100 test images of MNIST" in " ".join(caption.value for caption in at.caption)


def test_an_export_that_fails_its_check_is_not_offered_and_says_why(app_runs):
    """As a learner whose run's weights became NaN, I get no export files, and each format tells me why."""
    run = next(run for run in runs.list_runs(app_runs)[0] if run.display_name == GOOD_RUN)
    model = runs.load_model(run)
    model.set_weights([np.full_like(weights, np.nan) for weights in model.get_weights()])
    model.save(run.model_path)
    at = open_page("pages/compare.py")
    at.selectbox(key="compare_manage_run").set_value(run.run_id).run()
    make_and_wait(at, "compare", run)
    assert not downloads(at).keys() & {f"compare_dl_{name}" for name in exports.FORMATS}
    errors = [error.value for error in at.error]
    for title in TITLES.values():
        assert any(f"{title} is not offered" in text and "answers NaN" in text for text in errors)
    table = next(frame.value for frame in at.dataframe if "format" in frame.value.columns)
    assert set(table["offered"]) == {"no"}


def test_a_run_report_offers_the_exports_beside_the_keras_file(app_runs):
    """As a learner who just trained a model, I make its exports from the run's report and download them."""
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("softmax").run()
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_limit").set_value(300)
    at.run()
    at.button(key="train_start").click().run()
    job = ui.job_manager().wait(at.session_state[ui.LAST_JOB], timeout=300)
    assert job.state == "finished", job.error
    at.run()
    assert "Model (.keras)" in downloads(at)
    assert any(markdown.value == "##### Use your model elsewhere" for markdown in at.markdown)
    make_and_wait(at, "report", runs.get_run(job.run_id))
    assert {f"report_dl_{name}" for name in exports.FORMATS} <= set(downloads(at).values())


def test_on_a_shared_server_a_visitors_exports_of_the_bundled_model_stay_in_their_workspace(
        bundled_run, app_runs, monkeypatch):
    """As visitor A on the public app, my exports of the read-only bundled model go into my own workspace
    (counted in my quota), never into the shared model's folder; visitor B sees none of them."""
    from streamlit.testing.v1 import AppTest

    from lib.store import profile, workspaces
    from lib.ui import workspace as ui_workspace
    from tests.app.conftest import APP_FILE, APP_TIMEOUT

    monkeypatch.setenv(profile.PROFILE_ENV, "public")
    ui.job_manager.clear()
    keys = {"a": workspaces.new_key(), "b": workspaces.new_key()}

    def visit(visitor):
        at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
        at.query_params[ui_workspace.WORKSPACE_PARAM] = keys[visitor]
        at.run()
        at.switch_page("pages/compare.py").run()
        at.selectbox(key="compare_manage_run").set_value(runs.BUNDLED_ID).run()
        assert not at.exception, at.exception
        return at

    a_workspace = workspaces.open_workspace(keys["a"], root=app_runs)
    at = visit("a")
    at.button(key="compare_exports_make").click().run()
    folder = exporting.cache_dir(bundled_run, a_workspace)
    assert ui_exports.export_manager().wait(folder, timeout=300).state == exporting.DONE
    at.run()
    assert {f"compare_dl_{name}" for name in exports.FORMATS} <= set(downloads(at).values())
    assert folder.parent == a_workspace.folder / exporting.READ_ONLY_EXPORTS
    assert (folder / "model.onnx").is_file()
    assert not (bundled_run.path / exports.EXPORTS_SUBDIR).exists()

    at = visit("b")
    assert not set(downloads(at).values()) & {f"compare_dl_{name}" for name in exports.FORMATS}
    assert at.button(key="compare_exports_make")
    b_workspace = workspaces.open_workspace(keys["b"], root=app_runs)
    assert not (b_workspace.folder / exporting.READ_ONLY_EXPORTS).exists()
    ui.job_manager.clear()
