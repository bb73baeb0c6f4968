"""Inside page: every input source shows the forward pass and the saliency; Draw and Predictions
open it; the other tabs show weights, the map and the mistakes; bad runs give clear errors."""

import json
import shutil

import numpy as np
import pytest

from lib.data import paths, synthdigits
from lib.models import inference
from lib.store import runs
from lib.ui import draw as ui_draw, inside as ui_inside
from tests.app.conftest import WEAK_RUN, open_page
from tests.app.test_draw_page import mark_diverged, png_bytes, run_named


def a_drawn_seven() -> np.ndarray:
    return synthdigits.draw_digit(7, np.random.default_rng(11), canvas=280, style="stroke")


def expected_answer(run, image01) -> str:
    probs = inference.predict_unit_images(runs.load_model(run), image01, normalize=run.normalize)[0]
    return run.class_names[int(probs.argmax())]


def prediction(at) -> str | None:
    found = [metric.value for metric in at.metric if metric.label == "Prediction"]
    return found[0] if found else None


def chart_keys(at) -> set[str]:
    return {chart.key for chart in at.get("plotly_chart")}


def saliency_titles(at) -> dict[str, tuple[str, str]]:
    """Each saliency chart's key -> (title, subtitle)."""
    found = {}
    for chart in at.get("plotly_chart"):
        if chart.key and chart.key.startswith("inside_saliency_"):
            title = json.loads(chart.proto.spec)["layout"]["title"]
            found[chart.key] = (title["text"], title.get("subtitle", {}).get("text", ""))
    return found


@pytest.fixture(scope="module")
def trained_cnn(tiny_data_dir, tmp_path_factory):
    """A real 1-epoch cnn-best run (the bundled model's architecture) on 200 tiny-MNIST images."""
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    config = TrainConfig(dataset="mnist", arch="cnn-best", epochs=1, limit=200, name="tiny cnn")
    run, _ = train_and_save(config, data_dir=tiny_data_dir, runs_dir=tmp_path_factory.mktemp("cnn_runs"))
    return run.path


@pytest.fixture
def bundled_cnn(app_runs, trained_cnn) -> runs.RunInfo:
    shutil.copytree(trained_cnn, paths.BUNDLED_MODELS_DIR / runs.BUNDLED_ID)
    return runs.bundled_run()


def layer_titles(at) -> list[str]:
    titles = []
    for chart in at.get("plotly_chart"):
        if chart.key and chart.key.startswith("inside_layer_"):
            titles.append(json.loads(chart.proto.spec)["layout"]["title"]["text"])
    return titles


def test_a_drawing_shows_every_layer_and_the_saliency(bundled_run, monkeypatch):
    """As a learner, I draw a seven and see the prediction, where the model looks and every layer's output."""
    image = a_drawn_seven()
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: image)
    at = open_page("pages/inside.py")
    assert prediction(at) == expected_answer(bundled_run, inference.prepare_image(bundled_run, image))
    keys = chart_keys(at)
    assert "inside_saliency_gradient x input" in keys  # the softmax model has no convolution: no Grad-CAM
    assert saliency_titles(at)["inside_saliency_gradient x input"][1] == "gradient x input (28x28)"
    titles = layer_titles(at)
    assert titles[0] == "1. Flatten · 784 · 0 params"
    assert titles[1].startswith("2. Dense · 10 · 7,850 params · output: Prediction:")
    assert any("how to read" in str(c.proto).lower() or "warm pixels" in c.value.lower() for c in at.caption)


def test_a_cnn_saliency_says_which_layer_and_grid_it_comes_from(bundled_cnn, monkeypatch):
    """As a learner looking inside a CNN, I read which layer the map comes from and how coarse its grid is,
    and see Grad-CAM alone and gradient x input beside it."""
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: a_drawn_seven())
    at = open_page("pages/inside.py")
    at.selectbox(key=ui_inside.RUN_KEY).set_value(bundled_cnn.run_id).run()
    assert prediction(at) == expected_answer(bundled_cnn, inference.prepare_image(bundled_cnn, a_drawn_seven()))
    charts = saliency_titles(at)
    title, subtitle = charts["inside_saliency_Grad-CAM x input"]
    assert title.startswith("Grad-CAM x input for class ")
    assert subtitle == "Grad-CAM on conv2d_9 (7x7) x input (28x28)"
    assert charts["inside_saliency_Grad-CAM"][1] == "Grad-CAM on conv2d_9 (7x7)"
    assert charts["inside_saliency_gradient x input"][1] == "gradient x input (28x28)"
    assert any("Grad-CAM on conv2d_9 (7x7) x input (28x28)" in caption.value and "strokes" in caption.value
               for caption in at.caption)



