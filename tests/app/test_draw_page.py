"""Draw page: a drawing (patched canvas) or an upload gets each chosen model's answer."""

import io

import numpy as np
from PIL import Image

from lib import drawing, inference, runs, synthdigits, ui_draw
from tests.app.conftest import open_page


def a_drawn_seven() -> np.ndarray:
    return synthdigits.draw_digit(7, np.random.default_rng(11), canvas=280, style="stroke")


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


def test_empty_canvas_asks_for_a_drawing(bundled_run, monkeypatch):
    """As a visitor who has not drawn yet, I am invited to draw instead of seeing an error."""
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width: np.zeros((280, 280, 4), np.uint8))
    at = open_page("pages/draw.py")
    assert not at.error
    assert any("no ink found" in info.value for info in at.info)


def test_uploaded_png_is_predicted_and_a_bad_file_is_refused(bundled_run):
    """As a user, I upload a photo of a digit; a file that is not an image gets a clear message."""
    image = a_drawn_seven()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    at = open_page("pages/draw.py")
    at.get("button_group")[0].set_value("Upload an image instead").run()
    at.file_uploader(key="draw_upload").set_value(("seven.png", buffer.getvalue(), "image/png")).run()
    prediction = next(metric for metric in at.metric if metric.label == "Prediction")
    assert prediction.value == expected_answer(bundled_run, image)
    at.file_uploader(key="draw_upload").set_value(("notes.png", b"hello, not a picture", "image/png")).run()
    assert at.error and "cannot be used" in at.error[0].value
    assert not at.exception
