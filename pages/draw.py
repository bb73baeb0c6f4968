"""Draw: write a digit (or upload a picture) and see what one or several models answer."""

import streamlit as st

from lib.ui import common as ui, draw as ui_draw, inside as ui_inside
from lib.ui.i18n import N_, _, labels

SOURCES = [N_("Draw"), N_("Upload an image instead")]

ui.require_entry()

st.title(_("Draw"))
usable = ui_draw.drawable_runs_or_stop(_("No model to ask yet."))
by_id = {run.run_id: run for run in usable}
chosen_ids = st.multiselect(
    _("Models to ask"), list(by_id), default=ui_draw.default_selection(usable), format_func=ui.run_labels(usable).__getitem__,
    max_selections=ui_draw.MAX_MODELS, key="draw_models",
    help=_("Pick up to four runs to compare their answers on the same drawing."),
)
chosen = [by_id[run_id] for run_id in chosen_ids]

pad, answers = st.columns([2, 3])
with pad:
    photos = ui_draw.objects_only(chosen)
    if photos:
        ui_draw.explain_objects(chosen)
    source = st.segmented_control(_("Input"), SOURCES, format_func=labels(SOURCES), key="draw_source",
                                  default="Upload an image instead" if photos else "Draw")
    if source == "Upload an image instead":
        upload = st.file_uploader(_("PNG or JPEG, up to 5 MB"), type=["png", "jpg", "jpeg"], key="draw_upload")
        image = ui_draw.uploaded_image(upload)
        if image is not None:
            st.image(image, caption=_("Your image"), width=ui_draw.CANVAS_PX)
    else:
        with st.container(key="draw_hint"):  # keyed: a phone's layout leaves it out (lib/ui/phone.css)
            st.caption(_("Draw one digit, large and centred or not: the app scales and centres it like MNIST."))
        with st.container(key="draw_tools"):  # keyed: one row on a phone too
            stroke, clear = st.columns([3, 1], vertical_alignment="bottom")
            width = stroke.slider(_("Stroke width"), 8, 40, 20, key="draw_stroke")
            clear.button(_("Clear"), on_click=ui_draw.clear_canvas, icon=":material/delete:", key="draw_clear")
        image = ui_draw.canvas(width)
with answers:
    if not chosen:
        st.info(_("Pick at least one model above."), icon=":material/info:")
    elif image is None:
        st.info(_("Draw a digit on the canvas to see the predictions."), icon=":material/draw:")
    else:
        ui_draw.show_answers(image, chosen)
        if st.button(_("Look inside {display_name} for this drawing").format(display_name=chosen[0].display_name), icon=":material/visibility:",
                     key="draw_inside"):
            ui_inside.open_inside(chosen[0].run_id, image=image)
