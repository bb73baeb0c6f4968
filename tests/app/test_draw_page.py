"""Draw page: a drawing (a patched canvas, or the canvas state the browser would report) or an
upload gets each chosen model's answer; Clear takes it away."""

import base64
import io
import json

import numpy as np
from PIL import Image
from streamlit.proto.Metric_pb2 import Metric

from lib.data import drawing, synthdigits
from lib.models import inference
from lib.store import runs
from lib.ui import draw as ui_draw
from tests.app.conftest import GOOD_RUN, WEAK_RUN, open_page

EMPTY_CANVAS = np.zeros((ui_draw.CANVAS_PX, ui_draw.CANVAS_PX, 4), np.uint8)


def a_drawn_seven() -> np.ndarray:
    return synthdigits.draw_digit(7, np.random.default_rng(11), canvas=280, style="stroke")


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def browser_reports(at, image: np.ndarray, strokes: int) -> None:
    """Put into the canvas's state what the browser sends after a change: Fabric JSON, PNG data URL."""
    url = "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()
    raw = {"objects": [{"type": "Path"}] * strokes, "background": "#000000"}
    at.session_state[ui_draw.CANVAS_KEY]["drawing"] = {"raw": raw, "data": url}


def canvas_sent(at) -> tuple[str, dict]:
    """The canvas element's id and the initial drawing the page gives the component."""
    (element,) = at.get("bidi_component")
    return element.proto.id, json.loads(element.proto.json)["initialDrawing"]


def predictions(at) -> list[str]:
    return [metric.value for metric in at.metric if metric.label == "Prediction"]


def expected_answer(run, image) -> str:
    model = runs.load_model(run)
    probs = inference.predict_unit_images(model, drawing.preprocess_image(image), normalize=True)[0]
    return run.class_names[int(probs.argmax())]


def test_drawing_shows_the_models_prediction_and_what_it_sees(bundled_run, monkeypatch):
    """As a visitor, I draw a digit and see the default model's answer with its probabilities."""
    image = a_drawn_seven()
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width: image)
    at = open_page("pages/draw.py")
    prediction = next(metric for metric in at.metric if metric.label == "Prediction")
    assert prediction.value == expected_answer(bundled_run, image)
    assert prediction.delta.endswith("% sure") and prediction.proto.direction == Metric.MetricDirection.NONE, \
        "the confidence is not drawn with an arrow, as if it were a trend"
    shown = [element.proto for element in at.get("image")]
    assert any("What the model sees" in str(proto) for proto in shown), "the 28x28 input is shown"
    assert f"draw_probs_{runs.BUNDLED_ID}" in {chart.key for chart in at.get("plotly_chart")}


def test_several_models_answer_side_by_side(bundled_run, app_runs, monkeypatch):
    """As a teacher, I ask two models about the same drawing and compare their answers."""
    image = a_drawn_seven()
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width: image)
    at = open_page("pages/draw.py")
    other = runs.list_runs(app_runs, include_bundled=False)[0][0]
    at.multiselect(key="draw_models").set_value([runs.BUNDLED_ID, other.run_id]).run()
    predictions = [metric.value for metric in at.metric if metric.label == "Prediction"]
    assert predictions == [expected_answer(bundled_run, image), expected_answer(other, image)]


def test_clear_empties_the_canvas_and_takes_the_answer_away(bundled_run):
    """As a visitor, I draw a digit, press Clear: the answer goes at once, the canvas empties in
    place (same component, told to start again from an empty drawing), and my next digit is answered."""
    at = open_page("pages/draw.py")
    browser_reports(at, a_drawn_seven(), strokes=2)
    at.run()
    assert predictions(at) == [expected_answer(bundled_run, a_drawn_seven())]
    canvas_id, drawn_on = canvas_sent(at)

    at.button(key="draw_clear").click().run()
    assert predictions(at) == [], "the old drawing's answer is still shown after Clear"
    assert any("Draw a digit on the canvas" in info.value for info in at.info)
    cleared_id, initial_drawing = canvas_sent(at)
    assert cleared_id == canvas_id, "Clear mounted a new canvas (it lays out unstyled for a moment and jumps)"
    assert initial_drawing["objects"] == [] and initial_drawing != drawn_on, \
        "the component empties itself only when its initial drawing changes"

    browser_reports(at, EMPTY_CANVAS, strokes=0)  # the browser's answer: its canvas is empty
    at.run()
    assert predictions(at) == [] and any("Draw a digit on the canvas" in info.value for info in at.info)
    one = synthdigits.draw_digit(1, np.random.default_rng(3), canvas=ui_draw.CANVAS_PX, style="stroke")
    browser_reports(at, one, strokes=1)
    at.run()
    assert predictions(at) == [expected_answer(bundled_run, one)]
    assert not at.exception


