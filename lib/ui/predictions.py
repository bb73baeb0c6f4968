"""Predictions page widgets: a run's test-set predictions as a grid, one image up close, the mistakes.

Streamlit-only glue: sampling, captions and scores are in lib.models.predictions,
figures in lib.viz.charts.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pandas as pd
import streamlit as st

from lib.data import datasets, paths
from lib.models import inference, predictions
from lib.store import profile, runs
from lib.ui import common as ui, draw as ui_draw
from lib.ui.i18n import _, engine_text, labels
from lib.viz import charts

# Session-state and widget keys of the page.
SEED = "pred_seed"
GRID_SIZE, TRUE_CLASS, ONLY_WRONG, INSPECT = "pred_grid_size", "pred_true_class", "pred_only_wrong", "pred_inspect"
ALL_CLASSES = "all"
GRID_MIN_CELL_PX = 100  # narrower cells wrap to fewer columns: images and captions stay readable
INSPECT_IMAGE_PX = 196
TOP_CONFUSED = 5
MARKDOWN_PUNCTUATION = set("\\`*_{}[]<>()#+-.!|~:$")
PREWARM_THREAD = "studio-prewarm"


@st.cache_data(show_spinner=False, max_entries=8)
def _test_probabilities(
    _model, _images: np.ndarray, model_path: str, stamp: float, dataset: str, dataset_key: tuple[str, str],
    normalize: bool,
) -> np.ndarray:
    """Probabilities for a run's whole test split, once per run (the model and images are keyed by the rest)."""
    return inference.predict_proba(_model, _images, normalize=normalize)


def run_test_probabilities(run: runs.RunInfo, model, x_test: np.ndarray, key: tuple[str, str]) -> np.ndarray:
    """`run`'s probabilities on its dataset's test images, computed once per run and dataset `key`."""
    return _test_probabilities(model, x_test, str(run.model_path), run.model_path.stat().st_mtime,
                               run.dataset.get("name", ""), key, run.normalize)


def prewarm_shared() -> threading.Thread | None:
    """Public: fill the shared caches a first Predictions or Draw visit needs, in the background.

    What every visitor's first look at the bundled model needs (TensorFlow, the model, the
    MNIST test split and its 10,000 predictions) is computed once and shared, but the first
    visitors used to wait for it together: with 8 arriving at once under a training it took
    over a minute. Started once per server by the first script run; pages that need a value
    still being computed wait on Streamlit's per-key cache lock instead of computing it again.
    `MNIST_STUDIO_PREWARM=0` turns it off (bench/load.py measures both).
    """
    active = profile.current()  # every rerun passes here: nothing but the environment is read
    if not active.public or not active.limits.prewarm:
        return None
    return _prewarm_thread(str(paths.data_dir()))


@st.cache_resource(show_spinner=False)
def _prewarm_thread(data_dir: str) -> threading.Thread:
    # The cached functions' spinners have no page to show in from this thread; Streamlit says so once per call.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: record.threadName != PREWARM_THREAD)
    thread = threading.Thread(target=warm_bundled_predictions, args=(data_dir,), name=PREWARM_THREAD, daemon=True)
    thread.start()
    return thread


def warm_bundled_predictions(data_dir: str) -> bool:
    """The bundled model, its dataset's test split and predictions, into the caches pages read; False if
    anything is missing (the page that needs it then says why, as without warming)."""
    run = runs.bundled_run()
    if run is None:
        return False
    try:
        x_test, _labels = ui.shared_test_split(run.dataset.get("name", ""), data_dir)
        run_test_probabilities(run, ui.model_for(run), x_test, ui.shared_dataset_key(data_dir))
    except Exception:  # noqa: BLE001 - warming is an optimisation; the page reports the real problem
        logging.getLogger(__name__).warning(_("Prewarming the bundled model's predictions failed"), exc_info=True)
        return False
    return True


