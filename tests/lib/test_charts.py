"""Chart builders: traces, values and layout as the pages and learners rely on them."""

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from lib.viz import charts

DIGITS = [str(digit) for digit in range(10)]
EPOCHS = [
    {"epoch": 1, "loss": 0.50, "accuracy": 0.80, "val_loss": 0.40, "val_accuracy": 0.85},
    {"epoch": 2, "loss": 0.30, "accuracy": 0.90, "val_loss": 0.30, "val_accuracy": 0.88},
    {"epoch": 3, "loss": 0.20, "accuracy": 0.93, "val_loss": 0.28, "val_accuracy": 0.90},
]


def batches_for(epochs: int, per_epoch: int, metric: str = "accuracy") -> list[dict]:
    return [
        {
            "epoch_float": epoch + (step + 1) / per_epoch,
            metric: 0.5 + 0.4 * (epoch * per_epoch + step) / (epochs * per_epoch),
        }
        for epoch in range(epochs)
        for step in range(per_epoch)
    ]


def trace(fig: go.Figure, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, f"expected one trace named {name!r}, got {[t.name for t in fig.data]}"
    return matches[0]


def assert_empty(fig: go.Figure, message: str = charts.EMPTY_MESSAGE) -> None:
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations] == [message]
    fig.to_json()


# history_figure


def test_history_figure_draws_batches_train_epochs_and_validation_in_percent():
    fig = charts.history_figure(batches_for(3, 10), EPOCHS, metric="accuracy", total_epochs=5)

    assert [t.name for t in fig.data] == ["train (batches)", "train (epoch)", "validation"]
    validation = trace(fig, "validation")
    np.testing.assert_array_equal(validation.x, [1, 2, 3])
    np.testing.assert_allclose(validation.y, [85.0, 88.0, 90.0])
    np.testing.assert_allclose(trace(fig, "train (epoch)").y, [80.0, 90.0, 93.0])
    assert len(trace(fig, "train (batches)").x) == 30
    assert fig.layout.yaxis.ticksuffix == "%"
    assert fig.layout.xaxis.title.text == "epoch"
    assert tuple(fig.layout.xaxis.range) == (0, 5)


def test_history_figure_colours_and_dashes_separate_train_from_validation():
    fig = charts.history_figure(batches_for(3, 10), EPOCHS)

    assert trace(fig, "train (batches)").line.color == charts.TRAIN_COLOR
    assert trace(fig, "train (epoch)").marker.color == charts.TRAIN_COLOR
    validation = trace(fig, "validation")
    assert validation.line.color == charts.VAL_COLOR
    assert validation.line.dash == charts.VAL_DASH != trace(fig, "train (epoch)").line.dash
    assert charts.TRAIN_COLOR != charts.VAL_COLOR


def test_history_figure_loss_is_plain_numbers():
    fig = charts.history_figure([], EPOCHS, metric="loss")

    np.testing.assert_allclose(trace(fig, "train (epoch)").y, [0.5, 0.3, 0.2])
    np.testing.assert_allclose(trace(fig, "validation").y, [0.4, 0.3, 0.28])
    assert fig.layout.yaxis.ticksuffix is None
    assert "loss" in fig.layout.yaxis.title.text


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_history_figure_skips_missing_validation_instead_of_drawing_zero(missing):
    epochs = [dict(row) for row in EPOCHS]
    epochs[1]["val_accuracy"] = missing
    epochs[1]["val_loss"] = missing

    fig = charts.history_figure([], epochs, metric="accuracy")

    validation = trace(fig, "validation")
    np.testing.assert_array_equal(validation.x, [1, 3])
    np.testing.assert_allclose(validation.y, [85.0, 90.0])
    np.testing.assert_array_equal(trace(fig, "train (epoch)").x, [1, 2, 3])


def test_history_figure_without_validation_columns_has_no_validation_trace():
    epochs = [{"epoch": 1, "loss": 0.5, "accuracy": 0.8}, {"epoch": 2, "loss": 0.3, "accuracy": 0.9}]

    fig = charts.history_figure(pd.DataFrame(epochs), pd.DataFrame(epochs))

    assert [t.name for t in fig.data] == ["train (epoch)"]


def test_history_figure_batches_only_during_first_epoch():
    fig = charts.history_figure(batches_for(1, 5)[:3], [], total_epochs=4)

    assert [t.name for t in fig.data] == ["train (batches)"]
    np.testing.assert_allclose(trace(fig, "train (batches)").x, [0.2, 0.4, 0.6])
    assert tuple(fig.layout.xaxis.range) == (0, 4)


