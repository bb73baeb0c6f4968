"""Lessons page: the tutorials' lessons, reported vs measured, one-click presets, progress, Compare."""

import json
import shutil

import pytest

from lib.training import presets
from lib.ui import common as ui, compare as ui_compare, lessons as ui_lessons
from tests.app.conftest import open_page

PAGE = "pages/lessons.py"
MEASURED = {
    "mode": "full", "zoo_accuracy": [
        {"arch": "mlp-1024", "preset": "mlp-1024", "test_accuracy": 0.98, "test_loss": 0.0712, "status": "finished",
         "measured_value": 0.0712, "verdict": "reproduced", "seconds": 99.9, "train_images": 48000},
    ],
    "preset_accuracy": [],
}


@pytest.fixture(scope="module")
def lesson_runs(tiny_data_dir, tmp_path_factory):
    """Saved runs of the learning-rate lesson's two presets (tiny: 100 images, 1 epoch)."""
    from lib.execution.pipeline import train_and_save

    folder = tmp_path_factory.mktemp("lesson_runs")
    for name in presets.LESSONS["lr"].presets:
        train_and_save(presets.get_preset(name).config(limit=100, epochs=1), data_dir=tiny_data_dir, runs_dir=folder)
    return folder


@pytest.fixture
def measured_file(tmp_path, monkeypatch):
    path = tmp_path / "results-full.json"
    path.write_text(json.dumps(MEASURED))
    monkeypatch.setattr(presets, "MEASURED_FILE", path)
    ui_lessons.measured.clear()
    return path


def show(at, key):
    at.selectbox(key=ui_lessons.PICK).set_value(key).run()
    assert not at.exception, at.exception
    return at


def page_text(at) -> str:
    return "\n".join(element.value for element in [*at.markdown, *at.caption, *at.info, *at.error, *at.warning])


def test_the_page_lists_every_lesson_and_my_progress(app_runs):
    """As a learner I see the ten lessons plus the learning-rate one, and that I have run none yet."""
    at = open_page(PAGE)
    assert at.title[0].value == "Lessons"
    options = at.selectbox(key=ui_lessons.PICK).options
    assert len(options) == 11 and options[2] == "Lesson 3 · Broken architectures fail with a clear message"
    assert options[-1] == "Bonus · Too high a learning rate diverges"
    assert "-badge[:material/check:" not in page_text(at)
    assert "You have run 0 of 10 lessons" in at.get("progress")[0].proto.text
    assert at.subheader[0].value == "Lesson 1: Predictions are probabilities"
    assert "Draw a digit" in at.info[0].value


def test_a_comparison_lesson_shows_the_tutorials_number_beside_ours(app_runs, measured_file):
    """As a learner I see, for each of the two recipes, what the tutorial reported and what was measured here."""
    at = show(open_page(PAGE), "2")
    text = page_text(at)
    assert "adam lr 0.001 · batch 32 · 5 epochs · pixels / 255 · integer labels · 20% validation" in text
    assert "**Tutorial reported**  \ntest loss 0.071" in text
    assert "**Measured here**  \n98.00% test accuracy, test loss 0.0712" in text
    assert "**Measured here**  \nnot measured yet" in text  # MLP 128 on MNIST has no row
    assert text.count("-badge[:material/check: reproduced]") == 1  # MLP 1024 only
    assert at.button(key="lesson_train_2").label == "Train both (the tutorial's recipe on the full data)"


def test_lesson_3_shows_the_builders_messages(app_runs):
    """As a learner I see the clear messages the builder gives for a Dense layer without Flatten and wrong units."""
    at = show(open_page(PAGE), "3")
    errors = [element.value for element in at.error]
    assert any("Dense needs a flat vector. Add a Flatten" in message for message in errors)
    assert any("The last layer has 5 units, but this dataset has 10 classes" in message for message in errors)
    assert not any(button.key.startswith("lesson_train_") for button in at.button)