def test_a_chinese_visitor_reads_the_maps_and_layers_in_chinese(bundled_cnn, monkeypatch):
    """As a learner reading Chinese, the saliency maps' titles, scale and hover, and every layer's title are
    in Chinese (layer and Keras class names stay as Keras calls them)."""
    from tests.app.test_pages_zh import open_page_zh

    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: a_drawn_seven())
    at = open_page_zh("pages/inside.py")
    at.selectbox(key=ui_inside.RUN_KEY).set_value(bundled_cnn.run_id).run()
    charts = saliency_titles(at)
    title, subtitle = charts["inside_saliency_Grad-CAM x input"]
    assert title.startswith("Grad-CAM × 输入"), title
    assert subtitle == "conv2d_9（7x7）上的 Grad-CAM × 输入（28x28）"
    assert charts["inside_saliency_gradient x input"][1] == "梯度 × 输入（28x28）"
    spec = json.loads(next(c for c in at.get("plotly_chart") if c.key == "inside_saliency_Grad-CAM").proto.spec)
    heat = spec["data"][1]
    assert heat["colorbar"]["title"]["text"] == "关注这里"
    assert heat["hovertemplate"].startswith("第 %{y} 行，第 %{x} 列：显著性"), heat["hovertemplate"]
    titles = layer_titles(at)
    assert titles[0].startswith("1. Conv2D · ") and titles[0].endswith(" 个参数"), titles[0]
    assert not any("params" in title for title in titles), titles


def test_an_empty_canvas_invites_a_drawing(bundled_run, monkeypatch):
    """As a visitor who has not drawn yet, I am asked to draw, not shown an error."""
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: None)
    at = open_page("pages/inside.py")
    assert not at.error and prediction(at) is None
    assert any("Draw a digit" in info.value for info in at.info)


def test_an_uploaded_image_is_looked_into_and_a_bad_file_refused(bundled_run):
    """As a user, I upload a picture of a digit; a file that is not an image gets a clear message."""
    image = a_drawn_seven()
    at = open_page("pages/inside.py")
    at.segmented_control(key=ui_inside.SOURCE_KEY).set_value(ui_inside.UPLOAD).run()
    at.file_uploader(key="inside_upload").set_value(("seven.png", png_bytes(image), "image/png")).run()
    assert prediction(at) == expected_answer(bundled_run, inference.prepare_image(bundled_run, image))
    at.file_uploader(key="inside_upload").set_value(("notes.png", b"not a picture", "image/png")).run()
    assert at.error and "cannot be used" in at.error[0].value and prediction(at) is None


def test_a_test_image_shows_its_true_class(bundled_run, tiny_data_dir):
    """As a learner, I pick test image 5 and see the model's answer next to the true class."""
    at = open_page("pages/inside.py")
    at.segmented_control(key=ui_inside.SOURCE_KEY).set_value(ui_inside.TEST).run()
    at.number_input(key=ui_inside.TEST_INDEX_KEY).set_value(5).run()
    with np.load(tiny_data_dir / "mnist.npz") as data:
        x5, y5 = data["x_test"][5], int(data["y_test"][5])
    assert prediction(at) == expected_answer(bundled_run, x5 / 255.0)
    metric = next(metric for metric in at.metric if metric.label == "Prediction")
    assert metric.delta.endswith(f"true class {y5}")


def test_predictions_opens_inside_on_the_inspected_test_image(bundled_run):
    """As a learner on Predictions, one click shows the inspected image inside the model."""
    at = open_page("pages/predictions.py")
    at.button(key="pred_inside").click().run()
    assert at.title[0].value == "Inside"
    assert at.session_state[ui_inside.SOURCE_KEY] == ui_inside.TEST
    assert prediction(at) is not None
    index = at.session_state[ui_inside.TEST_INDEX_KEY]
    assert any(f"test image #{index}" in str(image.proto) for image in at.get("image"))


def test_draw_opens_inside_with_the_drawing(bundled_run, monkeypatch):
    """As a visitor on Draw, one click shows my drawing going through the model."""
    image = a_drawn_seven()
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: image if key is None else None)
    at = open_page("pages/draw.py")
    at.button(key="draw_inside").click().run()
    assert at.title[0].value == "Inside"
    assert at.session_state[ui_inside.SOURCE_KEY] == ui_inside.FROM_DRAW
    assert prediction(at) == expected_answer(bundled_run, inference.prepare_image(bundled_run, image))