def test_history_figure_downsamples_many_batches_evenly_keeping_the_ends():
    batches = batches_for(10, 600)  # 6000 points

    fig = charts.history_figure(batches, [], total_epochs=10)

    x = np.asarray(trace(fig, "train (batches)").x)
    assert len(x) == charts.MAX_BATCH_POINTS
    assert x[0] == batches[0]["epoch_float"]
    assert x[-1] == batches[-1]["epoch_float"]
    assert np.all(np.diff(x) > 0)
    np.testing.assert_allclose(np.diff(x), np.diff(x).mean(), rtol=0.6)  # even spacing


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_refresh_batch_points_gives_the_figure_a_rebuild_would(metric):
    """The live chart updates in place: same picture as building it again with the new points."""
    old = batches_for(3, 10, metric)[:12]
    new = batches_for(3, 10, metric)[:25]
    fig = charts.history_figure(old, EPOCHS[:1], metric=metric, total_epochs=3)

    assert charts.refresh_batch_points(fig, new, metric=metric)

    rebuilt = charts.history_figure(new, EPOCHS[:1], metric=metric, total_epochs=3)
    assert json.loads(fig.to_json()) == json.loads(rebuilt.to_json())


def test_refresh_batch_points_asks_for_a_rebuild_without_a_batch_trace():
    no_batches = charts.history_figure([], EPOCHS, total_epochs=5)
    assert not charts.refresh_batch_points(no_batches, batches_for(1, 5), metric="accuracy")
    with_batches = charts.history_figure(batches_for(1, 5), [], total_epochs=5)
    assert not charts.refresh_batch_points(with_batches, [], metric="accuracy")


def test_history_figure_axis_covers_seen_epochs_when_total_unknown():
    fig = charts.history_figure(batches_for(2, 4), EPOCHS[:2])

    assert tuple(fig.layout.xaxis.range) == (0, 2)


@pytest.mark.parametrize("batches, epochs", [([], []), (None, None), (pd.DataFrame(), pd.DataFrame())])
def test_history_figure_empty_input_says_no_data_yet(batches, epochs):
    assert_empty(charts.history_figure(batches, epochs, total_epochs=5))


def test_history_figure_rejects_unknown_metric():
    with pytest.raises(ValueError, match="Unknown metric"):
        charts.history_figure([], EPOCHS, metric="f1")


def test_history_figure_from_csv_frame_draws_epoch_lines():
    fig = charts.history_figure_from_csv_frame(pd.DataFrame(EPOCHS), "accuracy")

    assert [t.name for t in fig.data] == ["train (epoch)", "validation"]
    assert trace(fig, "train (epoch)").mode == "lines+markers"
    np.testing.assert_allclose(trace(fig, "validation").y, [85.0, 88.0, 90.0])


OVERFITTING = pd.DataFrame(
    {
        "epoch": [1, 2, 3, 4, 5],
        "loss": [0.50, 0.30, 0.20, 0.12, 0.08],
        "accuracy": [0.80, 0.90, 0.93, 0.96, 0.98],
        "val_loss": [0.40, 0.30, 0.28, 0.33, 0.40],
        "val_accuracy": [0.85, 0.88, 0.90, 0.89, 0.885],
    }
)


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_overfitting_epoch_finds_best_validation_epoch_when_training_kept_improving(metric):
    assert charts.overfitting_epoch(OVERFITTING, metric=metric) == 3


def test_overfitting_epoch_is_none_while_validation_still_improves_or_is_missing():
    assert charts.overfitting_epoch(pd.DataFrame(EPOCHS)) is None
    assert charts.overfitting_epoch(OVERFITTING.iloc[:4]) is None  # only one epoch past the best
    assert charts.overfitting_epoch(OVERFITTING.drop(columns=["val_accuracy"])) is None
    assert charts.overfitting_epoch([]) is None


def test_history_figure_marks_overfitting_only_when_it_happens():
    overfit = charts.history_figure_from_csv_frame(OVERFITTING, "loss")
    healthy = charts.history_figure_from_csv_frame(pd.DataFrame(EPOCHS), "loss")

    assert [shape.x0 for shape in overfit.layout.shapes] == [3]
    assert any("overfitting" in a.text for a in overfit.layout.annotations)
    assert not healthy.layout.shapes and not healthy.layout.annotations


# probability_figure