def load_test_predictions(run: runs.RunInfo) -> tuple[predictions.TestPredictions, np.ndarray] | None:
    """The run's predictions on its dataset's test split, and the images; None after showing an error."""
    name = run.dataset.get("name", "")
    try:
        x_test, y_test = ui.test_split(name)
    except (ValueError, datasets.DatasetUnavailable, datasets.InvalidDataset) as problem:
        where = (
            "" if isinstance(problem, datasets.DatasetUnavailable)  # its message already says where to put what
            else " " + _("Put `{name}.npz` into the data directory ({data_dir}) or point `MNIST_STUDIO_DATA_DIR` "
                         "at the folder that has it.").format(name=name, data_dir=paths.data_dir())
        )
        ui.error(
            _("This run was trained on {value}, which is not available here.").format(value=run.dataset.get('title') or name),
            _("{problem}{where} The **Data** page lists the datasets found; or pick another run.").format(problem=engine_text(problem), where=where),
        )
        return None
    try:
        model = ui.model_for(run)
    except (runs.DamagedRun, runs.RunNotFound, OSError) as problem:
        ui.error(_("This run's model cannot be loaded."),
                 _("{problem} Pick another run, or delete this one on **Compare**.").format(problem=engine_text(problem)))
        return None
    if not ui_draw.warn_if_diverged(run, model):
        return None
    try:
        with st.spinner(_("Predicting the whole test set…")):
            probs = run_test_probabilities(run, model, x_test, ui.dataset_key(name))
        return predictions.from_probabilities(probs, y_test, len(run.class_names)), x_test
    except Exception as problem:  # noqa: BLE001 - a model that does not fit the data is one problem to a user
        ui.error(
            _("This run's model does not fit its dataset's test images."),
            _("{__name__}: {problem}. The dataset file may have changed since training; train a new run on it.").format(__name__=type(problem).__name__, problem=problem),
        )
        return None


def score_row(run: runs.RunInfo, preds: predictions.TestPredictions) -> dict:
    """Test accuracy and mistakes as metrics; returns the scores (confusion matrix included)."""
    scores = preds.scores()
    wrong = int((~preds.correct).sum())
    dataset = run.dataset.get("title") or run.dataset.get("name", "?")
    st.caption(_("Test set of **{dataset}**: {count:,} images the run never trained on.").format(dataset=_(dataset), count=len(preds.y_true)))
    cols = st.columns(3)
    cols[0].metric(_("Test accuracy"), f"{scores['accuracy']:.2%}", border=True)
    cols[1].metric(_("Misclassified (of {count:,})").format(count=len(preds.y_true)), f"{wrong:,}", border=True)
    cols[2].metric(_("Test loss"), f"{scores['loss']:.4f}", border=True, help=_("Mean cross-entropy on the test set"))
    return scores


def _shuffle() -> None:
    st.session_state[SEED] = st.session_state.get(SEED, 0) + 1


def grid_filters(class_names: list[str]) -> dict:
    """Grid size, true-class filter, misclassified-only switch and the Shuffle button."""
    size_col, class_col, wrong_col, shuffle_col = st.columns([3, 3, 2, 1.4], vertical_alignment="bottom")
    with size_col:
        count = st.segmented_control(_("Images"), predictions.GRID_SIZES, default=predictions.GRID_SIZES[0],
                                     required=True, key=GRID_SIZE, persist_state="session")
    with class_col:
        options = [ALL_CLASSES, *range(len(class_names))]
        true_class = st.selectbox(_("True class"), options, key=TRUE_CLASS, persist_state="session",
                                  format_func=labels(options, lambda c: _("all classes") if c == ALL_CLASSES else class_names[c]))
    with wrong_col:
        only_wrong = st.toggle(_("Only misclassified"), key=ONLY_WRONG, persist_state="session")
    with shuffle_col:
        st.button(_("Shuffle"), icon=":material/shuffle:", on_click=_shuffle, key="pred_shuffle",
                  help=_("Draw a new random sample"), width="stretch")
    return {
        "count": int(count),
        "true_class": None if true_class == ALL_CLASSES else int(true_class),
        "only_wrong": bool(only_wrong),
        "seed": int(st.session_state.get(SEED, 0)),
    }


