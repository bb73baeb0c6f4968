"""Plotly figure builders for MNIST Studio: training curves, predictions, data views.

Every public function is pure: plain Python / NumPy / pandas in, a
`plotly.graph_objects.Figure` out. Pages only pass the result to
`st.plotly_chart`; tests inspect `fig.data` and `fig.layout`.
Empty input never raises: it gives a figure that says "No data yet".
"""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lib.i18n import N_, _

# Okabe-Ito colours: distinguishable with the common forms of colour blindness.
TRAIN_COLOR = "#0072B2"
VAL_COLOR = "#D55E00"
TEST_COLOR = "#CC79A7"
PREDICTED_COLOR = "#0072B2"
TRUE_COLOR = "#009E73"
WORST_COLOR = "#D55E00"
MUTED_COLOR = "#C7CDD4"
# Caption colours for image grids: pages pass these as `title_colors`.
RIGHT_COLOR = "#2B2B2B"
WRONG_COLOR = "#C0392B"
# Line styles carry the same meaning as the colours, for print and colour blindness.
TRAIN_DASH = "solid"
VAL_DASH = "dash"

TEMPLATE = "plotly_white"
DEFAULT_HEIGHT = 340
MARGIN = dict(l=10, r=10, t=56, b=10)
LEGEND_PX = 16
SUBTITLE_PX = 16
EMPTY_MESSAGE = N_("No data yet")
# The live chart is redrawn every second; more points than this only cost bandwidth.
MAX_BATCH_POINTS = 2000
# Up to this many epochs the x axis gets one dotted gridline per epoch boundary.
MAX_EPOCH_TICKS = 20
# Overfitting hint: epochs without a new best validation score while training improves.
OVERFIT_PATIENCE = 2
PIXEL_HISTOGRAM_BINS = 64
IMAGE_CELL_PX = 120
CAPTION_PX = 22
# Compared runs cycle through the full Okabe-Ito set.
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
HISTORY_METRICS = ("accuracy", "loss")
BATCH_TRACE = N_("train (batches)")  # a trace name: shown in the legend, and how the live chart finds it
COMPARE_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")


