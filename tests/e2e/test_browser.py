"""MNIST Studio in a real browser: navigation, live training, Stop, the canvas, uploads, Shuffle.

What AppTest cannot show: the pages as Chromium renders them, charts that gain points
while a model trains, mouse strokes on the drawing canvas. Every test opens its own tab
(its own Streamlit session) on the app that tests/e2e/conftest.py serves, and saves
full-page screenshots to tests/e2e/artifacts/.
"""

import json
import re
import time

import pytest
from PIL import Image, ImageDraw

from lib.store import runs
from tests.e2e.conftest import browser_missing_reason
from tests.e2e.studio import SLOW_MS, ellipse, line

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

PAGES = ("Home", "Data", "Train", "Predictions", "Draw", "Compare")
# A section heading each page shows once it has rendered (Draw: its canvas).
PAGE_CONTENT = {"Home": "Recent runs", "Data": "Class balance", "Train": "2 · Settings",
                "Predictions": "Random test images", "Draw": None, "Compare": "All runs"}
TRAIN_TIMEOUT_S = 300  # two small epochs plus scoring the 10,000 test images, on a busy 2-core machine
NO_JOB_YET = "No training in this session yet."
SIDEBAR_WAIT_S = 20  # the sidebar polls every 2 s; a busy 2-core machine can delay a few polls
STROKE_PX = 20  # the Draw page's default stroke width
ONE = [line((140, 40), (140, 240))]
ZERO = [ellipse((140, 140), (60, 95))]
SEVEN = [line((70, 50), (210, 50)) + line((210, 50), (120, 245))[1:]]


@pytest.fixture
def bundled_model():
    """The default model shipped in models/default/; the Draw page depends on it."""
    run = runs.bundled_run()
    assert run is not None, "models/default/ is missing or damaged: the Draw page has no model before training"
    return run


def start_training(app, *, arch: str, epochs: int, name: str, batch_size: int = 32, images: int = 2000) -> None:
    """On the Train page: a small model on `images` MNIST images (0 = all), small batches (many points per epoch)."""
    app.nav("Train")
    app.choose("Architecture", arch)
    app.type_into("stNumberInput", "Epochs", epochs)
    app.type_into("stNumberInput", "Limit training images (0 = all)", images)
    app.choose("Batch size", str(batch_size))
    app.type_into("stTextInput", "Run name (optional)", name)
    app.button("Train").click()


def job_state(app, name: str) -> str:
    """The state line under the job's name in the training panel ("Running: epoch 1/2 · 40%", ...)."""
    head = app.page.get_by_test_id("stMain").get_by_test_id("stMarkdownContainer").filter(
        has=app.page.get_by_role("heading", name=name, level=4)
    )
    texts = head.all_inner_texts()
    return texts[-1].replace(name, "", 1).strip() if texts else ""


def loss_points(app) -> int:
    """Points in the live loss chart under "3 · Training" (the newest copy while Streamlit swaps it)."""
    charts = app.chart_points("live_loss_")
    return max((sum(chart.values()) for chart in charts), default=0)


def training_started(app) -> bool:
    return loss_points(app) > 0


def run_row(app, name: str) -> dict:
    rows = app.table_rows()
    matches = [row for row in rows if row["name"] == name]
    assert len(matches) == 1, f"{name!r} not once in the runs table: {[row['name'] for row in rows]}"
    return matches[0]


def test_every_page_opens_from_the_sidebar_with_the_shared_sidebar(studio, bundled_model):
    """As a visitor, I reach every page from the navigation: each shows its title and its own
    content, no error box, and the sidebar's Dataset picker and job status, however I got there."""
    for label in (*PAGES[1:], "Home"):
        studio.nav(label)
        content = PAGE_CONTENT[label]
        if content:
            studio.heading(content, level=3).wait_for(timeout=SLOW_MS)
        else:
            studio.canvas_box()
        studio.wait_idle()
        assert studio.exception_count() == 0, f"{label}: Streamlit exception box"
        dataset = studio.selected("Dataset", within=studio.sidebar())
        assert dataset == "MNIST handwritten digits", f"{label}: the sidebar's Dataset shows {dataset!r}"
        assert NO_JOB_YET in studio.sidebar_text(), f"{label}: no job status in the sidebar"
        studio.screenshot(f"page-{PAGES.index(label) + 1}-{label.lower()}")