def sample_grid(preds: predictions.TestPredictions, x_test: np.ndarray, class_names: list[str], *,
                count: int, seed: int, true_class: int | None, only_wrong: bool) -> int | None:
    """A seeded random sample of test images passing the filters, then one of them up close;
    returns that one's test index (None when no image passes the filters)."""
    indices = predictions.sample_indices(preds, count=count, seed=seed, true_class=true_class, only_wrong=only_wrong)
    available = len(predictions.candidate_indices(preds, true_class=true_class, only_wrong=only_wrong))
    st.caption(predictions.sample_note(len(indices), available, count) + _(" Misclassified ones are captioned in red."))
    if not len(indices):
        return None
    captions = predictions.captions(preds, indices, class_names)
    image_grid(x_test[indices], captions, preds.correct[indices], key="pred_grid")
    st.subheader(_("One image up close"))
    return inspect_image(preds, x_test, indices, captions, class_names)


def image_grid(images: np.ndarray, captions: list[str], correct: np.ndarray, *, key: str) -> None:
    """Images with their captions in a wrapping grid; wrong ones captioned in red."""
    grid = st.grid(predictions.grid_columns(len(images)), min_column_width=GRID_MIN_CELL_PX, gap="xsmall",
                   border=True, key=key)
    for image, text, right in zip(images, captions, correct):
        with grid.cell():
            st.image(image, width="stretch", clamp=True)
            text = _plain(text)
            st.caption(text if right else _(":red[{text}]").format(text=text))


def _plain(text: str) -> str:
    """Text shown as is in Markdown: punctuation escaped (no list numbers, links), line breaks kept."""
    escaped = "".join(f"\\{ch}" if ch in MARKDOWN_PUNCTUATION else ch for ch in text)
    return escaped.replace("\n", "  \n")


def inspect_image(preds: predictions.TestPredictions, x_test: np.ndarray, indices: np.ndarray,
                  captions: list[str], class_names: list[str]) -> int:
    """Pick one shown image: it large, and its full probability bar chart; returns its test index."""
    positions = list(range(len(indices)))
    wrong = [p for p in positions if not preds.correct[indices[p]]]
    chosen = st.selectbox(_("Image to inspect"), positions, index=wrong[0] if wrong else 0, key=INSPECT,
                          format_func=lambda p: captions[p].replace("\n", " · "))
    index = int(indices[chosen])
    picture, chart = st.columns([1, 3], vertical_alignment="center")
    picture.image(x_test[index], width=INSPECT_IMAGE_PX, clamp=True, caption=_("test image #{index}").format(index=index))
    chart.plotly_chart(
        charts.probability_figure(preds.probs[index], class_names, true_label=int(preds.y_true[index])),
        key="pred_probability",
    )
    return index


def confusion_details(scores: dict, class_names: list[str]) -> None:
    """The most frequent mistakes as a small table, and the confusion heatmap in an expander."""
    pairs = charts.confused_pairs(scores["confusion"], class_names, top=TOP_CONFUSED)
    st.subheader(_("Most confused classes"))
    if pairs:
        table = pd.DataFrame(pairs, columns=[_("true class"), _("predicted as"), _("images")])
        st.dataframe(table, hide_index=True, key="pred_confused_pairs", width="content")
    else:
        st.caption(_("No mistakes on the test set."))
    with st.expander(_("Confusion matrix")):
        normalize = st.toggle(_("Percent of each true class"), key="pred_confusion_percent")
        st.plotly_chart(charts.confusion_figure(scores["confusion"], class_names, normalize=normalize),
                        key="pred_confusion")