def history_figure(
    batches: Sequence[Mapping] | pd.DataFrame | None,
    epochs: Sequence[Mapping] | pd.DataFrame | None,
    *,
    metric: str = "accuracy",
    total_epochs: int | None = None,
) -> go.Figure:
    """Training curve of `metric` ("accuracy" or "loss") against fractional epochs.

    `batches` holds per-batch points ("epoch_float" and the running value under
    `metric`); `epochs` holds per-epoch rows ("epoch" 1-based, "loss", "accuracy",
    "val_loss", "val_accuracy"; validation values may be missing). Traces, each
    only when it has data: "train (batches)", "train (epoch)", "validation".
    Accuracy is drawn in percent. Epoch `e` ends at x = e.
    """
    _check_metric(metric, HISTORY_METRICS)
    scale = _metric_scale(metric)
    label = _metric_label(metric)
    title = _("Training {metric}").format(metric=label)

    batch_x, batch_y = _finite_xy(_frame(batches), "epoch_float", metric)
    batch_x, batch_y = _downsample(batch_x, batch_y, limit=MAX_BATCH_POINTS)
    epoch_frame = _frame(epochs)
    train_x, train_y = _finite_xy(epoch_frame, "epoch", metric)
    val_x, val_y = _finite_xy(epoch_frame, "epoch", f"val_{metric}")

    if not (len(batch_x) or len(train_x) or len(val_x)):
        return _empty_figure(title, height=DEFAULT_HEIGHT)

    fig = go.Figure()
    value = _hover_value(metric)
    if len(batch_x):
        fig.add_trace(
            go.Scatter(
                x=batch_x,
                y=batch_y * scale,
                name=_(BATCH_TRACE),
                mode="lines",
                line=dict(color=TRAIN_COLOR, width=1, dash=TRAIN_DASH),
                opacity=0.45,
                hovertemplate=_("train, this epoch so far: {value}").format(value=value) + "<extra></extra>",
            )
        )
    if len(train_x):
        fig.add_trace(
            go.Scatter(
                x=train_x,
                y=train_y * scale,
                name=_("train (epoch)"),
                # Without batch points the epoch markers are the only train curve.
                mode="markers" if len(batch_x) else "lines+markers",
                line=dict(color=TRAIN_COLOR, width=2, dash=TRAIN_DASH),
                marker=dict(color=TRAIN_COLOR, size=8),
                cliponaxis=False,
                hovertemplate=_("train: {value}").format(value=value) + "<extra></extra>",
            )
        )
    if len(val_x):
        fig.add_trace(
            go.Scatter(
                x=val_x,
                y=val_y * scale,
                name=_("validation"),
                mode="lines+markers",
                line=dict(color=VAL_COLOR, width=2, dash=VAL_DASH),
                marker=dict(color=VAL_COLOR, size=8, symbol="diamond"),
                cliponaxis=False,
                hovertemplate=_("validation: {value}").format(value=value) + "<extra></extra>",
            )
        )

    seen_max = max([float(np.max(a)) for a in (batch_x, train_x, val_x) if len(a)] + [1.0])
    x_max = float(total_epochs) if total_epochs else float(np.ceil(seen_max))
    x_max = max(x_max, seen_max)
    _apply_layout(fig, title, height=DEFAULT_HEIGHT, legend=True)
    fig.update_layout(hovermode="x unified")
    fig.update_xaxes(
        title_text=_("epoch"),
        range=[0, x_max],
        unifiedhovertitle_text=_("epoch {x}").format(x="%{x:.2f}"),
        griddash="dot",
        zeroline=False,
        **(dict(tick0=0, dtick=1) if x_max <= MAX_EPOCH_TICKS else {}),
    )
    _style_metric_axis(fig, metric)

    best_epoch = overfitting_epoch(epoch_frame, metric=metric)
    if best_epoch is not None:
        # Late epochs sit high for accuracy and low for loss: put the note where curves are not.
        near_bottom = metric == "accuracy"
        fig.add_vline(x=best_epoch, line=dict(color=VAL_COLOR, width=1, dash="dot"))
        fig.add_annotation(
            x=best_epoch,
            y=0.02 if near_bottom else 0.98,
            yref="paper",
            xanchor="left",
            yanchor="bottom" if near_bottom else "top",
            xshift=4,
            showarrow=False,
            align="left",
            text=_("validation best at epoch {epoch},<br>training kept improving: overfitting?").format(epoch=best_epoch),
            font=dict(size=11, color=VAL_COLOR),
        )
    return fig


def refresh_batch_points(fig: go.Figure, batches: Sequence[Mapping] | pd.DataFrame | None, *, metric: str) -> bool:
    """Put new batch points into a `history_figure` in place; False when its shape must change.

    The live chart is redrawn every second: replacing one trace's arrays costs
    about a tenth of building the figure again (Plotly validates every layout
    property). The caller rebuilds when this returns False: no batch trace yet,
    or no batch points to show.
    """
    _check_metric(metric, HISTORY_METRICS)
    trace = next((t for t in fig.data if t.name == _(BATCH_TRACE)), None)
    batch_x, batch_y = _finite_xy(_frame(batches), "epoch_float", metric)
    if trace is None or not len(batch_x):
        return False
    batch_x, batch_y = _downsample(batch_x, batch_y, limit=MAX_BATCH_POINTS)
    with fig.batch_update():
        trace.x = batch_x
        trace.y = batch_y * _metric_scale(metric)
    return True


def history_figure_from_csv_frame(history: pd.DataFrame, metric: str = "accuracy") -> go.Figure:
    """The `history_figure` look for a finished run's history.csv (epoch rows only)."""
    return history_figure([], history, metric=metric)


def overfitting_epoch(
    epochs: Sequence[Mapping] | pd.DataFrame | None, *, metric: str = "accuracy"
) -> int | None:
    """The epoch of the best validation `metric` if training improved since and validation did not.

    Returns None unless the best validation epoch is at least OVERFIT_PATIENCE
    epochs before the last one and the train metric is better at the last epoch.
    """
    _check_metric(metric, HISTORY_METRICS)
    frame = _frame(epochs)
    needed = {"epoch", metric, f"val_{metric}"}
    if frame.empty or not needed <= set(frame.columns):
        return None
    rows = pd.DataFrame({name: pd.to_numeric(frame[name], errors="coerce") for name in needed}).dropna()
    if len(rows) <= OVERFIT_PATIENCE:
        return None
    rows = rows.sort_values("epoch")
    sign = 1.0 if metric == "accuracy" else -1.0  # Higher is better for accuracy only.
    best = rows.loc[(sign * rows[f"val_{metric}"]).idxmax()]
    last = rows.iloc[-1]
    if last["epoch"] - best["epoch"] < OVERFIT_PATIENCE:
        return None
    if sign * last[metric] <= sign * best[metric]:
        return None
    return int(best["epoch"])


