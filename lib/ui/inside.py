"""Inside page widgets: the input picker, the forward pass, saliency, learned weights, the map, the mistakes."""

from __future__ import annotations

import numpy as np
import streamlit as st

from lib.data import datasets
from lib.models import inference, inside
from lib.store import runs
from lib.ui import common as ui, draw as ui_draw
from lib.ui.i18n import N_, _, class_names, engine_text, labels
from lib.viz import charts, inside_charts

SOURCE_KEY = "inside_source"
TEST_INDEX_KEY = "inside_test_index"
HANDOFF_IMAGE = "inside_handoff_image"  # a drawing sent from the Draw page (plain pixels)
RUN_KEY = "inside_run"
TARGET_KEY = "inside_target"
CANVAS_KEY = "inside_canvas"
DRAW, UPLOAD, TEST, FROM_DRAW = N_("Draw"), N_("Upload"), N_("Test image"), N_("Drawing from Draw")
WIDE_LAYER_CHANNELS = 32  # wider conv layers start collapsed
PREDICTED = -1
# How to read each map; {source} names the layer and grid it comes from.
HOW_TO_READ = {
    inside.GRAD_CAM_X_INPUT: N_("Warm strokes are the ink where the features that raised the score of the explained "
                                "class the most sit ({source}): Grad-CAM finds the region on the convolution's coarse "
                                "grid, the pixels put it on the strokes; the blue box holds its top 10%."),
    inside.GRAD_CAM: N_("Warm colours mark the regions whose features raised the score of the explained class the most "
                        "({source}, blown up to the input: blobs are coarse and may spill beside the ink); "
                        "the blue box holds its top 10%."),
    inside.GRADIENT_X_INPUT: N_("Warm pixels are inked pixels that pushed the model towards the explained class "
                                "({source}); empty pixels never light up; the blue box holds its top 10%."),
}


def open_inside(run_id: str, *, test_index: int | None = None, image: np.ndarray | None = None) -> None:
    """Switch to Inside on this run, with a test image or a drawing (called from Predictions and Draw)."""
    st.session_state[ui.SELECTED_RUN] = run_id
    st.session_state.pop(RUN_KEY, None)  # the picker starts from SELECTED_RUN
    if test_index is not None:
        st.session_state[SOURCE_KEY] = TEST
        st.session_state[TEST_INDEX_KEY] = int(test_index)
    if image is not None:
        st.session_state[HANDOFF_IMAGE] = np.asarray(image)
        st.session_state[SOURCE_KEY] = FROM_DRAW
    st.switch_page("pages/inside.py")


def load_model(run: runs.RunInfo):
    """The run's model if Inside can look into it; None after a clear error."""
    try:
        model = ui.model_for(run)
    except (runs.DamagedRun, runs.RunNotFound, OSError) as problem:
        ui.error(_("This run's model cannot be loaded."), _("{problem} Pick another run.").format(problem=engine_text(problem)))
        return None
    if not ui_draw.warn_if_diverged(run, model):
        return None
    try:
        inside.layer_chain(model)
    except inside.NotIntrospectable as problem:
        ui.error(_("Inside cannot look into this model."), _("{problem} Pick another run.").format(problem=engine_text(problem)))
        return None
    return model