def test_empty_canvas_asks_for_a_drawing(bundled_run, monkeypatch):
    """As a visitor who has not drawn yet, I am invited to draw instead of seeing an error."""
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width: np.zeros((280, 280, 4), np.uint8))
    at = open_page("pages/draw.py")
    assert not at.error
    assert any("no ink found" in info.value for info in at.info)


def test_uploaded_png_is_predicted_and_a_bad_file_is_refused(bundled_run):
    """As a user, I upload a photo of a digit; a file that is not an image gets a clear message."""
    image = a_drawn_seven()
    at = open_page("pages/draw.py")
    at.get("button_group")[0].set_value("Upload an image instead").run()
    at.file_uploader(key="draw_upload").set_value(("seven.png", png_bytes(image), "image/png")).run()
    prediction = next(metric for metric in at.metric if metric.label == "Prediction")
    assert prediction.value == expected_answer(bundled_run, image)
    at.file_uploader(key="draw_upload").set_value(("notes.png", b"hello, not a picture", "image/png")).run()
    assert at.error and "cannot be used" in at.error[0].value
    assert not at.exception


def run_named(runs_dir, name: str) -> runs.RunInfo:
    return next(run for run in runs.list_runs(runs_dir, include_bundled=False)[0] if run.display_name == name)


def mark_diverged(run: runs.RunInfo, *, nan_weights: bool = False) -> str:
    """Make a trained run what a diverged training leaves: meta status "diverged" with the cause and the fix
    lib.training.loop words (meta.json written whole, as the run store does); with `nan_weights`, weights
    that are no longer numbers, as after a loss that became NaN. Returns the stop reason."""
    from lib.training import loop

    reason = loop.divergence_reason(runs.read_config(run), "the loss became nan in epoch 1")
    meta = {**run.meta, "status": "diverged", "stop_reason": reason, "test_accuracy": None, "test_loss": None}
    (run.path / runs.META_FILE).write_text(json.dumps(meta))
    if nan_weights:
        model = runs.load_model(run)
        model.set_weights([np.full_like(weights, np.nan) for weights in model.get_weights()])
        model.save(run.model_path)
    return reason


def test_a_diverged_run_answers_under_a_warning_with_its_cause_and_fix(app_runs, monkeypatch):
    """As a learner whose run diverged, I can still ask it, but its answer comes with the warning that it means
    nothing, why, and what to change; the healthy run beside it answers without one."""
    weak, good = run_named(app_runs, WEAK_RUN), run_named(app_runs, GOOD_RUN)
    reason = mark_diverged(weak)
    image = a_drawn_seven()
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width: image)
    at = open_page("pages/draw.py")
    at.multiselect(key="draw_models").set_value([weak.run_id, good.run_id]).run()
    assert len(at.error) == 1
    assert f"{WEAK_RUN} is broken: its training diverged, so its answers mean nothing" in at.error[0].value
    assert reason in at.error[0].value and "Lower the learning rate" in reason
    assert predictions(at) == [expected_answer(weak, image), expected_answer(good, image)]


def test_a_diverged_run_with_nan_weights_gives_no_answer_only_the_warning(app_runs, monkeypatch):
    """As a learner whose run's loss became NaN, I am told it is broken and has nothing to answer, no traceback."""
    weak = run_named(app_runs, WEAK_RUN)
    reason = mark_diverged(weak, nan_weights=True)
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width: a_drawn_seven())
    at = open_page("pages/draw.py")
    at.multiselect(key="draw_models").set_value([weak.run_id]).run()
    assert not at.exception
    assert reason in at.error[0].value and "no answer to show at all" in at.error[0].value
    assert predictions(at) == []