def probability_figure(
    probs: np.ndarray | Sequence[float], class_names: Sequence[str], *, true_label: int | None = None
) -> go.Figure:
    """Horizontal bar per class with its probability in %, class 0 at the top.

    The predicted class (argmax) is drawn in PREDICTED_COLOR; a given true label
    that differs from it in TRUE_COLOR; the rest in MUTED_COLOR.
    """
    values = np.asarray(probs, dtype=float).ravel()
    if values.size == 0:
        return _empty_figure(_("Prediction"), height=DEFAULT_HEIGHT)
    names = [str(name) for name in class_names]
    _check_length(values, names, "probs")
    predicted = int(np.nanargmax(values))
    colors = [MUTED_COLOR] * len(names)
    colors[predicted] = PREDICTED_COLOR
    title = _("Prediction: {name} ({percent:.1f}%)").format(name=names[predicted], percent=values[predicted] * 100)
    if true_label is not None and int(true_label) != predicted:
        colors[int(true_label)] = TRUE_COLOR
        title += " · " + _("true: {name}").format(name=names[int(true_label)])
    elif true_label is not None:
        title += " · " + _("correct")

    percent = values * 100
    fig = go.Figure(
        go.Bar(
            x=percent,
            y=names,
            orientation="h",
            marker=dict(color=colors),
            text=[f"{p:.1f}%" for p in percent],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
            name=_("probability"),
        )
    )
    _apply_layout(fig, title, height=max(DEFAULT_HEIGHT, 28 * len(names) + 70))
    fig.update_layout(margin=dict(MARGIN, r=50), bargap=0.25)
    fig.update_xaxes(title_text=_("probability (%)"), range=[0, 100], ticksuffix="%")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def confusion_figure(
    matrix: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str], *, normalize: bool = False
) -> go.Figure:
    """Confusion-matrix heatmap: rows = true class (class 0 at the top), columns = predicted.

    Cells show counts, or with `normalize=True` the percentage of each true class
    (row) predicted as each column; hover always gives the count.
    """
    counts = np.asarray(matrix)
    title = _("Confusion matrix (row %)") if normalize else _("Confusion matrix (counts)")
    if counts.size == 0:
        return _empty_figure(title, height=420)
    names = [str(name) for name in class_names]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"Confusion matrix must be square, got shape {counts.shape}")
    _check_length(counts, names, "matrix")

    if normalize:
        row_totals = counts.sum(axis=1, keepdims=True)
        z = np.divide(counts * 100.0, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
        texttemplate = "%{z:.0f}%"  # Whole percents fit a 10x10 grid; hover has one decimal.
        hovertemplate = _("true {y} → predicted {x}<br>share of true {y}: {share}% ({count} images)").format(
            y="%{y}", x="%{x}", share="%{z:.1f}", count="%{customdata:,}") + "<extra></extra>"
        colorbar = dict(title=dict(text=_("row %")), ticksuffix="%")
        z_range = dict(zmin=0, zmax=100)
    else:
        z = counts
        texttemplate = "%{z:,}"
        hovertemplate = _("true {y} → predicted {x}<br>{count} images").format(
            y="%{y}", x="%{x}", count="%{customdata:,}") + "<extra></extra>"
        colorbar = dict(title=dict(text=_("images")))
        z_range = dict(zmin=0)

    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            customdata=counts,
            colorscale="Blues",
            texttemplate=texttemplate,
            textfont=dict(size=11),
            hovertemplate=hovertemplate,
            colorbar=dict(colorbar, thickness=12),
            xgap=1,
            ygap=1,
            **z_range,
        )
    )
    _apply_layout(fig, title, height=420 if len(names) <= 10 else 36 * len(names) + 60)
    fig.update_xaxes(title_text=_("predicted class"), type="category", showgrid=False, constrain="domain")
    fig.update_yaxes(
        title_text=_("true class"),
        type="category",
        autorange="reversed",
        showgrid=False,
        scaleanchor="x",
        constrain="domain",
    )
    return fig


