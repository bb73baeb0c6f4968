"""Predictions: a run's probabilities on its test set, as images with labels (tutorial lessons 1 and 10)."""

import streamlit as st

from lib.ui import common as ui, inside as ui_inside, predictions as ui_predictions
from lib.ui.i18n import _

ui.require_entry()

st.title(_("Predictions"))
st.caption(_("For every test image the model outputs a probability per class; its prediction is the most "
           "probable class. Browse random test images, spot the mistakes, and see the full probabilities."))

found, damaged = ui.list_runs()
ui.show_damaged(damaged)
run = ui.run_picker(_("Run"), found, key="pred_run")
if run is None:
    st.stop()
loaded = ui_predictions.load_test_predictions(run)
if loaded is None:
    st.stop()
preds, x_test = loaded
class_names = ui.class_names(run.class_names)
scores = ui_predictions.score_row(run, preds)

st.subheader(_("Random test images"))
choice = ui_predictions.grid_filters(class_names)
inspected = ui_predictions.sample_grid(preds, x_test, class_names, **choice)
if inspected is not None and st.button(_("Look inside the model for this image"), icon=":material/visibility:",
                                       key="pred_inside"):
    ui_inside.open_inside(run.run_id, test_index=inspected)

ui_predictions.confusion_details(scores, class_names)
