"""Inside the network: known answers for activations, saliency, learned weights and the 2-D maps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lib.data import drawing, synthdigits
from lib.models import architectures, inference, inside
from lib.store import runs
from lib.viz import inside_charts

PROJECT = Path(__file__).resolve().parents[2]

REGION = (slice(5, 10), slice(12, 18))  # rows 5..9, columns 12..17
REGION_BOX = [5, 12, 9, 17]
TARGET = 3


def zoo_model(name):
    layers = architectures.get_architecture(name).layer_list()
    return architectures.build_model(layers, (28, 28, 1), 10), layers


@pytest.mark.parametrize("name", ["softmax", "mlp-128", "cnn-tf-tutorial", "cnn-best"])
def test_activation_shapes_equal_each_layers_output_shape(name):
    model, layers = zoo_model(name)
    rows = architectures.summarize(layers, (28, 28, 1), 10)
    image = np.random.default_rng(0).random((28, 28), dtype=np.float32)
    analysis = inside.analyze(model, image)
    assert [a.shape for a in analysis.activations] == [row.output_shape for row in rows]
    assert [info.output_shape for info in analysis.layers] == [row.output_shape for row in rows]
    assert [info.params for info in analysis.layers] == [row.params for row in rows]
    assert [info.type for info in analysis.layers] == [row.type for row in rows]
    np.testing.assert_allclose(analysis.activations[-1], analysis.probs)
    np.testing.assert_allclose(analysis.probs, np.asarray(model(image[None, ..., None]))[0], rtol=1e-5, atol=1e-6)


def region_mlp():
    """Flatten -> Dense(10, softmax) where only REGION's pixels count, and only towards class TARGET."""
    model = architectures.build_model([{"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}],
                                      (28, 28, 1), 10)
    kernel = np.zeros((28, 28, 10), dtype=np.float32)
    kernel[REGION[0], REGION[1], TARGET] = 1.0
    model.layers[-1].set_weights([kernel.reshape(784, 10), np.zeros(10, dtype=np.float32)])
    return model


def region_cnn():
    """Conv 1x1 with two channels: channel 0 fires on bright ink (> 0.5), channel 1 on any ink.
    The Dense layer reads only channel 0, everywhere, towards class TARGET. An image with bright
    ink in REGION and faint ink elsewhere: only REGION matters."""
    layers = [{"type": "Conv2D", "filters": 2, "kernel_size": 1, "activation": "relu"}, {"type": "Flatten"},
              {"type": "Dense", "units": 10, "activation": "softmax"}]
    model = architectures.build_model(layers, (28, 28, 1), 10)
    model.layers[0].set_weights([np.array([1.0, 1.0], dtype=np.float32).reshape(1, 1, 1, 2),
                                 np.array([-0.5, 0.0], dtype=np.float32)])
    kernel = np.zeros((28, 28, 2, 10), dtype=np.float32)
    kernel[:, :, 0, TARGET] = 1.0
    model.layers[-1].set_weights([kernel.reshape(-1, 10), np.zeros(10, dtype=np.float32)])
    return model


def two_region_image():
    image = np.zeros((28, 28), dtype=np.float32)
    image[18:25, 3:9] = 0.4  # faint ink the CNN ignores
    image[REGION] = 1.0
    return image


def test_mlp_saliency_puts_its_mass_on_the_only_region_that_matters():
    image = np.full((28, 28), 0.5, dtype=np.float32)  # ink everywhere, but only REGION is read
    analysis = inside.analyze(region_mlp(), image)
    assert analysis.predicted == TARGET and analysis.grad_cam is None
    assert analysis.saliency_method == "gradient x input"
    inside_mass = analysis.saliency[REGION].sum()
    assert inside_mass == pytest.approx(analysis.saliency.sum()) and inside_mass > 0
    box = inside.saliency_box(analysis.saliency)
    assert REGION_BOX[0] <= box[0] <= box[2] <= REGION_BOX[2]
    assert REGION_BOX[1] <= box[1] <= box[3] <= REGION_BOX[3]
    assert inside.saliency_box(analysis.saliency, share=1.0) == REGION_BOX


def test_grad_cam_and_gradient_x_input_find_the_region_a_cnn_reads():
    analysis = inside.analyze(region_cnn(), two_region_image())
    assert analysis.predicted == TARGET and analysis.saliency_method == "Grad-CAM x input"
    assert analysis.saliency_layer == "conv2d_1" and analysis.saliency_resolution == (28, 28)
    for saliency in (analysis.saliency, analysis.grad_cam, analysis.gradient_x_input):
        assert saliency[REGION].sum() / saliency.sum() > 0.95
        box = inside.saliency_box(saliency)
        assert REGION_BOX[0] - 1 <= box[0] <= box[2] <= REGION_BOX[2] + 1
        assert REGION_BOX[1] - 1 <= box[1] <= box[3] <= REGION_BOX[3] + 1


def test_saliency_for_a_chosen_class_differs_from_the_predicted_one():
    model = region_mlp()
    image = np.full((28, 28), 0.5, dtype=np.float32)
    other = inside.analyze(model, image, target=7)
    assert other.target == 7 and other.predicted == TARGET
    assert other.saliency.sum() == 0  # nothing in the image speaks for class 7
    assert inside.saliency_box(other.saliency) is None
    with pytest.raises(ValueError, match="Class 12 does not exist"):
        inside.analyze(model, image, target=12)


def test_raw_pixel_runs_get_pixels_scaled_to_0_255():
    model = region_mlp()
    image = np.full((28, 28), 0.5, dtype=np.float32)
    raw = inside.analyze(model, image, normalize=False)
    unit = inside.analyze(model, image, normalize=True)
    assert raw.activations[0].max() == pytest.approx(127.5)
    assert unit.activations[0].max() == pytest.approx(0.5)


def test_saliency_box_bounds_the_top_share_of_the_mass():
    saliency = np.zeros((28, 28))
    saliency[2, 3] = 100.0  # holds far more than 10%
    saliency[20:25, 20:25] = 1.0
    assert inside.saliency_box(saliency) == [2, 3, 2, 3]
    assert inside.saliency_box(saliency, share=1.0) == [2, 3, 24, 24]
    assert inside.saliency_box(np.zeros((28, 28))) is None
    with pytest.raises(ValueError, match="2-D"):
        inside.saliency_box(np.zeros((2, 28, 28)))


def test_batch_analysis_matches_one_at_a_time():
    model, _ = zoo_model("cnn-lenet-ish")
    images = np.random.default_rng(1).random((3, 28, 28), dtype=np.float32)
    batch = inside.analyze_batch(model, images)
    for image, together in zip(images, batch):
        alone = inside.analyze(model, image)
        np.testing.assert_allclose(together.probs, alone.probs, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(together.grad_cam, alone.grad_cam, rtol=1e-3, atol=1e-6)
    assert inside.layer_chain(model) is inside.layer_chain(model)  # cached on the model


def test_grad_cam_explains_the_last_conv_block_of_at_least_a_quarter_of_the_input_side():
    model, _ = zoo_model("cnn-best")
    layers = inside.layer_chain(model)
    index = inside.grad_cam_index(layers, (28, 28))
    assert layers[index].type == "Activation" and layers[index].output_shape == (7, 7, 128)
    assert layers[inside.grad_cam_conv_index(layers, (28, 28))].name == "conv2d_9"
    tutorial, _ = zoo_model("cnn-tf-tutorial")  # convolutions at 26x26, 11x11 and 3x3
    layers = inside.layer_chain(tutorial)
    assert layers[inside.grad_cam_conv_index(layers, (28, 28))].output_shape == (11, 11, 64)
    analysis = inside.analyze(tutorial, np.random.default_rng(0).random((28, 28), dtype=np.float32))
    assert analysis.saliency_source == "Grad-CAM on conv2d_3 (11x11) x input (28x28)"
    assert analysis.grad_cam_source == "Grad-CAM on conv2d_3 (11x11)"
    assert inside.grad_cam_index(inside.layer_chain(region_mlp()), (28, 28)) is None
    mlp = inside.analyze(region_mlp(), two_region_image())
    assert mlp.saliency_layer is None and mlp.saliency_source == "gradient x input (28x28)"


# ---------------------------------------------------------------- saliency on hand-drawn digits

DRAWN_PER_CLASS = 5
INK = 0.2  # a pixel this dark (MNIST scale) is ink
MIN_BOX_ON_INK = 0.5  # at least half of every box is on (or touches) a stroke; lowest of 500 drawings: 0.53
MIN_CLASS_BOX_ON_INK = 0.75  # a class's boxes lie mostly on its strokes; lowest of 500 drawings per class: 0.85
MIN_MASS_ON_INK = 0.95  # the map itself is on the strokes


def near_ink(image01):
    """Pixels that are ink or touch it (8-neighbourhood)."""
    return ndimage.binary_dilation(image01 > INK, structure=np.ones((3, 3), dtype=bool))


def box_on_ink(image01, box) -> float:
    """Share of the box's pixels that are ink or touch it."""
    top, left, bottom, right = box
    return float(near_ink(image01)[top:bottom + 1, left:right + 1].mean())


@pytest.fixture(scope="module")
def bundled_model():
    run = runs.get_run(runs.BUNDLED_ID)
    return run, runs.load_model(run)


def test_saliency_box_lies_on_the_ink_of_hand_drawn_digits_of_every_class(bundled_model):
    """The bundled CNN's saliency points at strokes. Grad-CAM alone (7x7, blown up) put the box
    beside hand-drawn 1s, 2s and 3s (on average only 21-35% of their boxes touched ink, some none)."""
    run, model = bundled_model
    canvases, labels = synthdigits.digit_set(DRAWN_PER_CLASS, seed=0)
    images = np.stack([drawing.preprocess_image(canvas) for canvas in canvases])  # as Draw does
    analyses = inside.analyze_batch(model, images, normalize=run.normalize)
    assert np.mean([a.predicted for a in analyses] == labels) >= 0.9  # drawings the model reads
    on_ink = np.array([box_on_ink(image, inside.saliency_box(a.saliency)) for image, a in zip(images, analyses)])
    for image, analysis, share in zip(images, analyses, on_ink):
        assert share >= MIN_BOX_ON_INK
        assert analysis.saliency[near_ink(image)].sum() >= MIN_MASS_ON_INK * analysis.saliency.sum()
    class_means = [on_ink[labels == k].mean() for k in range(10)]
    assert min(class_means) >= MIN_CLASS_BOX_ON_INK, np.round(class_means, 2)


def run_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run([sys.executable, "-m", "lib", *args], capture_output=True, text=True, cwd=PROJECT,
                          env=env, timeout=300)


def test_cli_inside_json_names_the_layer_and_boxes_the_ink_of_a_drawing_of_each_class(tmp_path, bundled_model):
    run, _ = bundled_model
    canvases, labels = synthdigits.digit_set(1, seed=0)
    files = []
    for canvas, label in zip(canvases, labels):
        files.append(tmp_path / f"drawn-{label}.png")
        Image.fromarray(canvas).save(files[-1])  # RGBA with a transparent background, as the canvas gives
    done = run_cli("inside", "--model", "default", *map(str, files), "--json")
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert [report["file"] for report in reports] == list(map(str, files))
    for path, label, report in zip(files, labels, reports):
        assert {"layers", "label", "confidence", "saliency_method", "saliency_box"} <= set(report)
        assert report["label"] == label and len(report["layers"]) == 17
        assert report["saliency_method"] == "Grad-CAM x input"
        assert report["saliency_layer"] == "conv2d_9" and report["saliency_resolution"] == [7, 7]
        image01 = inference.prepare_image(run, drawing.load_image_file(path))
        assert box_on_ink(image01, report["saliency_box"]) >= MIN_BOX_ON_INK, (label, report["saliency_box"])


def test_softmax_regression_weights_are_ten_class_templates():
    weights = inside.first_layer_weights(region_mlp(), class_names=list("0123456789"))
    assert weights.kind == "class_templates" and weights.images.shape == (10, 28, 28)
    assert weights.images[TARGET][REGION].min() == 1.0 and weights.images[TARGET].sum() == 30
    assert weights.titles[TARGET] == "class 3"


def test_dense_first_units_and_conv_filters_become_images():
    mlp, _ = zoo_model("mlp-128")
    units = inside.first_layer_weights(mlp)
    assert units.kind == "unit_weights" and units.images.shape == (64, 28, 28)
    np.testing.assert_allclose(units.images[5], np.asarray(mlp.layers[1].kernel)[:, 5].reshape(28, 28))
    cnn, _ = zoo_model("cnn-tf-tutorial")
    filters = inside.first_layer_weights(cnn)
    assert filters.kind == "conv_filters" and filters.images.shape == (32, 3, 3)
    np.testing.assert_allclose(filters.images[7], np.asarray(cnn.layers[0].kernel)[:, :, 0, 7])


def test_non_sequential_model_raises_a_clear_error():
    import keras

    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    merged = keras.layers.Concatenate()([keras.layers.Dense(4)(flat), keras.layers.Dense(4)(flat)])
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(merged))
    with pytest.raises(inside.NotIntrospectable, match="Missing: a Sequential model"):
        inside.analyze(model, np.zeros((28, 28), dtype=np.float32))


def test_non_image_input_raises_a_clear_error():
    import keras

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    with pytest.raises(inside.NotIntrospectable, match="Missing: an image input"):
        inside.layer_chain(model)


def clustered_features(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = rng.normal(scale=10, size=(3, 20))
    return centres[labels] + rng.normal(size=(n, 20)), labels


def test_pca_shape_determinism_and_separation():
    features, labels = clustered_features()
    coords = inside.pca_2d(features)
    assert coords.shape == (300, 2)
    np.testing.assert_array_equal(coords, inside.pca_2d(features.copy()))
    order = np.random.default_rng(1).permutation(len(features))
    np.testing.assert_allclose(inside.pca_2d(features[order]), coords[order], atol=1e-3)  # signs fixed, not arbitrary
    centres = np.stack([coords[labels == k].mean(axis=0) for k in range(3)])
    spread = max(coords[labels == k].std(axis=0).max() for k in range(3))
    assert np.linalg.norm(centres[0] - centres[1]) > 3 * spread


def test_tsne_shape_and_determinism_with_a_seed():
    features, labels = clustered_features(150)
    first = inside.tsne_2d(features, seed=3)
    assert first.shape == (150, 2)
    np.testing.assert_array_equal(first, inside.tsne_2d(features, seed=3))
    centres = np.stack([first[labels == k].mean(axis=0) for k in range(3)])
    assert np.linalg.norm(centres[0] - centres[1]) > 2 * first[labels == 0].std(axis=0).max()


def test_embedding_map_and_misclassified_gallery_on_test_images():
    model, _ = zoo_model("mlp-128")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=60)
    progress = []
    emb = inside.embedding_map(model, images, labels, normalize=True, count=40, on_progress=progress.append)
    assert emb.coords.shape == (40, 2) and emb.method == "PCA" and emb.layer_name == model.layers[-2].name
    assert len(set(emb.indices)) == 40 and (np.diff(emb.indices) > 0).all()
    np.testing.assert_array_equal(emb.labels, labels[emb.indices])
    assert progress[-1] == 1.0 and progress == sorted(progress)
    features, probs = inside.penultimate_features(model, images[:5], normalize=True)
    assert features.shape == (5, 128) and probs.shape == (5, 10)
    gallery = inside.misclassified(model, images, labels, normalize=True, limit=4)
    assert len(gallery) == 4
    for item in gallery:
        assert item.predicted != item.label and item.top3[0][0] == item.predicted
        assert item.saliency.shape == (28, 28)


# ---------------------------------------------------------------- charts


def test_feature_maps_are_one_heatmap_with_every_channel():
    activation = np.arange(4 * 4 * 6, dtype=np.float32).reshape(4, 4, 6)
    fig = inside_charts.feature_maps_figure(activation, "Conv2D · 4 x 4 x 6")
    assert len(fig.data) == 1
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isfinite(z).sum() == 4 * 4 * 6
    assert fig.layout.title.text == "Conv2D · 4 x 4 x 6"
    assert "channel 5" in set(np.asarray(fig.data[0].customdata).ravel())


def test_tile_places_each_image_with_gaps():
    images = np.stack([np.full((2, 2), k, dtype=np.float32) for k in range(3)])
    mosaic, which = inside_charts.tile(images, cols=2)
    assert mosaic.shape == (5, 5)
    assert mosaic[0, 3] == 1 and mosaic[3, 0] == 2 and np.isnan(mosaic[2, 2]) and np.isnan(mosaic[4, 4])
    assert which[3, 1] == 2 and which[2, 0] == -1


def test_weight_images_use_a_signed_scale_with_titles():
    images = np.stack([np.eye(3), -np.eye(3) * 5])
    fig = inside_charts.weight_images_figure(images, ["filter 0", "filter 1"], "First-layer filters")
    assert fig.data[0].zmin == -1 and fig.data[0].zmax == 1
    assert np.nanmin(np.asarray(fig.data[0].z, dtype=float)) == -1
    assert {"filter 0", "filter 1"} <= set(np.asarray(fig.data[0].customdata).ravel())


def test_dense_bars_and_saliency_overlay():
    bars = inside_charts.dense_figure(np.arange(600.0), "Dense · 600", max_bars=512)
    assert len(bars.data[0].y) == 512 and "first 512 of 600" in bars.layout.title.subtitle.text
    saliency = np.zeros((28, 28))
    saliency[5:10, 12:18] = 1.0
    fig = inside_charts.saliency_figure(np.zeros((28, 28)), saliency, "Saliency", box=REGION_BOX,
                                        subtitle="Grad-CAM on conv2d_9 (7x7) x input (28x28)")
    assert fig.layout.title.subtitle.text == "Grad-CAM on conv2d_9 (7x7) x input (28x28)"
    assert [trace.name for trace in fig.data] == ["input", "saliency"]
    assert np.asarray(fig.data[1].z).max() == 1.0
    rect = fig.layout.shapes[0]
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (11.5, 17.5, 4.5, 9.5)
    rgb = inside_charts.overlay_rgb(np.zeros((28, 28)), saliency, scale=2)
    assert rgb.shape == (56, 56, 3) and rgb[12, 26, 0] > 150 and rgb[0, 0].max() == 0


def test_embedding_figure_colours_by_class_and_marks_mistakes():
    coords = np.random.default_rng(0).normal(size=(6, 2))
    labels, predicted = np.array([0, 1, 2, 0, 1, 2]), np.array([0, 1, 2, 1, 1, 2])
    fig = inside_charts.embedding_figure(coords, labels, predicted, ["a", "b", "c"], indices=np.arange(100, 106))
    assert [trace.name for trace in fig.data] == ["a", "b", "c", "misclassified (1)"]
    assert list(fig.data[-1].customdata[0]) == ["103", "a", "b"]
    assert fig.data[-1].marker.symbol == "x"
    assert sum(len(trace.x) for trace in fig.data[:3]) == 6