def confused_pairs(
    matrix: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str], top: int = 5
) -> list[tuple[str, str, int]]:
    """The `top` most frequent mistakes as (true name, predicted name, count), largest first.

    Only off-diagonal cells with a non-zero count; ties keep row-major order.
    """
    counts = np.asarray(matrix)
    if counts.size == 0 or top <= 0:
        return []
    names = [str(name) for name in class_names]
    _check_length(counts, names, "matrix")
    pairs = [
        (names[true], names[predicted], int(counts[true, predicted]))
        for true in range(counts.shape[0])
        for predicted in range(counts.shape[1])
        if true != predicted and counts[true, predicted] > 0
    ]
    pairs.sort(key=lambda pair: -pair[2])  # sort is stable: ties stay row-major.
    return pairs[:top]


def per_class_accuracy_figure(
    per_class: Sequence[float] | np.ndarray, class_names: Sequence[str]
) -> go.Figure:
    """Bar per class of its accuracy (fractions 0..1 in, percent drawn); worst class highlighted.

    Classes without a value (NaN/None, e.g. no test images) get no bar, not a 0.
    A dotted line marks the mean over classes; the subtitle names the worst class.
    """
    title = _("Accuracy per class")
    values = np.asarray(pd.to_numeric(pd.Series(per_class, dtype=object), errors="coerce"), dtype=float)
    if values.size == 0 or np.isnan(values).all():
        return _empty_figure(title, height=DEFAULT_HEIGHT)
    names = [str(name) for name in class_names]
    _check_length(values, names, "per_class")
    percent = values * 100
    worst = int(np.nanargmin(values))
    colors = [MUTED_COLOR if np.isnan(v) else TRAIN_COLOR for v in values]
    colors[worst] = WORST_COLOR
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[None if np.isnan(p) else float(p) for p in percent],
            marker=dict(color=colors),
            text=["" if np.isnan(p) else f"{p:.1f}%" for p in percent],
            textposition="outside",
            cliponaxis=False,
            hovertemplate=_("class {x}: accuracy {y}%").format(x="%{x}", y="%{y:.2f}") + "<extra></extra>",
            name=_("accuracy"),
        )
    )
    mean = float(np.nanmean(percent))
    fig.add_hline(y=mean, line=dict(color="#555555", width=1, dash="dot"))
    _apply_layout(
        fig,
        title,
        height=DEFAULT_HEIGHT,
        subtitle=_("worst: {name} ({worst:.1f}%) · mean {mean:.1f}% (dotted line)").format(
            name=names[worst], worst=percent[worst], mean=mean),
    )
    fig.update_xaxes(title_text=_("class"), type="category")
    fig.update_yaxes(title_text=_("accuracy (%)"), range=[0, 105], ticksuffix="%")
    return fig


def class_distribution_figure(
    counts_train: Sequence[int] | np.ndarray,
    counts_test: Sequence[int] | np.ndarray | None,
    class_names: Sequence[str],
) -> go.Figure:
    """Grouped bars of images per class for the train split and, if given, the test split.

    Hover shows each count's share of its split, so balance is easy to compare.
    """
    title = _("Images per class")
    train = np.asarray(counts_train if counts_train is not None else [], dtype=float).ravel()
    if train.size == 0:
        return _empty_figure(title, height=DEFAULT_HEIGHT)
    names = [str(name) for name in class_names]
    splits = [(_("train"), train, TRAIN_COLOR)]
    if counts_test is not None and len(counts_test):
        splits.append((_("test"), np.asarray(counts_test, dtype=float).ravel(), TEST_COLOR))
    fig = go.Figure()
    for split, counts, color in splits:
        _check_length(counts, names, f"counts_{split}")
        share = counts * 100 / counts.sum() if counts.sum() else np.zeros_like(counts)
        fig.add_trace(
            go.Bar(
                x=names,
                y=counts,
                name=split,
                marker=dict(color=color),
                customdata=share,
                hovertemplate=(
                    _("{split} · class {x}: {y} images (share of {split}: {share}%)").format(
                        split=split, x="%{x}", y="%{y:,}", share="%{customdata:.1f}") + "<extra></extra>"
                ),
            )
        )
    _apply_layout(fig, title, height=DEFAULT_HEIGHT, legend=True)
    fig.update_layout(barmode="group", bargap=0.2)
    fig.update_xaxes(title_text=_("class"), type="category")
    fig.update_yaxes(title_text=_("images"), rangemode="tozero")
    return fig