def test_training_draws_live_curves_and_the_run_appears_on_compare(studio, artifacts_dir):
    """As a learner, I train the tutorial CNN for 2 epochs and watch the loss curve and progress
    bar move while it trains; the finished run is then listed on Compare."""
    start_training(studio, arch="cnn-tf-tutorial ·", epochs=2, name="e2e two epochs", batch_size=16)
    studio.wait_until(lambda: training_started(studio), timeout_s=SLOW_MS / 1000, what="the first loss points")
    samples = []
    started = time.monotonic()
    results = studio.heading("4 · Results", level=3)

    def finished() -> bool:
        if results.is_visible():
            return True
        samples.append({"t": round(time.monotonic() - started, 1), "points": loss_points(studio),
                        "progress": studio.progress_values(),
                        "state": job_state(studio, "e2e two epochs")})
        return False

    studio.wait_until(finished, timeout_s=TRAIN_TIMEOUT_S, what="the finished run's results", every_s=0.5)
    (artifacts_dir / "train-live-samples.json").write_text(json.dumps(samples))
    points = [sample["points"] for sample in samples if sample["points"]]
    progress = sorted({value for sample in samples for value in sample["progress"]})
    states = list(dict.fromkeys(sample["state"] for sample in samples))
    print(f"\nlive loss points: first {points[0]}, last {points[-1]}, {len(set(points))} distinct counts; "
          f"progress values seen: {progress}; states: {states}")
    assert points[-1] > points[0], f"the live loss chart did not gain points: {points}"
    assert len(progress) >= 2 and progress[-1] > progress[0], f"the progress bar did not move: {progress}"

    studio.wait_idle()
    assert studio.page.get_by_text(re.compile(r"^Finished · test accuracy \d")).first.is_visible()
    assert studio.exception_count() == 0
    studio.screenshot("train-finished")

    studio.nav("Compare")
    row = run_row(studio, "e2e two epochs")
    assert (row["status"], row["epochs"], row["architecture"]) == ("finished", "2", "cnn-tf-tutorial")
    assert "Last training job" in studio.sidebar_text() and "e2e two epochs" in studio.sidebar_text()
    studio.screenshot("compare-after-training")


def test_stop_ends_a_long_run_and_keeps_a_usable_model(studio):
    """As an impatient learner, I start 50 epochs (the sidebar shows the job at once), look around,
    come back and press Stop: the job ends as Stopped, and the run is on Compare and usable on Predictions."""
    # All the training images: 50 epochs of 2,000 could end before the Compare page below had drawn (seconds
    # for an MLP on a fast CPU), and the sidebar then showed the last job, not the running one.
    start_training(studio, arch="mlp-128 ·", epochs=50, name="e2e stopped", images=0)
    studio.heading("3 · Training", level=3).wait_for()
    studio.wait_until(lambda: "Training job" in studio.sidebar_text(), timeout_s=SIDEBAR_WAIT_S,
                      what="the sidebar to show the training job just started")
    studio.screenshot("train-sidebar-after-clicking-train")
    studio.wait_until(lambda: training_started(studio), timeout_s=SLOW_MS / 1000, what="training to start")

    studio.nav("Compare")  # the sidebar follows the job on another page
    sidebar = studio.sidebar_text()
    assert "Training job" in sidebar and "e2e stopped" in sidebar and "Running: epoch" in sidebar, sidebar
    studio.nav("Train")
    studio.screenshot("train-running")
    studio.button("Stop").click()

    studio.heading("4 · Results", level=3).wait_for(timeout=TRAIN_TIMEOUT_S * 1000)
    studio.wait_idle()
    assert studio.page.get_by_text(re.compile(r"^Stopped · test accuracy \d")).first.is_visible()
    assert studio.page.get_by_text(re.compile(r"^Stopped by request after")).is_visible()
    assert not studio.button("Stop").count()
    studio.screenshot("train-stopped")

    studio.nav("Compare")
    row = run_row(studio, "e2e stopped")
    assert row["status"] == "stopped" and float(row["epochs"] or 0) < 50

    studio.nav("Predictions")
    studio.choose("Run", "e2e stopped")
    grid = studio.page.locator(".st-key-pred_grid img")
    grid.first.wait_for(timeout=SLOW_MS)
    studio.wait_idle()
    accuracy = studio.metric_values("Test accuracy")
    assert accuracy and re.fullmatch(r"\d+\.\d\d%", accuracy[0]), accuracy
    assert grid.count() == 10 and studio.exception_count() == 0
    studio.screenshot("predictions-stopped-run")


def open_draw_page(studio):
    studio.nav("Draw")
    chosen = studio.widget("stMultiSelect", "Models to ask").inner_text()
    assert "(bundled, read-only)" in chosen, f"the bundled model is not preselected: {chosen!r}"
    studio.canvas_box()


def drawn_answer(studio, strokes, digit: str) -> str:
    return studio.drawn_answer(strokes, f"the drawn {digit}")


def clear_canvas(studio) -> None:
    """Clear, and wait for what a person sees: the invitation instead of the answers, and the
    canvas, the same one, showing no ink. The next stroke may follow at once."""
    canvas = studio.drawing_canvas().element_handle()
    studio.button("Clear").click()
    studio.page.get_by_text("Draw a digit on the canvas to see the predictions.").wait_for()
    studio.wait_until(lambda: studio.canvas_ink() == 0, timeout_s=10, what="an empty canvas after Clear")
    studio.wait_idle()
    assert canvas.evaluate("canvas => canvas.isConnected"), \
        "Clear mounted a new canvas: it lays out unstyled for a moment, then jumps into place"