def test_probability_figure_bars_in_percent_with_argmax_highlighted():
    probs = np.array([0.01, 0.02, 0.70, 0.20, 0.01, 0.01, 0.01, 0.02, 0.01, 0.01])

    fig = charts.probability_figure(probs, DIGITS)

    bar = fig.data[0]
    np.testing.assert_allclose(bar.x, probs * 100)
    assert list(bar.y) == DIGITS
    colors = list(bar.marker.color)
    assert colors[2] == charts.PREDICTED_COLOR
    assert all(color != colors[2] for i, color in enumerate(colors) if i != 2)
    assert bar.text[2] == "70.0%"
    assert tuple(fig.layout.xaxis.range) == (0, 100)
    assert fig.layout.yaxis.autorange == "reversed"  # class 0 on top
    assert "2" in fig.layout.title.text


def test_probability_figure_marks_a_different_true_label():
    probs = np.array([0.1, 0.6, 0.3])

    fig = charts.probability_figure(probs, ["a", "b", "c"], true_label=2)

    assert list(fig.data[0].marker.color) == [charts.MUTED_COLOR, charts.PREDICTED_COLOR, charts.TRUE_COLOR]
    assert "true: c" in fig.layout.title.text


def test_probability_figure_correct_prediction_keeps_prediction_colour():
    fig = charts.probability_figure([[0.1, 0.6, 0.3]], ["a", "b", "c"], true_label=1)

    assert list(fig.data[0].marker.color) == [charts.MUTED_COLOR, charts.PREDICTED_COLOR, charts.MUTED_COLOR]
    assert "correct" in fig.layout.title.text


def test_probability_figure_empty_and_mismatched_input():
    assert_empty(charts.probability_figure(np.array([]), DIGITS))
    with pytest.raises(ValueError, match="class_names"):
        charts.probability_figure(np.ones(3) / 3, DIGITS)


# confusion_figure and confused_pairs

MATRIX = np.array([[50, 0, 3], [2, 40, 7], [0, 5, 60]])


def test_confusion_figure_counts_true_rows_top_down_predicted_columns():
    fig = charts.confusion_figure(MATRIX.tolist(), ["a", "b", "c"])

    heatmap = fig.data[0]
    np.testing.assert_array_equal(heatmap.z, MATRIX)
    assert list(heatmap.y) == ["a", "b", "c"] and list(heatmap.x) == ["a", "b", "c"]
    assert fig.layout.yaxis.autorange == "reversed"  # row 0 (true class 0) at the top
    assert fig.layout.yaxis.title.text == "true class"
    assert fig.layout.xaxis.title.text == "predicted class"
    assert "%{z" in heatmap.texttemplate
    assert "counts" in fig.layout.title.text


def test_confusion_figure_normalized_shows_row_percentages_and_keeps_counts_for_hover():
    matrix = np.array([[3, 1], [0, 0]])  # an empty row must not divide by zero

    fig = charts.confusion_figure(matrix, ["0", "1"], normalize=True)

    heatmap = fig.data[0]
    np.testing.assert_allclose(heatmap.z, [[75.0, 25.0], [0.0, 0.0]])
    np.testing.assert_array_equal(heatmap.customdata, matrix)
    assert heatmap.zmax == 100
    assert "%" in fig.layout.title.text


def test_confusion_figure_empty_and_invalid_input():
    assert_empty(charts.confusion_figure([], DIGITS))
    with pytest.raises(ValueError, match="square"):
        charts.confusion_figure(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="class_names"):
        charts.confusion_figure(np.zeros((2, 2)), ["a", "b", "c"])


def test_confused_pairs_largest_off_diagonal_first_without_zeros():
    pairs = charts.confused_pairs(MATRIX, ["a", "b", "c"], top=10)

    assert pairs == [("b", "c", 7), ("c", "b", 5), ("a", "c", 3), ("b", "a", 2)]
    assert all(type(count) is int for _, _, count in pairs)


def test_confused_pairs_top_limit_ties_and_empty():
    matrix = np.array([[9, 2, 2], [2, 9, 0], [0, 0, 9]])

    assert charts.confused_pairs(matrix, ["a", "b", "c"], top=2) == [("a", "b", 2), ("a", "c", 2)]
    assert charts.confused_pairs(np.diag([5, 5]), ["a", "b"]) == []
    assert charts.confused_pairs([], []) == []


# per_class_accuracy_figure