def pixel_histogram_figure(pixels: np.ndarray, *, title: str, log_y: bool = False) -> go.Figure:
    """Histogram of pixel values, binned with NumPy so millions of pixels stay light.

    The x range follows the data's scale: 0..255 (raw uint8) or 0..1 (normalized);
    the subtitle gives min, max and mean, the numbers normalization changes.
    """
    values = np.asarray(pixels, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return _empty_figure(title, height=DEFAULT_HEIGHT)
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= 1:
        value_range, scale_note = (0.0, 1.0), "0–1"
    elif low >= 0 and high <= 255:
        value_range, scale_note = (0.0, 256.0), "0–255"  # 256: the last bin holds 255.
    else:
        value_range, scale_note = (low, high if high > low else low + 1), _("as stored")
    counts, edges = np.histogram(values, bins=PIXEL_HISTOGRAM_BINS, range=value_range)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=counts,
            width=np.diff(edges),
            customdata=np.column_stack([edges[:-1], edges[1:]]),
            marker=dict(color=TRAIN_COLOR, line=dict(width=0)),
            hovertemplate=_("values {low}–{high}<br>{count} pixels").format(
                low="%{customdata[0]:.3g}", high="%{customdata[1]:.3g}", count="%{y:,}") + "<extra></extra>",
            name=_("pixels"),
        )
    )
    summary = _("min {low:.3g} · max {high:.3g} · mean {mean:.3g} · {count:,} pixels").format(
        low=low, high=high, mean=values.mean(), count=values.size)
    _apply_layout(fig, title, height=DEFAULT_HEIGHT, subtitle=summary)
    fig.update_layout(bargap=0)
    fig.update_xaxes(title_text=_("pixel value ({scale})").format(scale=scale_note), range=list(value_range))
    if log_y:  # Only powers of ten: intermediate log ticks read as noise to learners.
        fig.update_yaxes(title_text=_("pixels (log scale)"), type="log", dtick=1)
    else:
        fig.update_yaxes(title_text=_("pixels"), type="linear")
    return fig


