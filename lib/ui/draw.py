"""Draw page widgets: the canvas, the image upload, and side-by-side model answers."""

from __future__ import annotations

import numpy as np
import streamlit as st

from lib.data import drawing
from lib.models import inference
from lib.store import backend, runs
from lib.ui import common as ui
from lib.ui.i18n import N_, _, class_names, engine_text, stop_reason
from lib.viz import charts

CANVAS_PX = 280  # 10x MNIST's 28: fine strokes, and the size the preprocessing is tuned on
# One key for good: a new key mounts a new component, whose stylesheet loads anew; until it
# applies, the drawing canvas sits 288 px lower than where it then jumps to.
CANVAS_KEY = "draw_canvas"
TOOLBAR_ROOM_PX = 24  # with the gaps around it, room for the toolbar the canvas shows above itself on hover
MAX_MODELS = 4
DIVERGED = "diverged"  # a run's meta status when its loss exploded in training (lib.training.loop)
DIVERGED_FIX = N_("Its loss exploded during training, most likely from too high a learning rate. "
                  "Train it again with a lower learning rate.")  # runs saved without a stop reason


def canvas(stroke_width: int, *, key: str = CANVAS_KEY, clears_key: str = ui.DRAW_CLEARS) -> np.ndarray | None:
    """The drawing canvas, below room for its hover toolbar; returns its RGBA pixels, or None
    while it holds no stroke (before the first one, after Clear, undo or its own reset).
    `key` / `clears_key`: another page's canvas (the Data page's drawn classes) and its Clear counter."""
    from streamlit_drawable_canvas import st_canvas

    st.space(TOOLBAR_ROOM_PX)
    clears = st.session_state.get(clears_key, 0)
    result = st_canvas(
        stroke_width=stroke_width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        update_streamlit=True,
        height=CANVAS_PX,
        width=CANVAS_PX,
        drawing_mode="freedraw",
        # The component empties itself, in place, whenever this changes.
        initial_drawing={"objects": [], "clears": clears},
        return_image_data=True,
        key=key,
    )
    if not (result.json_data or {}).get("objects"):
        return None
    return result.image_data


def clear_canvas(key: str = CANVAS_KEY, clears_key: str = ui.DRAW_CLEARS) -> None:
    """Clear's callback: ask the canvas to empty itself and forget its strokes at once."""
    st.session_state[clears_key] = st.session_state.get(clears_key, 0) + 1
    if key in st.session_state:
        # The browser reports its emptied canvas only after this run; until then, no stale answer.
        st.session_state[key]["drawing"] = None


def uploaded_image(upload) -> np.ndarray | None:
    """Decode an uploaded PNG/JPEG after checking type and size; errors shown, never raised."""
    if upload is None:
        return None
    try:
        return drawing.decode_image_upload(upload.getvalue())
    except drawing.InvalidImage as problem:
        ui.error(_("This file cannot be used."), str(problem))
        return None


def drawable_runs(found: list[runs.RunInfo]) -> list[runs.RunInfo]:
    """Runs that take one-channel square images: the ones a drawing can be fed to. A diverged run is
    one of them: its answers come with `warn_if_diverged`, as on every page that shows them."""
    usable = []
    for run in found:
        shape = run.dataset.get("input_shape") or [28, 28, 1]
        if shape[-1] == 1 and shape[0] == shape[1] and run.meta.get("status") != "failed":
            usable.append(run)
    return usable


def warn_if_diverged(run: runs.RunInfo, model) -> bool:
    """Before any answer of a run whose training diverged: say that it is broken, with the cause and the
    fix its meta stores. Returns whether answers may be shown (below the warning): False when its weights
    are no longer numbers (NaN), so there is none; True for it otherwise, and for every other run.
    Draw, Predictions and Inside call it as soon as they have the run's model."""
    if run.meta.get("status") != DIVERGED:
        return True
    answers = all(np.isfinite(weights).all() for weights in model.get_weights())
    nothing = "" if answers else " " + _("Its weights are no longer numbers (NaN), so it has no answer to show at all.")
    ui.error(_("{display_name} is broken: its training diverged, so its answers mean nothing.").format(display_name=run.display_name),
             (stop_reason(run.meta.get("stop_reason") or "") or _(DIVERGED_FIX)) + nothing)
    return answers


def drawable_runs_or_stop(nothing_to: str) -> list[runs.RunInfo]:
    """The runs a drawing can be fed to, after noting damaged folders; stops the page if there is none."""
    found, damaged = ui.list_runs()
    ui.show_damaged(damaged)
    usable = drawable_runs(found)
    if not usable:
        ui.error(nothing_to, _("Train one on the Train page (the bundled default model is missing)."))
        st.stop()
    return usable


def objects_only(chosen: list[runs.RunInfo]) -> bool:
    """Whether every chosen model learned photos of objects (Fashion-MNIST, image folders), not drawn strokes."""
    return bool(chosen) and all(run.dataset.get("kind", "digit") == "object" for run in chosen)


def explain_objects(chosen: list[runs.RunInfo]) -> None:
    """Why a clothing model wants a photo, not a drawing, and what the app does with the photo."""
    names = ", ".join(sorted({run.dataset.get("name", "?") for run in chosen}))
    st.info(
        _("These models learned photos of objects ({names}): a light object on a dark background, as Fashion-MNIST's product photos are. Strokes on a canvas look nothing like that, so their answers to a drawing mean little. Upload a photo instead: the app makes it grayscale, puts the object light on dark, and fits it whole into the model's square, the way Fashion-MNIST was made. Their own test images are on the Predictions page.").format(names=names), icon=":material/checkroom:")


def default_selection(usable: list[runs.RunInfo]) -> list[str]:
    """The run just trained on drawn classes or imported (if any), else the bundled model, else the newest."""
    ids = [run.run_id for run in usable]
    focus = st.session_state.get(ui.DRAW_FOCUS)
    if focus in ids:
        return [focus]
    if runs.BUNDLED_ID in ids:
        return [runs.BUNDLED_ID]
    return ids[:1]


def show_answers(image: np.ndarray, chosen: list[runs.RunInfo]) -> None:
    """Each chosen model's answer side by side: the input it sees, top-3 and all probabilities."""
    columns = st.columns(len(chosen))
    for column, run in zip(columns, chosen):
        with column:
            st.markdown(f"**{run.display_name}**")
            try:
                model = ui.model_for(run)
            except (runs.DamagedRun, backend.StoreError) as problem:
                ui.error(_("This model could not be loaded."), _("{problem} Pick another run.").format(problem=engine_text(problem)))
                continue
            if not warn_if_diverged(run, model):
                continue
            processed, probs = inference.predict_image(model, run, image)
            if processed is None:
                st.info(_("Draw something (or upload an image): no ink found yet."), icon=":material/draw:")
                continue
            names = class_names(run.class_names)
            best = inference.top_k(probs, names, k=3)
            st.metric(_("Prediction"), best[0][0], _("{best:.1%} sure").format(best=best[0][1]), delta_color="off", delta_arrow="off")
            st.caption(" · ".join(f"{name}: {p:.1%}" for name, p in best))
            st.image(processed_preview(processed), caption=_("What the model sees (28 x 28)"), width=140)
            st.plotly_chart(charts.probability_figure(probs, names), key=f"draw_probs_{run.run_id}")


def processed_preview(processed: np.ndarray) -> np.ndarray:
    """The model input blown up with crisp pixels, as uint8 for st.image."""
    scale = max(1, 140 // processed.shape[0])
    big = np.kron(processed, np.ones((scale, scale), dtype=np.float32))
    return (big * 255).round().astype(np.uint8)