def test_per_class_accuracy_figure_percent_bars_with_worst_highlighted():
    fig = charts.per_class_accuracy_figure(np.array([0.99, 0.95, 0.98]), ["a", "b", "c"])

    bar = fig.data[0]
    np.testing.assert_allclose(bar.y, [99.0, 95.0, 98.0])
    colors = list(bar.marker.color)
    assert colors[1] == charts.WORST_COLOR
    assert colors[0] == colors[2] != colors[1]
    assert "worst: b (95.0%)" in fig.layout.title.subtitle.text
    assert fig.layout.shapes[0].y0 == pytest.approx(np.mean([99.0, 95.0, 98.0]))


def test_per_class_accuracy_figure_missing_class_has_no_bar_not_zero():
    fig = charts.per_class_accuracy_figure([0.9, None, float("nan"), 0.8], list("abcd"))

    assert list(fig.data[0].y) == [90.0, None, None, 80.0]
    assert fig.data[0].marker.color[3] == charts.WORST_COLOR
    fig.to_json()


def test_per_class_accuracy_figure_empty():
    assert_empty(charts.per_class_accuracy_figure([], []))


# class_distribution_figure


def test_class_distribution_figure_grouped_train_and_test():
    fig = charts.class_distribution_figure([60, 30, 10], [10, 5, 5], ["a", "b", "c"])

    assert [t.name for t in fig.data] == ["train", "test"]
    assert fig.layout.barmode == "group"
    np.testing.assert_array_equal(trace(fig, "train").y, [60, 30, 10])
    np.testing.assert_allclose(trace(fig, "test").customdata, [50.0, 25.0, 25.0])  # share of split in %
    assert trace(fig, "train").marker.color == charts.TRAIN_COLOR


def test_class_distribution_figure_train_only_and_empty():
    assert [t.name for t in charts.class_distribution_figure([1, 2], None, ["a", "b"]).data] == ["train"]
    assert_empty(charts.class_distribution_figure([], None, []))


# pixel_histogram_figure


def test_pixel_histogram_figure_raw_uint8_counts_every_pixel_on_0_255():
    pixels = np.zeros((4, 28, 28), dtype=np.uint8)
    pixels[:, :5, :] = 255

    fig = charts.pixel_histogram_figure(pixels, title="Raw pixels")

    bar = fig.data[0]
    assert bar.y.sum() == pixels.size
    assert bar.y[0] == 4 * 23 * 28 and bar.y[-1] == 4 * 5 * 28
    assert fig.layout.xaxis.range[0] == 0 and fig.layout.xaxis.range[1] >= 255
    assert "0–255" in fig.layout.xaxis.title.text
    assert fig.layout.title.text == "Raw pixels"
    assert "max 255" in fig.layout.title.subtitle.text


def test_pixel_histogram_figure_normalized_floats_on_0_1_with_log_option():
    pixels = np.linspace(0, 1, 1000)

    fig = charts.pixel_histogram_figure(pixels, title="Normalized", log_y=True)

    assert tuple(fig.layout.xaxis.range) == (0, 1)
    assert fig.data[0].y.sum() == 1000
    assert fig.layout.yaxis.type == "log"


def test_pixel_histogram_figure_ignores_nan_and_handles_empty():
    fig = charts.pixel_histogram_figure(np.array([0.0, np.nan, 1.0]), title="t")

    assert fig.data[0].y.sum() == 2
    assert_empty(charts.pixel_histogram_figure(np.array([]), title="t"))


# image_grid_figure


def test_image_grid_figure_one_heatmap_per_image_with_coloured_captions():
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    titles = [f"true {i} · pred {i}" for i in range(7)]
    colors = [charts.WRONG_COLOR if i == 3 else charts.RIGHT_COLOR for i in range(7)]

    fig = charts.image_grid_figure(images, titles, cols=3, title_colors=colors)

    assert len(fig.data) == 7 and all(t.type == "heatmap" for t in fig.data)
    np.testing.assert_array_equal(fig.data[4].z, images[4])
    assert [a.text for a in fig.layout.annotations] == titles
    assert [a.font.color for a in fig.layout.annotations] == colors
    assert fig.layout.yaxis.autorange == "reversed"  # image row 0 at the top
    assert fig.layout.yaxis7.scaleanchor == "x7"  # square pixels
    assert fig.layout.xaxis.visible is False
    # 3 rows of 3 columns: the 7th image starts the third row.
    assert fig.layout.xaxis7.domain == fig.layout.xaxis.domain
    assert fig.layout.yaxis7.domain[1] < fig.layout.yaxis4.domain[0]