def overlaps(a: dict, b: dict) -> bool:
    """Whether two bounding boxes share any area."""
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def test_drawn_digits_are_recognised_by_the_bundled_model(studio, bundled_model):
    """As a visitor, I draw a 1, clear, a 0, clear, a 7 with the mouse, and the default model
    names each one."""
    open_draw_page(studio)
    answers = {}
    for digit, strokes in (("1", ONE), ("0", ZERO), ("7", SEVEN)):
        if answers:
            clear_canvas(studio)
        answers[digit] = drawn_answer(studio, strokes, digit)
        assert studio.exception_count() == 0
        studio.screenshot(f"draw-{digit}")
    print(f"\ndrawn -> predicted: {answers}")
    assert answers == {"1": "1", "0": "0", "7": "7"}


def test_drawing_canvas_toolbar_covers_neither_stroke_width_nor_clear(studio, bundled_model):
    """As a visitor, I hover the canvas: its toolbar (send, undo, redo, edit, reset) shows above
    it without covering the Stroke width slider or the Clear button; nor does it, hidden, when
    the pointer is elsewhere (hidden, it still takes clicks)."""
    open_draw_page(studio)
    studio.wait_for_pen()  # the pointer rests on the canvas
    toolbar = studio.page.get_by_test_id("stMain").locator(".dc-toolbar")

    def toolbar_box(opacity: str) -> dict | None:
        shown = toolbar.evaluate("toolbar => getComputedStyle(toolbar).opacity") == opacity
        return shown and toolbar.bounding_box()

    controls = {"Stroke width": studio.widget("stSlider", "Stroke width").bounding_box(),
                "Clear": studio.button("Clear").bounding_box()}
    shown = studio.wait_until(lambda: toolbar_box("1"), timeout_s=5, what="the canvas toolbar on hover")
    studio.screenshot("draw-toolbar-on-hover")
    studio.page.mouse.move(5, 5)
    hidden = studio.wait_until(lambda: toolbar_box("0"), timeout_s=5, what="the canvas toolbar to hide")
    print(f"\ntoolbar shown {shown}, hidden {hidden}, controls {controls}")
    for name, control in controls.items():
        assert not overlaps(shown, control), f"the shown toolbar {shown} covers {name} {control}"
        assert not overlaps(hidden, control), f"the hidden toolbar {hidden} covers {name} {control}"
    assert studio.exception_count() == 0


def test_an_uploaded_digit_gets_the_same_answer_as_the_drawing(studio, bundled_model, tmp_path):
    """As a visitor without a mouse, I upload a PNG of the 0 I would draw and get the same answer."""
    open_draw_page(studio)
    drawn = drawn_answer(studio, ZERO, "0")
    picture = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(picture).line(ZERO[0], fill="white", width=STROKE_PX, joint="curve")
    png = tmp_path / "zero.png"
    picture.save(png)

    studio.page.get_by_test_id("stMain").get_by_role("radio", name="Upload an image instead").click()
    studio.page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(png)
    studio.page.get_by_text("Your image").wait_for()
    studio.wait_until(lambda: studio.metric_values("Prediction"), timeout_s=SLOW_MS / 1000, what="a prediction")
    studio.wait_idle()
    uploaded = studio.metric_values("Prediction")[0]
    studio.screenshot("draw-upload")
    print(f"\ndrawn 0 -> {drawn}, uploaded 0 -> {uploaded}")
    assert drawn == uploaded == "0"
    assert studio.exception_count() == 0


def test_predictions_grid_shows_labelled_images_and_shuffle_changes_them(studio, bundled_model):
    """As a learner, I see ten test images with predicted and true labels, and Shuffle shows others."""
    studio.nav("Predictions")
    studio.choose("Run", "(bundled, read-only)", starts=False)
    grid = studio.page.locator(".st-key-pred_grid")
    grid.locator("img").first.wait_for(timeout=SLOW_MS)
    studio.wait_idle()

    def shown():
        captions = grid.get_by_test_id("stCaptionContainer").all_inner_texts()
        sources = [image.get_attribute("src") for image in grid.locator("img").all()]
        return captions, sources

    captions, sources = shown()
    assert len(captions) == len(sources) == 10, (captions, sources)
    for number, caption in enumerate(captions, start=1):
        assert re.match(rf"{number}\. predicted \d \(\d+\.\d%\)\s+\S+ true \d$", caption), caption
    studio.screenshot("predictions-before-shuffle")

    studio.button("Shuffle").click()
    studio.wait_until(lambda: shown()[0] != captions, timeout_s=30, what="new captions after Shuffle")
    studio.wait_idle()
    new_captions, new_sources = shown()
    print(f"\nbefore Shuffle: {captions[:3]}\nafter Shuffle: {new_captions[:3]}")
    assert len(new_captions) == 10 and new_captions != captions and new_sources != sources
    assert studio.exception_count() == 0
    studio.screenshot("predictions-after-shuffle")