def image_grid_figure(
    images: np.ndarray,
    titles: Sequence[str] | None,
    *,
    cols: int = 5,
    title_colors: Sequence[str] | None = None,
) -> go.Figure:
    """Grid of grayscale (N,H,W) / (N,H,W,1) or colour (N,H,W,3) images, uint8 or [0, 1], with a caption each.

    Captions are layout annotations in image order; `title_colors` colours them
    (e.g. WRONG_COLOR for a misclassified image). Axes hidden, pixels square.
    """
    array = np.asarray(images)
    if array.size == 0:
        return _empty_figure("", height=DEFAULT_HEIGHT)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[np.newaxis]
    colour = array.ndim == 4 and array.shape[-1] == 3
    if array.ndim != 3 and not colour:
        raise ValueError(f"Expected images of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3), got {np.shape(images)}")
    count = array.shape[0]
    captions = list(titles or [])
    if captions and len(captions) != count:
        raise ValueError(f"Got {len(captions)} titles for {count} images")
    if title_colors is not None and len(title_colors) != count:
        raise ValueError(f"Got {len(title_colors)} title colours for {count} images")
    pixels = _to_uint8(array)

    cols = max(1, min(cols, count))
    rows = -(-count // cols)
    caption_px = CAPTION_PX if captions else 4
    grid_px = rows * (IMAGE_CELL_PX + caption_px)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        horizontal_spacing=0.02,
        vertical_spacing=caption_px / grid_px if rows > 1 else 0,
    )
    for index in range(count):
        row, col = divmod(index, cols)
        caption = captions[index] if captions else f"image {index}"
        if colour:
            fig.add_trace(go.Image(z=pixels[index], name=caption,
                                   hovertemplate="x %{x}, y %{y}: %{z}<extra></extra>"), row=row + 1, col=col + 1)
            continue
        fig.add_trace(
            go.Heatmap(
                z=pixels[index],
                colorscale="gray",
                zmin=0,
                zmax=255,
                showscale=False,
                name=caption,
                hovertemplate="x %{x}, y %{y}: %{z}<extra></extra>",
            ),
            row=row + 1,
            col=col + 1,
        )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for index in range(count):
        suffix = "" if index == 0 else str(index + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
        if captions:
            x_domain = fig.layout[f"xaxis{suffix}"].domain
            y_domain = fig.layout[f"yaxis{suffix}"].domain
            fig.add_annotation(
                x=(x_domain[0] + x_domain[1]) / 2,
                y=y_domain[1],
                xref="paper",
                yref="paper",
                xanchor="center",
                yanchor="bottom",
                showarrow=False,
                text=captions[index],
                font=dict(size=11, color=title_colors[index] if title_colors else RIGHT_COLOR),
            )
    fig.update_layout(
        template=TEMPLATE,
        height=grid_px + 16,
        margin=dict(l=4, r=4, t=caption_px + 4, b=4),
        showlegend=False,
    )
    return fig


def compare_figure(histories: Mapping[str, pd.DataFrame], *, metric: str = "val_accuracy") -> go.Figure:
    """One line per run (legend = its key) of `metric` against epoch; accuracy in percent.

    Runs without that metric (e.g. trained without validation) are left out and
    named in a note under the title.
    """
    _check_metric(metric, COMPARE_METRICS)
    label = _metric_label(metric)
    title = _("Runs compared: {metric}").format(metric=label)
    scale = _metric_scale(metric)
    value = _hover_value(metric)
    fig = go.Figure()
    skipped = []
    for index, (run_label, history) in enumerate((histories or {}).items()):
        x, y = _finite_xy(_frame(history), "epoch", metric)
        if not len(x):
            skipped.append(str(run_label))
            continue
        color = RUN_COLORS[index % len(RUN_COLORS)]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y * scale,
                name=str(run_label),
                mode="lines+markers",
                line=dict(color=color, width=2, dash=VAL_DASH if metric.startswith("val_") else TRAIN_DASH),
                marker=dict(color=color, size=6),
                hovertemplate=f"%{{fullData.name}}: {value}<extra></extra>",
            )
        )
    if not fig.data:
        return _empty_figure(title, message=_("No runs to compare yet"), height=DEFAULT_HEIGHT)
    note = _("no {metric} in: {runs}").format(metric=label, runs=", ".join(skipped)) if skipped else None
    _apply_layout(fig, title, height=DEFAULT_HEIGHT, legend=True, subtitle=note)
    x_max = max(float(np.max(trace.x)) for trace in fig.data)
    fig.update_layout(hovermode="x unified")
    fig.update_xaxes(
        title_text=_("epoch"),
        griddash="dot",
        unifiedhovertitle_text=_("epoch {x}").format(x="%{x}"),
        **(dict(tick0=0, dtick=1) if x_max <= MAX_EPOCH_TICKS else {}),
    )
    _style_metric_axis(fig, metric)
    return fig


def _frame(rows: Sequence[Mapping] | pd.DataFrame | None) -> pd.DataFrame:
    """Records or a DataFrame as a DataFrame; None or no rows give an empty one."""
    if rows is None:
        return pd.DataFrame()
    if isinstance(rows, pd.DataFrame):
        return rows
    return pd.DataFrame(list(rows))


def _finite_xy(frame: pd.DataFrame, x_column: str, y_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Numeric (x, y) columns with rows dropped where either is missing (None/NaN), sorted by x.

    Missing values are dropped rather than drawn, so they never appear as 0.
    """
    if frame.empty or x_column not in frame.columns or y_column not in frame.columns:
        return np.array([]), np.array([])
    x = pd.to_numeric(frame[x_column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    y = pd.to_numeric(frame[y_column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    return x[keep][order], y[keep][order]


def _downsample(x: np.ndarray, y: np.ndarray, *, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` evenly spaced (x, y) points, always keeping the first and the last."""
    if len(x) <= limit:
        return x, y
    keep = np.linspace(0, len(x) - 1, limit).round().astype(int)
    return x[keep], y[keep]


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """Images as uint8 0..255, whether given as uint8 or as floats in [0, 1]."""
    if images.dtype == np.uint8:
        return images
    values = images.astype(float)
    if values.size and np.nanmax(values) <= 1.0:
        values = values * 255
    return np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)


