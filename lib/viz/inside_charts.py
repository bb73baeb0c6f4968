"""Plotly figures for the Inside page: feature maps, dense activations, saliency, weights, the embedding.

Pure builders in the style of lib/charts.py: NumPy in, `go.Figure` out; tests inspect
`fig.data`. Many small images (all channels of a layer, all filters) are tiled into ONE
heatmap with blank gaps: one trace draws in a blink where 128 subplots would not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from lib.i18n import _
from lib.viz import charts

TILE_GAP = 1  # blank pixels between tiles
CELL_PX = 52  # screen pixels per tile edge in a grid
MAX_GRID_COLS = 16
FEATURE_COLORSCALE = "Viridis"
WEIGHT_COLORSCALE = "RdBu"  # signed weights: red negative, blue positive, white zero
# Saliency overlay: transparent where the model did not look, warm and opaque where it did.
SALIENCY_COLORSCALE = [[0.0, "rgba(255,255,0,0)"], [0.15, "rgba(255,200,0,0.15)"], [0.5, "rgba(255,120,0,0.55)"],
                       [1.0, "rgba(220,20,0,0.9)"]]
BOX_COLOR = "#00B4FF"
MARKER_SIZE = 6
WRONG_SYMBOL = "x"


def tile(images: np.ndarray, cols: int, gap: int = TILE_GAP) -> tuple[np.ndarray, np.ndarray]:
    """(N, h, w) images -> one 2-D mosaic (NaN in gaps and empty cells) and, per pixel, its tile index (-1 in gaps)."""
    images = np.asarray(images, dtype=np.float32)
    count, height, width = images.shape
    cols = max(1, min(cols, count))
    rows = -(-count // cols)
    mosaic = np.full((rows * (height + gap) - gap, cols * (width + gap) - gap), np.nan, dtype=np.float32)
    which = np.full(mosaic.shape, -1, dtype=np.int32)
    for index in range(count):
        row, col = divmod(index, cols)
        top, left = row * (height + gap), col * (width + gap)
        mosaic[top : top + height, left : left + width] = images[index]
        which[top : top + height, left : left + width] = index
    return mosaic, which


def grid_columns(count: int, max_cols: int = MAX_GRID_COLS) -> int:
    """Columns for `count` tiles: a near-square grid, never wider than max_cols."""
    return max(1, min(max_cols, int(np.ceil(np.sqrt(count * 2)))))


def feature_maps_figure(activation: np.ndarray, title: str, *, max_channels: int | None = None,
                        cols: int | None = None) -> go.Figure:
    """All channels of a (H, W, C) layer output as one image grid on one shared colour scale."""
    values = np.asarray(activation, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"Feature maps are (height, width, channels); got shape {values.shape}.")
    channels = values.transpose(2, 0, 1)
    if max_channels is not None:
        channels = channels[:max_channels]
    cols = cols or grid_columns(len(channels))
    mosaic, which = tile(channels, cols)
    fig = _mosaic_figure(mosaic, which, title, colorscale=FEATURE_COLORSCALE, tile_name=_("channel"),
                         zmin=float(np.nanmin(mosaic)), zmax=float(np.nanmax(mosaic)) or 1.0,
                         tile_px=max(CELL_PX, 3 * values.shape[0]) if len(channels) <= 4 else CELL_PX, cols=cols)
    return fig


def weight_images_figure(images: np.ndarray, titles: Sequence[str], title: str, *, cols: int | None = None) -> go.Figure:
    """Signed weight images (N, h, w): filters or one unit's input weights, each scaled to its own
    largest magnitude (blue: more ink here raises the unit, red: lowers it)."""
    images = np.asarray(images, dtype=np.float32)
    peaks = np.abs(images).reshape(len(images), -1).max(axis=1)
    scaled = images / np.where(peaks > 0, peaks, 1.0)[:, None, None]
    cols = cols or grid_columns(len(images), max_cols=10 if images.shape[1] > 8 else MAX_GRID_COLS)
    mosaic, which = tile(scaled, cols)
    fig = _mosaic_figure(mosaic, which, title, colorscale=WEIGHT_COLORSCALE, tile_name="", zmin=-1.0, zmax=1.0,
                         tile_px=max(CELL_PX, 3 * images.shape[1]) if len(images) <= 10 else CELL_PX, cols=cols,
                         tile_titles=list(titles))
    return fig


def dense_figure(values: np.ndarray, title: str, *, max_bars: int = 512) -> go.Figure:
    """A flat layer output as one bar per unit (the first max_bars units of very wide layers)."""
    values = np.asarray(values, dtype=np.float32).ravel()
    shown = values[:max_bars]
    subtitle = (_("first {shown:,} of {count:,} units").format(shown=max_bars, count=len(values))
                if len(values) > max_bars else None)
    fig = go.Figure(go.Bar(
        x=np.arange(len(shown)), y=shown, marker=dict(color=charts.PREDICTED_COLOR),
        hovertemplate=_("unit {x}: {y}").format(x="%{x}", y="%{y:.3f}") + "<extra></extra>", name=_("activation"),
    ))
    charts._apply_layout(fig, title, height=220, subtitle=subtitle)
    fig.update_layout(bargap=0.05 if len(shown) < 64 else 0)
    fig.update_xaxes(title_text=_("unit"), showgrid=False)
    fig.update_yaxes(title_text=_("activation"))
    return fig


def saliency_figure(image01: np.ndarray, saliency: np.ndarray, title: str, *, box: Sequence[int] | None = None,
                    subtitle: str | None = None, height: int = 300) -> go.Figure:
    """The input in grey with the saliency map over it (transparent where it is zero) and the
    box [top, left, bottom, right] holding its top share, if given; `subtitle` says where the map
    comes from (e.g. "Grad-CAM on conv2d_9 (7x7) x input (28x28)")."""
    image = np.asarray(image01, dtype=np.float32)
    heat = np.clip(np.asarray(saliency, dtype=np.float32), 0, None)
    peak = float(heat.max()) if heat.size else 0.0
    heat = heat / peak if peak > 0 else heat
    fig = go.Figure([
        go.Heatmap(z=image, colorscale="gray", zmin=0, zmax=1, showscale=False, name=_("input"),
                   hovertemplate=_("row {y}, column {x}: ink {z}").format(y="%{y}", x="%{x}", z="%{z:.2f}")
                   + "<extra></extra>"),
        go.Heatmap(z=heat, colorscale=SALIENCY_COLORSCALE, zmin=0, zmax=1, showscale=True, name=_("saliency"),
                   colorbar=dict(title=dict(text=_("looks here")), thickness=10, len=0.8),
                   hovertemplate=_("row {y}, column {x}: saliency {z}").format(y="%{y}", x="%{x}", z="%{z:.2f}")
                   + "<extra></extra>"),
    ])
    if box is not None:
        top, left, bottom, right = box
        fig.add_shape(type="rect", x0=left - 0.5, x1=right + 0.5, y0=top - 0.5, y1=bottom + 0.5,
                      line=dict(color=BOX_COLOR, width=2), name=_("box: the top tenth of the saliency"))
    charts._apply_layout(fig, title, height=height, subtitle=subtitle)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    return fig


def overlay_rgb(image01: np.ndarray, saliency: np.ndarray, *, scale: int = 4) -> np.ndarray:
    """The input in grey with the saliency blended in red, as uint8 (H*scale, W*scale, 3) for st.image."""
    image = np.clip(np.asarray(image01, dtype=np.float32), 0, 1)
    heat = np.clip(np.asarray(saliency, dtype=np.float32), 0, None)
    peak = float(heat.max()) if heat.size else 0.0
    heat = heat / peak if peak > 0 else heat
    grey = np.repeat(image[..., None] * 0.75, 3, axis=-1)
    red = np.stack([np.ones_like(heat), 0.25 * np.ones_like(heat), np.zeros_like(heat)], axis=-1)
    alpha = (0.8 * heat)[..., None]
    rgb = grey * (1 - alpha) + red * alpha
    rgb = np.kron(rgb, np.ones((scale, scale, 1), dtype=np.float32))
    return (rgb * 255).round().astype(np.uint8)


def embedding_figure(coords: np.ndarray, labels: np.ndarray, predicted: np.ndarray, class_names: Sequence[str], *,
                     indices: np.ndarray | None = None, title: str = "Embedding") -> go.Figure:
    """One scatter trace per true class (legend toggles classes) plus one trace of black crosses
    on the misclassified points. Every point carries its test index as customdata, so a click
    can show the image."""
    coords = np.asarray(coords, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if len(coords) == 0:
        return charts._empty_figure(title)
    indices = np.arange(len(coords)) if indices is None else np.asarray(indices)
    names = [str(name) for name in class_names]
    fig = go.Figure()
    hover = _("test image {index}<br>true {true} · predicted {predicted}").format(
        index="%{customdata[0]}", true="%{customdata[1]}", predicted="%{customdata[2]}") + "<extra></extra>"
    for k, name in enumerate(names):
        mask = labels == k
        if not mask.any():
            continue
        custom = np.stack([indices[mask], [name] * mask.sum(), [names[p] for p in predicted[mask]]], axis=-1)
        fig.add_trace(go.Scattergl(
            x=coords[mask, 0], y=coords[mask, 1], mode="markers", name=name, customdata=custom,
            marker=dict(size=MARKER_SIZE, color=charts.RUN_COLORS[k % len(charts.RUN_COLORS)] if len(names) <= 8
                        else None, opacity=0.75),
            hovertemplate=hover,
        ))
    wrong = labels != predicted
    if wrong.any():
        custom = np.stack([indices[wrong], [names[t] for t in labels[wrong]], [names[p] for p in predicted[wrong]]],
                          axis=-1)
        fig.add_trace(go.Scattergl(
            x=coords[wrong, 0], y=coords[wrong, 1], mode="markers", name=_("misclassified ({count})").format(count=int(wrong.sum())),
            customdata=custom, marker=dict(symbol=WRONG_SYMBOL, size=MARKER_SIZE + 4, color="#000000",
                                           line=dict(width=1, color="#FFFFFF")),
            hovertemplate=hover,
        ))
    charts._apply_layout(fig, title, height=520, legend=True,
                         subtitle=_("Colour: true class · black cross: misclassified · click a point to see its image"))
    fig.update_xaxes(showticklabels=False, title_text="")
    fig.update_yaxes(showticklabels=False, title_text="", scaleanchor="x")
    return fig


def _mosaic_figure(mosaic, which, title, *, colorscale, tile_name, zmin, zmax, tile_px, cols,
                   tile_titles=None) -> go.Figure:
    names = tile_titles if tile_titles is not None else [f"{tile_name} {i}" for i in range(int(which.max()) + 1)]
    labels = np.array([*names, ""], dtype=object)[which]  # -1 (gaps) picks the trailing ""
    fig = go.Figure(go.Heatmap(
        z=mosaic, customdata=labels, colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=True,
        colorbar=dict(thickness=10, len=0.8), hoverongaps=False, name=title,
        hovertemplate="%{customdata}: %{z:.3f}<extra></extra>",
    ))
    rows = -(-(int(which.max()) + 1) // cols)
    charts._apply_layout(fig, title, height=int(rows * tile_px * 1.02 + charts.MARGIN["t"] + 20))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_layout(plot_bgcolor="rgba(0,0,0,0)")
    return fig