def test_other_tabs_show_weights_map_and_mistakes(bundled_run):
    """As a learner, I see the softmax model's ten weight images, the map of the test set and its mistakes."""
    at = open_page("pages/inside.py")
    at.session_state["inside_tabs"] = "What it learned"
    at.run()
    assert "inside_weights" in chart_keys(at)
    assert any("the whole softmax model" in str(chart.proto.spec) for chart in at.get("plotly_chart"))
    at.session_state["inside_tabs"] = "Map of the test set"
    at.run()
    assert "inside_map" in chart_keys(at) and not at.exception
    at.session_state["inside_tabs"] = "Mistakes"
    at.run()
    assert any(caption.value.startswith("#") and "said" in caption.value for caption in at.caption)


def test_a_damaged_run_is_listed_and_the_page_still_works(bundled_run, app_runs, monkeypatch):
    """As a user with a broken run folder, I am told which one is skipped and can still look inside."""
    (app_runs / "20260101-000000-abcdef").mkdir()
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: a_drawn_seven())
    at = open_page("pages/inside.py")
    assert at.warning and "20260101-000000-abcdef" in at.warning[0].value
    assert prediction(at) is not None and not at.exception



def give_a_branching_model(run: runs.RunInfo, tmp_path) -> None:
    """Replace `run`'s model with a real Functional one whose two branches merge: not a stack of layers."""
    import keras

    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    merged = keras.layers.Concatenate()([keras.layers.Dense(4)(flat), keras.layers.Dense(4)(flat)])
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(merged)).save(tmp_path / "branchy.keras")
    shutil.copy(tmp_path / "branchy.keras", run.model_path)

def test_a_model_that_cannot_be_loaded_or_introspected_gets_a_clear_error(bundled_run, app_runs, tmp_path):
    """As a user who picks a broken or imported model, I get a message naming the problem, never a traceback."""
    source = runs.list_runs(app_runs, include_bundled=False)[0][0]
    give_a_branching_model(source, tmp_path)
    at = open_page("pages/inside.py")
    at.selectbox(key=ui_inside.RUN_KEY).set_value(source.run_id).run()
    assert at.error and "Inside cannot look into this model" in at.error[0].value
    assert "Missing: a Sequential model" in at.error[0].value and not at.exception

    source.model_path.write_bytes(b"not a keras file")
    at.run()
    assert at.error and "cannot be loaded" in at.error[0].value and not at.exception


def test_a_model_that_does_not_fit_its_runs_images_gets_a_clear_error(bundled_run, app_runs, monkeypatch):
    """As a user whose run folder holds a model for other images, I get a message, never a traceback."""
    from lib.models import architectures

    source = runs.list_runs(app_runs, include_bundled=False)[0][0]
    layers = [{"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}]
    architectures.build_model(layers, (20, 20, 1), 10).save(source.model_path)
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: a_drawn_seven())
    at = open_page("pages/inside.py")
    at.selectbox(key=ui_inside.RUN_KEY).set_value(source.run_id).run()
    assert at.error and "does not take its own dataset's images" in at.error[0].value and not at.exception
    at.session_state["inside_tabs"] = "Mistakes"
    at.run()
    assert at.error and "does not take its own dataset's images" in at.error[0].value and not at.exception


def test_a_diverged_run_is_looked_into_under_a_warning(app_runs, monkeypatch):
    """As a learner whose run diverged, I can follow a drawing through it, under the warning that its answers
    mean nothing, why and what to change; with NaN weights there is nothing to show, and no traceback."""
    weak = run_named(app_runs, WEAK_RUN)
    reason = mark_diverged(weak)
    monkeypatch.setattr(ui_draw, "canvas", lambda stroke_width, key=None: a_drawn_seven())
    at = open_page("pages/inside.py")
    at.selectbox(key=ui_inside.RUN_KEY).set_value(weak.run_id).run()
    assert f"{WEAK_RUN} is broken: its training diverged, so its answers mean nothing" in at.error[0].value
    assert reason in at.error[0].value
    assert prediction(at) == expected_answer(weak, inference.prepare_image(weak, a_drawn_seven()))

    mark_diverged(weak, nan_weights=True)
    at.run()
    assert not at.exception
    assert reason in at.error[0].value and "no answer to show at all" in at.error[0].value
    assert prediction(at) is None