def _check_metric(metric: str, allowed: tuple[str, ...]) -> None:
    if metric not in allowed:
        raise ValueError(f"Unknown metric: {metric!r} (expected one of {', '.join(allowed)})")


def _check_length(values: np.ndarray, names: list[str], what: str) -> None:
    if len(values) != len(names):
        raise ValueError(f"{what} has {len(values)} classes but class_names has {len(names)}")


def _metric_scale(metric: str) -> float:
    return 100.0 if metric.endswith("accuracy") else 1.0


def _metric_label(metric: str) -> str:
    return {"accuracy": _("accuracy"), "loss": _("loss"), "val_accuracy": _("validation accuracy"),
            "val_loss": _("validation loss")}.get(metric, metric)


def _hover_value(metric: str) -> str:
    """The y value in a hover template: percent for accuracy, 4 decimals for loss."""
    return "%{y:.2f}%" if metric.endswith("accuracy") else "%{y:.4f}"


def _style_metric_axis(fig: go.Figure, metric: str) -> None:
    """Y axis for a metric: accuracy in % never past 0..100, loss from zero up."""
    if metric.endswith("accuracy"):
        fig.update_yaxes(
            title_text=_("accuracy (%)"),
            ticksuffix="%",
            autorangeoptions=dict(clipmin=0, clipmax=101),
            hoverformat=".2f",
        )
    else:
        fig.update_yaxes(title_text=_("loss (cross-entropy)"), rangemode="tozero", hoverformat=".4f")


def _apply_layout(
    fig: go.Figure, title: str, *, height: int, legend: bool = False, subtitle: str | None = None
) -> None:
    """Shared look: white template, left title, compact margins, legend in a row under the title."""
    # Legend and subtitle get their own strips so nothing collides in a narrow column.
    top = MARGIN["t"] + (LEGEND_PX if legend else 0) + (SUBTITLE_PX if subtitle else 0)
    fig.update_layout(
        template=TEMPLATE,
        title=dict(
            text=title,
            subtitle=dict(text=subtitle or ""),
            x=0,
            xanchor="left",
            y=1,
            yanchor="top",
            yref="container",
            pad=dict(t=10),
            font=dict(size=15),
        ),
        height=height,
        margin=dict(MARGIN, t=top),
        showlegend=legend,
        legend=dict(orientation="h", x=0, xanchor="left", y=1.01, yanchor="bottom"),
        font=dict(size=12),
    )


def _empty_figure(title: str, *, message: str = EMPTY_MESSAGE, height: int = DEFAULT_HEIGHT) -> go.Figure:
    """A valid, blank figure with a centred message instead of data."""
    fig = go.Figure()
    _apply_layout(fig, title, height=height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(
        text=_(message),
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font=dict(size=14, color="#888888"),
    )
    return fig


def test_accuracy_figure(scores: Mapping[str, float | None]) -> go.Figure:
    """One horizontal bar per run (in the given order, colours as in `compare_figure`) of its test
    accuracy in percent; runs without one (never scored) are named in a note under the title."""
    title = _("Test accuracy")
    names = [str(name) for name in (scores or {})]
    values = [scores[name] if isinstance(scores[name], (int, float)) and np.isfinite(scores[name]) else None
              for name in (scores or {})]
    shown = [(name, value, RUN_COLORS[index % len(RUN_COLORS)])
             for index, (name, value) in enumerate(zip(names, values)) if value is not None]
    if not shown:
        return _empty_figure(title, message=_("No test accuracy to compare yet"))
    missing = [name for name, value in zip(names, values) if value is None]
    fig = go.Figure(
        go.Bar(
            y=[name for name, _, _ in shown][::-1],  # the first run on top
            x=[value * 100 for _, value, _ in shown][::-1],
            orientation="h",
            marker_color=[color for _, _, color in shown][::-1],
            text=[f"{value:.2%}" for _, value, _ in shown][::-1],
            textposition="inside",
            insidetextanchor="end",
            hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
        )
    )
    note = _("no test accuracy in: {runs}").format(runs=", ".join(missing)) if missing else None
    _apply_layout(fig, title, height=max(160, 90 + 34 * len(shown)), subtitle=note)
    low = min(value for _, value, _ in shown) * 100
    fig.update_xaxes(title_text=_("test accuracy (%)"), ticksuffix="%", range=[max(0.0, low - 5), 100])
    fig.update_yaxes(automargin=True)
    return fig