def test_image_grid_figure_scales_unit_floats_with_channel_axis_to_0_255():
    images = np.zeros((2, 4, 4, 1), dtype=np.float32)
    images[0, 1, 2, 0] = 1.0
    images[1, 0, 0, 0] = 0.5

    fig = charts.image_grid_figure(images, ["a", "b"])

    assert fig.data[0].z[1][2] == 255 and fig.data[1].z[0][0] == 128
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0, 255)
    fig.to_json()


def test_image_grid_figure_empty_and_mismatched_titles():
    assert_empty(charts.image_grid_figure(np.zeros((0, 28, 28)), []))
    with pytest.raises(ValueError, match="titles"):
        charts.image_grid_figure(np.zeros((3, 28, 28)), ["only one"])
    assert len(charts.image_grid_figure(np.zeros((3, 28, 28)), []).layout.annotations) == 0


# compare_figure


def test_compare_figure_one_line_per_run_in_percent():
    histories = {
        "cnn": pd.DataFrame(EPOCHS),
        "mlp": pd.DataFrame(EPOCHS).assign(val_accuracy=[0.80, 0.82, 0.84]),
    }

    fig = charts.compare_figure(histories, metric="val_accuracy")

    assert [t.name for t in fig.data] == ["cnn", "mlp"]
    np.testing.assert_array_equal(trace(fig, "mlp").x, [1, 2, 3])
    np.testing.assert_allclose(trace(fig, "mlp").y, [80.0, 82.0, 84.0])
    assert trace(fig, "cnn").line.color != trace(fig, "mlp").line.color
    assert fig.layout.yaxis.ticksuffix == "%"


def test_compare_figure_loss_plain_and_runs_without_metric_noted():
    histories = {
        "with val": pd.DataFrame(EPOCHS),
        "no val": pd.DataFrame(EPOCHS).drop(columns=["val_loss", "val_accuracy"]),
    }

    fig = charts.compare_figure(histories, metric="val_loss")

    assert [t.name for t in fig.data] == ["with val"]
    np.testing.assert_allclose(fig.data[0].y, [0.4, 0.3, 0.28])
    assert "no val" in fig.layout.title.subtitle.text


def test_compare_figure_empty_and_unknown_metric():
    assert_empty(charts.compare_figure({}), "No runs to compare yet")
    assert_empty(charts.compare_figure({"x": pd.DataFrame()}), "No runs to compare yet")
    with pytest.raises(ValueError, match="Unknown metric"):
        charts.compare_figure({}, metric="precision")


# Every builder's output serializes for st.plotly_chart, titled (the image grid is captioned per image).


@pytest.mark.parametrize(
    "build, title",
    [
        (lambda: charts.history_figure(batches_for(3, 800), OVERFITTING, total_epochs=6), "Training accuracy"),
        (lambda: charts.history_figure_from_csv_frame(OVERFITTING, "loss"), "Training loss"),
        (lambda: charts.probability_figure(np.full(10, 0.1), DIGITS, true_label=3), "true: 3"),
        (lambda: charts.confusion_figure(np.eye(10, dtype=int) * 90 + 1, DIGITS, normalize=True), "Confusion matrix"),
        (lambda: charts.per_class_accuracy_figure(np.linspace(0.9, 1, 10), DIGITS), "Accuracy per class"),
        (lambda: charts.class_distribution_figure([6000] * 10, [1000] * 10, DIGITS), "Images per class"),
        (lambda: charts.pixel_histogram_figure(np.arange(256, dtype=np.uint8), title="Raw", log_y=True), "Raw"),
        (lambda: charts.image_grid_figure(np.zeros((10, 28, 28)), DIGITS), None),
        (lambda: charts.compare_figure({"a": OVERFITTING, "b": OVERFITTING}, metric="accuracy"), "Runs compared"),
    ],
)
def test_figures_serialize_to_json_with_titles_and_white_template(build, title):
    fig = build()

    spec = json.loads(fig.to_json())
    assert spec["data"]
    if title is None:
        assert [note["text"] for note in spec["layout"]["annotations"]] == list(DIGITS)
    else:
        assert title in spec["layout"]["title"]["text"]
    assert fig.layout.height and fig.layout.height > 0
    assert fig.layout.template.layout.paper_bgcolor in ("white", "#fff", "#ffffff", "rgb(255,255,255)")


def test_image_grid_shows_colour_images_as_colour():
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    images[:, :, :, 0] = 200  # red
    fig = charts.image_grid_figure(images, ["a", "b", "c"], cols=3)
    assert [trace.type for trace in fig.data] == ["image"] * 3
    assert tuple(np.asarray(fig.data[0].z)[0, 0]) == (200, 0, 0)
