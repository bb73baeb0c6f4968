"""Predictions page: random test images with labels, filters, shuffle, one image's probabilities."""

import json
import re

from lib.store import runs
from tests.app.conftest import GOOD_RUN, WEAK_RUN, open_page
from tests.app.test_draw_page import mark_diverged, run_named

PAGE = "pages/predictions.py"


def grid_captions(at) -> list[str]:
    """The image captions as a user reads them (Markdown escapes and colour removed)."""
    texts = []
    for caption in at.caption:
        text = caption.value
        wrong = text.startswith(":red[")
        text = re.sub(r"\\(.)", r"\1", text[5:-1] if wrong else text).replace("  \n", "\n")
        if re.match(r"\d+\. predicted ", text):
            texts.append(("red: " if wrong else "") + text)
    return texts


def chart_title(at, key: str) -> str:
    chart = next(element for element in at.get("plotly_chart") if element.key == key)
    return json.loads(chart.proto.spec)["layout"]["title"]["text"]


def pick_run(at, name: str):
    """Choose a run by its name (the picker's values are run ids)."""
    run_id = next(run.run_id for run in runs.list_runs()[0] if run.display_name == name)
    at.selectbox(key="pred_run").set_value(run_id).run()
    return at


def metric_value(at, label_start: str) -> str:
    return next(metric.value for metric in at.metric if metric.label.startswith(label_start))


def test_grid_shows_ten_test_images_with_true_and_predicted_labels(app_runs):
    """As a learner I open Predictions and see ten test images, each with its true label,
    the predicted label and the model's probability for it (tutorial lesson 10)."""
    at = open_page(PAGE)
    captions = grid_captions(at)
    assert len(captions) == 10
    for number, text in enumerate(captions, start=1):
        assert re.search(rf"^(red: )?{number}\. predicted \S+ \(\d+\.\d%\)\n[✓✗] true \S+$", text), text
    assert len(at.image) == 10 + 1  # the grid, and the one image up close
    assert "Test accuracy" in [metric.label for metric in at.metric]


def test_more_images_can_be_shown(app_runs):
    """As a learner I ask for 30 images to see more of the model's mistakes at once."""
    at = open_page(PAGE)
    at.button_group(key="pred_grid_size").set_value(30).run()
    assert len(grid_captions(at)) == 30


def test_shuffle_draws_another_sample(app_runs):
    """As a learner I press Shuffle and get a different set of test images."""
    at = open_page(PAGE)
    before = [image.value for image in at.image]
    at.button(key="pred_shuffle").click().run()
    after = [image.value for image in at.image]
    assert len(after) == len(before) == 11
    assert after[:10] != before[:10]


def test_misclassified_filter_shows_only_mistakes(app_runs):
    """As a learner I switch on "Only misclassified" and every image shown is a mistake, in red."""
    at = pick_run(open_page(PAGE), WEAK_RUN)
    at.button_group(key="pred_grid_size").set_value(50).run()
    assert any("✓" in text for text in grid_captions(at)), "precondition: the weak run gets some right"
    at.toggle(key="pred_only_wrong").set_value(True).run()
    captions = grid_captions(at)
    assert captions and all(text.startswith("red: ") and "✗ true" in text for text in captions)
    wrong = metric_value(at, "Misclassified").replace(",", "")
    assert any(f"of the {wrong} that match" in c.value or f"All {wrong} test images" in c.value for c in at.caption)


def test_true_class_filter_shows_one_class(app_runs):
    """As a learner I pick the true class 3 and see only test images of threes."""
    at = open_page(PAGE)
    at.selectbox(key="pred_true_class").set_value(3).run()
    captions = grid_captions(at)
    assert captions and all(text.endswith("true 3") for text in captions)


