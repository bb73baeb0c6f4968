"""Inside: what happens between the pixels and the probabilities, for any run and one input."""

import streamlit as st

from lib.ui import common as ui, draw as ui_draw, inside as ui_inside
from lib.ui.i18n import _

ui.require_entry()

st.title(_("Inside"))
st.caption(_("Follow one image through the network layer by layer, see where the model looks, what its first "
           "layer learned, and how it arranges the whole test set."))

usable = ui_draw.drawable_runs_or_stop(_("No model to look into yet."))
run = ui.run_picker(_("Run"), usable, key=ui_inside.RUN_KEY)
model = ui_inside.load_model(run)
if model is None:
    st.stop()

one_input, learned, embedding, mistakes = st.tabs(
    [_("One input"), _("What it learned"), _("Map of the test set"), _("Mistakes")], key="inside_tabs", on_change="rerun")

with one_input:
    controls, view = st.columns([2, 3])
    with controls:
        processed, what, true_label = ui_inside.pick_input(run)
        names = ui.class_names(run.class_names)
        target = ui_inside.target_picker(names)
    with view:
        if processed is None:
            st.info(_("Draw a digit, upload an image or pick a test image to look inside."), icon=":material/draw:")
            analysis = None
        else:
            analysis = ui_inside.analyze(model, run, processed, target)
        if analysis is not None:
            ui_inside.summary(analysis, processed, what, names, true_label)
            st.subheader(_("What it looks at"))
            ui_inside.saliency(analysis, processed, names)
    if analysis is not None:
        st.subheader(_("The forward pass, layer by layer"))
        ui_inside.forward_pass(analysis, names)

if learned.open:
    with learned:
        ui_inside.learned_weights(model, run)
if embedding.open:
    with embedding:
        ui_inside.embedding(model, run)
if mistakes.open:
    with mistakes:
        ui_inside.mistakes(model, run)
