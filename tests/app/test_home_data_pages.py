"""Home and Data pages, as a visitor first sees them."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from tests.app.conftest import APP_FILE, open_page


def test_home_renders_without_importing_tensorflow(app_runs):
    """As a visitor, I get the home page fast: it never loads TensorFlow."""
    script = textwrap.dedent(
        f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP_FILE!r}, default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        assert at.title[0].value == "MNIST Studio"
        print("TF_LOADED" if "tensorflow" in sys.modules or "keras" in sys.modules else "TF_FREE")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ}, cwd=os.path.dirname(APP_FILE))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TF_FREE" in done.stdout


def test_home_shows_quick_paths_and_recent_runs(app_runs):
    """As a visitor, I see what the app does, one-click paths, and the runs trained so far."""
    at = open_page("pages/home.py")
    assert any(button.label == "Train a model now" for button in at.button)
    table = at.dataframe[0].value
    assert list(table["name"]) == ["weak softmax", "good softmax"]  # newest first
    # Same units as Compare: test accuracy in percent, not a fraction.
    from lib.store import runs

    found, _ = runs.list_runs(include_bundled=False)
    expected = {run.display_name: run.meta["test_accuracy"] * 100 for run in found}
    assert dict(zip(table["name"], table["test accuracy"])) == expected


def test_one_click_training_from_home_submits_the_fastest_recipe_with_enough_steps(app_runs):
    """As a beginner, I press one button and a training starts with the fastest recipe, on every image;
    on a small dataset it gets enough epochs for the recipe to learn.

    (Its outcome on real MNIST, 99% after one epoch, is measured by `bench/run.py --time-to-accuracy`.
    The 600-image test set gives one epoch in batches of 128 only 5 steps, so the click asks for 80:
    the recipe's 400 steps.)
    """
    from lib.training.config import QUICK_MIN_STEPS, TrainConfig
    from lib.ui import common as ui

    at = open_page("pages/home.py")
    at.button(key="home_quick_train").click().run()
    job_id = at.session_state[ui.LAST_JOB]
    ui.job_manager().stop(job_id)  # what it reaches is measured by the bench (README: small datasets)
    job = ui.job_manager().wait(job_id, timeout=300)
    recipe = TrainConfig()
    assert job.config == TrainConfig(dataset="mnist", validation_split=0.0, epochs=QUICK_MIN_STEPS // 5)
    assert (job.config.arch, job.config.batch_size, job.config.lr_schedule) == (
        "cnn-fast", recipe.batch_size, "one_cycle")
    assert job.state in ("stopped", "cancelled"), job.error


def test_data_page_shows_samples_balance_and_pixel_stats(app_runs):
    """As a learner, I see sample images of every class, how many there are, and the pixel range."""
    at = open_page("pages/data.py")
    keys = {chart.key for chart in at.get("plotly_chart")}
    assert {"data_samples", "data_balance", "data_raw_pixels", "data_scaled_pixels"} <= keys
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Training images"] == "600" and metrics["Classes"] == "10"
    assert any("uint8" in markdown.value for markdown in at.markdown)


def test_data_page_refuses_a_bad_upload_and_accepts_a_good_one(app_runs, tmp_path):
    """As a practitioner, I add my own .npz; a broken one is refused with the reason."""
    from tests.conftest import synthetic_arrays

    at = open_page("pages/data.py")
    at.text_input(key="data_upload_name").set_value("letters")
    at.file_uploader(key="data_upload_file").set_value(("letters.npz", b"PK not really", "application/octet-stream"))
    at.run()
    at.button(key="data_upload_add").click().run()
    assert at.error and "cannot be used as a dataset" in at.error[0].value
    good = tmp_path / "good.npz"
    np.savez(good, **synthetic_arrays(40, 20, num_classes=4))
    at.file_uploader(key="data_upload_file").set_value(("good.npz", good.read_bytes(), "application/octet-stream"))
    at.run()
    at.button(key="data_upload_add").click().run()
    assert not at.error
    assert any("Added letters: 4 classes" in message.value for message in at.success)
    from lib.data import catalog

    assert catalog.available_datasets()["letters"].num_classes == 4


def test_missing_dataset_shows_what_to_do(app_runs, monkeypatch, tmp_path):
    """As a user offline without Fashion-MNIST, I am told which file to put where."""
    from lib.data import catalog

    empty = tmp_path / "empty_data"
    empty.mkdir()
    monkeypatch.setenv("MNIST_STUDIO_DATA_DIR", str(empty))
    monkeypatch.setattr(catalog, "_keras_load", lambda name: (_ for _ in ()).throw(OSError("offline")))
    at = open_page("pages/data.py")
    # AppTest drops sidebar elements from its tree after the first run under st.navigation,
    # so pick the dataset the way the sidebar stores it.
    at.session_state["dataset"] = "fashion_mnist"
    at.run()
    assert at.error and "fashion_mnist.npz" in at.error[0].value and str(empty) in at.error[0].value
    assert not at.exception


def test_home_marks_an_imported_runs_claimed_scores(app_runs):
    """As a visitor who imported a bundle claiming 99.99%, I see on Home that its score is claimed, not
    verified, while my trained runs' scores are measured."""
    from tests.app.test_compare_page import FORGED_RUN, forged_bundle_import, good_run

    forged_bundle_import(good_run(app_runs), app_runs)
    at = open_page("pages/home.py")
    table = at.dataframe[0].value.set_index("name")
    assert table.loc[FORGED_RUN, "scores"] == "claimed, not verified"
    assert list(table.loc[["good softmax", "weak softmax"], "scores"]) == ["measured", "measured"]
    assert "best" not in table.columns  # Home never ranks runs across datasets or claims


def test_data_page_lists_a_present_but_unusable_file_with_its_reason(app_runs, data_env, monkeypatch, tmp_path):
    """As someone who put letters.npz in the data folder, I am told why it is not in the dataset list
    (its labels go past its class names) instead of it silently missing."""
    import shutil

    from tests.conftest import synthetic_arrays

    data_dir = tmp_path / "my_data"
    data_dir.mkdir()
    shutil.copy(data_env / "mnist.npz", data_dir / "mnist.npz")
    np.savez(data_dir / "letters.npz", **synthetic_arrays(40, 20, num_classes=4), class_names=np.array(["a", "b"]))
    monkeypatch.setenv("MNIST_STUDIO_DATA_DIR", str(data_dir))
    at = open_page("pages/data.py")
    warnings = [warning.value for warning in at.warning]
    assert any(
        f"letters.npz in {data_dir} is not a usable dataset: y_train has labels up to 3, but the dataset has only "
        "2 classes ('a', 'b')" in text for text in warnings
    ), warnings
    assert at.metric[0].value == "600"  # the page still shows MNIST
    from lib.ui import common as ui

    assert "letters" not in ui.dataset_infos(ui.data_key())