@st.cache_data(show_spinner=False, max_entries=4)
def _test_split(name: str, key: tuple[str, str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Cached by `key` (ui.dataset_key: one copy for every visitor of a shared dataset)."""
    try:
        x_test, y_test = ui.test_split(name)
    except (ValueError, datasets.DatasetUnavailable, datasets.InvalidDataset):
        return None
    if x_test.ndim == 4 and x_test.shape[-1] == 1:
        x_test = x_test[..., 0]  # one-channel images as (N, H, W), as drawings are
    return x_test, y_test


def test_images(run: runs.RunInfo) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's test split (images, labels), or None if its dataset is not here."""
    name = run.dataset.get("name", "")
    return _test_split(name, ui.dataset_key(name))


def pick_input(run: runs.RunInfo) -> tuple[np.ndarray | None, str, int | None]:
    """The chosen input as the model sees it ((H, W) in [0, 1] or None), what it is, and its true class if known."""
    options = [DRAW, UPLOAD, TEST] + ([FROM_DRAW] if HANDOFF_IMAGE in st.session_state else [])
    if st.session_state.get(SOURCE_KEY) not in options:
        st.session_state[SOURCE_KEY] = DRAW
    source = st.segmented_control(_("Input"), options, format_func=labels(options), key=SOURCE_KEY) or DRAW
    if source == TEST:
        split = test_images(run)
        if split is None:
            ui.error(_("The test images of {dataset} are not available here.").format(
                dataset=_(run.dataset.get("title")) or _("this run")),
                     _("Pick another input or another run; the Data page lists the datasets found."))
            return None, source, None
        x_test, y_test = split
        st.session_state[TEST_INDEX_KEY] = min(int(st.session_state.get(TEST_INDEX_KEY, 0)), len(x_test) - 1)
        index = st.number_input(_("Test image number"), 0, len(x_test) - 1, key=TEST_INDEX_KEY, step=1)
        return (x_test[int(index)].astype(np.float32) / 255.0, _("test image #{index}").format(index=int(index)),
                int(y_test[int(index)]))
    if source == UPLOAD:
        upload = st.file_uploader(_("PNG or JPEG, up to 5 MB"), type=["png", "jpg", "jpeg"], key="inside_upload")
        image = ui_draw.uploaded_image(upload)
    elif source == FROM_DRAW:
        image = st.session_state[HANDOFF_IMAGE]
        st.image(image, caption=_("Your drawing from the Draw page"), width=ui_draw.CANVAS_PX // 2)
    else:
        st.caption(_("Draw a digit: every layer below follows your strokes."))
        width = st.slider(_("Stroke width"), 8, 40, 20, key="inside_stroke")
        image = ui_draw.canvas(width, key=CANVAS_KEY)
    if image is None:
        return None, source, None
    return inference.prepare_image(run, image), _(source).lower(), None


def analyze(model, run: runs.RunInfo, processed: np.ndarray, target: int | None) -> inside.Analysis | None:
    """inside.analyze, or None after a clear error when the model does not take this run's images."""
    try:
        return inside.analyze(model, processed, normalize=run.normalize, target=target)
    except Exception as problem:  # noqa: BLE001 - a model that does not fit its run's images is one problem to a user
        _does_not_fit(problem)
        return None


def _does_not_fit(problem: Exception) -> None:
    ui.error(_("This run's model does not take its own dataset's images."),
             _("{__name__}: {problem}. The model file may have been replaced; pick another run.").format(__name__=type(problem).__name__, problem=problem))


def target_picker(class_names: list[str]) -> int | None:
    """The class to explain: the predicted one (default) or any other."""
    options = [PREDICTED, *range(len(class_names))]
    chosen = st.selectbox(_("Explain the class"), options, key=TARGET_KEY,
                          format_func=labels(options, lambda k: _("the predicted class") if k == PREDICTED else class_names[k]))
    return None if chosen == PREDICTED else int(chosen)


def summary(analysis: inside.Analysis, processed: np.ndarray, what: str, class_names: list[str],
            true_label: int | None) -> None:
    """What the model sees, its answer and top-3."""
    picture, answer = st.columns([1, 2])
    picture.image(ui_draw.processed_preview(processed), caption=_("What the model sees: {what}").format(what=what), width=140)
    best = inference.top_k(analysis.probs, class_names, k=3)
    truth = "" if true_label is None else " · " + _("true class {name}").format(name=class_names[true_label])
    answer.metric(_("Prediction"), best[0][0], _("{best:.1%} sure{truth}").format(best=best[0][1], truth=truth), delta_color="off", delta_arrow="off")
    answer.caption(_("Top 3: ") + " · ".join(f"{name}: {p:.1%}" for name, p in best))


def saliency(analysis: inside.Analysis, processed: np.ndarray, class_names: list[str]) -> None:
    """The saliency map over the input, titled with the layer it comes from, with how to read it;
    for CNNs, Grad-CAM alone and gradient x input beside each other below it."""
    maps = [(inside.GRADIENT_X_INPUT, analysis.gradient_x_input, analysis.gradient_x_input_source)]
    if analysis.grad_cam is not None:
        _saliency_chart(st, analysis.saliency_method, analysis.saliency, analysis.saliency_source,
                        analysis, processed, class_names)
        maps.insert(0, (inside.GRAD_CAM, analysis.grad_cam, analysis.grad_cam_source))
    for column, (method, values, source) in zip(st.columns(len(maps)), maps):
        _saliency_chart(column, method, values, source, analysis, processed, class_names)


def _saliency_chart(where, method: str, values: np.ndarray, source: str, analysis: inside.Analysis,
                    processed: np.ndarray, class_names: list[str]) -> None:
    title = _("{method} for class {name}").format(method=_(method), name=class_names[analysis.target])
    fig = inside_charts.saliency_figure(processed, values, title, box=inside.saliency_box(values), subtitle=source)
    where.plotly_chart(fig, key=f"inside_saliency_{method}")
    where.caption(_(HOW_TO_READ[method]).format(source=source))


def forward_pass(analysis: inside.Analysis, class_names: list[str]) -> None:
    """Every layer's output, in order, titled with its output shape and parameter count."""
    last = len(analysis.layers) - 1
    for position, (info, values) in enumerate(zip(analysis.layers, analysis.activations)):
        key = f"inside_layer_{position}"
        if position == last and info.output_shape == (len(class_names),):
            fig = charts.probability_figure(values, class_names)
            fig.update_layout(title_text=_("{layer} · output: {title}").format(layer=info.title, title=fig.layout.title.text))
            st.plotly_chart(fig, key=key)
        elif len(info.output_shape) == 3:
            fig = inside_charts.feature_maps_figure(values, info.title)
            if info.output_shape[-1] > WIDE_LAYER_CHANNELS:
                with st.expander(_("{title} (all {output_shape} channels)").format(title=info.title, output_shape=info.output_shape[-1])):
                    st.plotly_chart(fig, key=key)
            else:
                st.plotly_chart(fig, key=key)
        else:
            st.plotly_chart(inside_charts.dense_figure(values, info.title), key=key)


def learned_weights(model, run: runs.RunInfo) -> None:
    """First-layer filters, unit weights or (softmax regression) the class templates."""
    weights = inside.first_layer_weights(model, class_names(run.class_names))
    if weights is None:
        st.info(_("This model's first weighted layer is neither a convolution nor a Dense layer on the pixels."),
                icon=":material/info:")
        return
    titles = {
        "conv_filters": _("First-layer filters ({layer}), {count} of them"),
        "unit_weights": _("Input weights of the first {count} units of {layer}"),
        "class_templates": _("The 10 weight images: the whole softmax model"),
    }
    st.plotly_chart(inside_charts.weight_images_figure(weights.images, weights.titles,
                                                          titles[weights.kind].format(layer=weights.layer_name,
                                                                                      count=len(weights.images))),
                    key="inside_weights")
    st.caption(_("Blue: ink there raises the output; red: ink there lowers it; white: ignored. ")
               + (_("For softmax regression these images are the explanation: the score of a class is the sum of "
                  "the drawing's ink times that class's image.") if weights.kind == "class_templates" else ""))


@st.cache_data(show_spinner=False, max_entries=8)
def _features(run_id: str, stamp: float, data_dir: str, _model, _x: np.ndarray, normalize: bool):
    indices = inside.sample_indices(len(_x))
    features, probs = inside.penultimate_features(_model, _x[indices], normalize=normalize)
    return indices, features, probs.argmax(axis=1)


@st.cache_data(show_spinner=False, max_entries=8)
def _coords(run_id: str, stamp: float, data_dir: str, method: str, _features: np.ndarray) -> np.ndarray:
    return inside.tsne_2d(_features) if method == "t-SNE" else inside.pca_2d(_features)


def _needed_test_images(run: runs.RunInfo, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    split = test_images(run)
    if split is None:
        st.info(_("{what} needs the run's test images, which are not available here.").format(what=what), icon=":material/info:")
    return split


def _cache_key(run: runs.RunInfo) -> tuple[str, float, tuple[str, str]]:
    """What a per-run cache entry depends on: the run's model file (ids are unique only within one
    workspace) and its age, and where its dataset is read from."""
    return str(run.model_path), run.model_path.stat().st_mtime, ui.dataset_key(run.dataset.get("name", ""))


def embedding(model, run: runs.RunInfo) -> None:
    """PCA map at once; t-SNE on a button, cached per run."""
    split = _needed_test_images(run, _("The map"))
    if split is None:
        return
    x_test, y_test = split
    key = _cache_key(run)
    progress = st.empty()
    progress.progress(0.0, text=_("Computing the penultimate layer of the test images…"))
    try:
        indices, features, predicted = _features(*key, model, x_test, run.normalize)
    except Exception as problem:  # noqa: BLE001 - shown, never a traceback
        progress.empty()
        _does_not_fit(problem)
        return
    method = "PCA"
    tsne_state = f"inside_tsne_{run.run_id}"
    if st.session_state.get(tsne_state) or st.button(_("Compute t-SNE (takes a while; kept for this run)"),
                                                     icon=":material/scatter_plot:", key="inside_tsne"):
        st.session_state[tsne_state] = True
        progress.progress(0.3, text=_("Running t-SNE on the features… (tens of seconds on a small CPU)"))
        method = "t-SNE"
    coords = _coords(*key, method, features)
    progress.empty()
    labels = y_test[indices]
    names = class_names(run.class_names)
    fig = inside_charts.embedding_figure(coords, labels, predicted, names, indices=indices,
                                         title=_("{method} of {count:,} test images ({layer})").format(
                                             method=method, count=len(indices), layer=inside.layer_chain(model)[-2].name))
    event = st.plotly_chart(fig, key="inside_map", on_select="rerun", selection_mode="points")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    picked = [int(point["customdata"][0]) for point in points if point.get("customdata")][:8]
    if picked:
        st.image([x_test[i] for i in picked], width=84,
                 caption=[_("#{index} · true {name}").format(index=i, name=names[int(y_test[i])]) for i in picked])
    else:
        st.caption(_("Click a point (or drag a box) to see its test image."))


@st.cache_data(show_spinner=False, max_entries=8)
def _mistakes(run_id: str, stamp: float, data_dir: str, _model, _x, _y, normalize: bool):
    return inside.misclassified(_model, _x, _y, normalize=normalize)


def mistakes(model, run: runs.RunInfo) -> None:
    """The first misclassified test images, with their saliency and top-3."""
    split = _needed_test_images(run, _("The gallery"))
    if split is None:
        return
    x_test, y_test = split
    try:
        with st.spinner(_("Finding the test images this run gets wrong…")):
            items = _mistakes(*_cache_key(run), model, x_test, y_test, run.normalize)
    except Exception as problem:  # noqa: BLE001 - shown, never a traceback
        _does_not_fit(problem)
        return
    if not items:
        st.success(_("This run gets every test image right."), icon=":material/check:")
        return
    names = class_names(run.class_names)
    grid = st.grid(6, gap="xsmall", border=True, key="inside_mistakes")
    for item in items:
        with grid.cell():
            st.image(inside_charts.overlay_rgb(x_test[item.index] / 255.0, item.saliency), width="stretch")
            top3 = " · ".join(f"{names[k]}: {p:.0%}" for k, p in item.top3)
            st.caption(_("#{index}: true {names}, said {names2}  \n{top3}").format(index=item.index, names=names[item.label], names2=names[item.predicted], top3=top3))