def test_probability_chart_of_the_chosen_image(app_runs):
    """As a learner I pick one of the shown images and see its probability for every class."""
    at = pick_run(open_page(PAGE), GOOD_RUN)
    at.selectbox(key="pred_inspect").set_value(2).run()
    third = grid_captions(at)[2]
    predicted = re.search(r"predicted (\S+) \((\d+\.\d%)\)", third)
    title = chart_title(at, "pred_probability")
    assert title.startswith(f"Prediction: {predicted[1]} ({predicted[2]})")
    chart = next(element for element in at.get("plotly_chart") if element.key == "pred_probability")
    bars = json.loads(chart.proto.spec)["data"][0]
    assert bars["y"] == [str(digit) for digit in range(10)]
    assert abs(sum(float(text.rstrip("%")) for text in bars["text"]) - 100) < 1


def test_confused_pairs_and_confusion_matrix(app_runs):
    """As a learner I see which classes the model mixes up most, and the whole confusion matrix."""
    at = pick_run(open_page(PAGE), WEAK_RUN)
    pairs = next(frame.value for frame in at.dataframe if "predicted as" in frame.value.columns)
    assert list(pairs.columns) == ["true class", "predicted as", "images"]
    assert 1 <= len(pairs) <= 5 and pairs["images"].is_monotonic_decreasing
    assert chart_title(at, "pred_confusion").startswith("Confusion matrix")


def test_run_on_a_missing_dataset_explains_what_to_do(app_runs):
    """As a user whose run was trained on a dataset this machine lacks, I get a clear error, not a crash."""
    run = runs.list_runs(app_runs, include_bundled=False)[0][0]
    meta = json.loads((run.path / runs.META_FILE).read_text())
    meta["dataset"] = {**meta["dataset"], "name": "emnist", "title": "EMNIST letters"}
    (run.path / runs.META_FILE).write_text(json.dumps(meta))
    at = open_page(PAGE)
    assert not at.exception
    message = at.error[0].value
    assert "EMNIST letters" in message and "MNIST_STUDIO_DATA_DIR" in message and "Data" in message
    assert not grid_captions(at)


def test_run_with_a_broken_model_file_shows_an_error(app_runs):
    """As a user with a corrupted model file I am told the model cannot be loaded; the page still works."""
    run = runs.list_runs(app_runs, include_bundled=False)[0][0]
    run.model_path.write_bytes(b"not a keras file")
    at = open_page(PAGE)
    assert not at.exception
    assert "cannot be loaded" in at.error[0].value
    other = runs.list_runs(app_runs, include_bundled=False)[0][1]
    at.selectbox(key="pred_run").set_value(other.run_id).run()  # the user picks another run: it works
    assert not at.error
    assert at.metric[0].label == "Test accuracy" and at.metric[0].value.endswith("%")


def test_the_chosen_run_is_remembered_across_pages(app_runs):
    """As a user who picked a run, I find it still picked when I come back from another page."""
    other = runs.list_runs(app_runs, include_bundled=False)[0][1]
    at = open_page(PAGE)
    at.selectbox(key="pred_run").set_value(other.run_id).run()
    at.switch_page("pages/compare.py").run()
    at.switch_page(PAGE).run()
    assert at.selectbox(key="pred_run").value == other.run_id


def test_a_diverged_runs_predictions_come_under_a_warning(app_runs):
    """As a learner whose run diverged, its predictions are still there to look at, under the warning that they
    mean nothing, why and what to change; with NaN weights there are none, and no traceback."""
    weak = run_named(app_runs, WEAK_RUN)
    reason = mark_diverged(weak)
    at = pick_run(open_page(PAGE), WEAK_RUN)
    assert f"{WEAK_RUN} is broken: its training diverged, so its answers mean nothing" in at.error[0].value
    assert reason in at.error[0].value
    assert len(grid_captions(at)) == 10 and metric_value(at, "Test accuracy").endswith("%")
    pick_run(at, GOOD_RUN)
    assert not at.error

    mark_diverged(weak, nan_weights=True)
    pick_run(at, WEAK_RUN)
    assert not at.exception
    assert reason in at.error[0].value and "no answer to show at all" in at.error[0].value
    assert not grid_captions(at) and not at.metric