def test_lesson_7_trains_with_stop_at_target(app_runs):
    """As a learner I see that the callback lesson's recipe stops once accuracy reaches 95%."""
    at = show(open_page(PAGE), "7")
    assert "stop at accuracy ≥ 0.95" in page_text(at)


def test_train_both_queues_the_two_presets_under_their_names(app_runs):
    """As a learner one click trains both variants of the lesson, on a quick sample when I ask for it."""
    at = show(open_page(PAGE), "lr")
    at.toggle(key=ui_lessons.QUICK).set_value(True).run()
    assert at.button(key="lesson_train_lr").label == "Train both (quick try: 5,000 images)"
    at.button(key="lesson_train_lr").click().run()
    assert not at.exception, at.exception
    job_ids = at.session_state[ui_lessons.JOBS]["lr"]
    manager = ui.job_manager()
    configs = [manager.snapshot(job_id).config for job_id in job_ids]
    assert [config.name for config in configs] == ["sgd-lr-10", "sgd-lr-0.1"]
    assert [config.learning_rate for config in configs] == [10.0, 0.1] and {c.limit for c in configs} == {5000}
    for job_id in job_ids:
        manager.wait(job_id, timeout=300)
    assert manager.snapshot(job_ids[0]).state == "diverged"  # lr 10 explodes, as the lesson says
    at.run()
    # The lesson now has its runs: ticked in the list, and still the one on screen.
    assert ":green-badge[:material/check: learning rate]" in page_text(at)
    assert at.subheader[0].value == "Bonus: Too high a learning rate diverges"
    assert "Training diverged" in page_text(at)


def test_a_run_lesson_is_ticked_and_opens_compare_with_both_runs(app_runs, lesson_runs):
    """As a learner who ran the learning-rate lesson, it is ticked and one click compares its two runs."""
    for folder in lesson_runs.iterdir():
        shutil.copytree(folder, app_runs / folder.name)
    at = show(open_page(PAGE), "lr")
    assert "You have run 1 of 10 lessons" in at.get("progress")[0].proto.text
    assert ":green-badge[:material/check: learning rate]" in page_text(at)
    assert ":gray-badge[7]" in page_text(at)
    at.button(key="lesson_open_lr_Compare").click().run()
    assert not at.exception, at.exception
    chosen = at.session_state[ui_compare.COMPARE_PICKER]
    names = {json.loads((app_runs / run_id / "meta.json").read_text())["config"]["name"] for run_id in chosen}
    assert names == {"sgd-lr-10", "sgd-lr-0.1"}
    assert at.title[0].value == "Compare"


def test_show_as_code_gives_the_recipe_as_a_downloadable_script(app_runs):
    """As a learner I open a lesson's recipe as a Keras script I can read and download."""
    at = show(open_page(PAGE), "6")
    at.toggle(key="lesson_code_6_mlp-512-raw_toggle").set_value(True).run()
    script = at.code[0].value
    assert "NORMALIZE = False" in script and "keras.datasets" in script and 'layers.Dense(512, activation="relu")' in script
    assert at.get("download_button")[0].proto.label == "Download the script"


def test_home_leads_to_the_lessons(app_runs):
    """As a visitor on Home I find the lessons one click away, instead of a list to read."""
    at = open_page("pages/home.py")
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert links["Open the lessons"].endswith("lessons")
    assert not [expander for expander in at.expander if "lessons" in expander.label.lower()]


def test_the_train_page_shows_its_current_settings_as_code(app_runs):
    """As a learner on Train I see the model and settings I chose as a Keras script."""
    at = open_page("pages/train.py")
    at.toggle(key="train_code_toggle").set_value(True).run()
    assert not at.exception, at.exception
    script = at.code[-1].value
    assert 'DATASET = "mnist"' in script and "layers.Conv2D(24, 5" in script and "momentum=0.9" in script
    assert 'LR_SCHEDULE = "one_cycle"' in script  # the Train page's default, not the tutorial's
    assert "warmup_target=LEARNING_RATE" in script
