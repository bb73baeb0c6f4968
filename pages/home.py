"""Home: what MNIST Studio does, the quick paths, and recent runs. Renders without TensorFlow."""

import streamlit as st

from lib.ui import common as ui, train as ui_train
from lib.ui.i18n import _

ui.require_entry()

st.title(_("MNIST Studio"))
st.markdown(
    _("Train neural networks on handwritten digits and clothing images, watch them learn "
    "with live charts, then test them on your own drawings, all without writing code. "
    "Every architecture from the classic Keras tutorials is here, from softmax regression to small CNNs.")
)

quick_train, quick_draw, quick_data = st.columns(3)
with quick_train.container(border=True):
    st.subheader(_(":material/bolt: Train in one click"))
    st.caption(_("A fast CNN on MNIST, one epoch with a one-cycle learning rate: 99% test accuracy "
               "after about 25 seconds of training on a 2-core laptop CPU (bench: 25.2 s)."))
    if st.button(_("Train a model now"), type="primary", key="home_quick_train") and ui_train.submit_quick_run():
        st.switch_page("pages/train.py")
    ui_train.show_submit_problem()
with quick_draw.container(border=True):
    st.subheader(_(":material/draw: Draw a digit"))
    st.caption(_("A pretrained model is bundled, so drawing works before you train anything."))
    st.page_link("pages/draw.py", label=_("Open the canvas"), icon=":material/arrow_forward:")
with quick_data.container(border=True):
    st.subheader(_(":material/dataset: Look at the data"))
    st.caption(_("Samples per class, pixel statistics, and why normalization matters."))
    st.page_link("pages/data.py", label=_("Explore the dataset"), icon=":material/arrow_forward:")

st.subheader(_("Recent runs"))
found, damaged = ui.list_runs()
ui.show_damaged(damaged)
if found:
    st.dataframe(ui.runs_table(found[:8]), hide_index=True, key="home_recent_runs",
                 column_config=ui.runs_table_format())
    st.page_link("pages/compare.py", label=_("Compare all runs"), icon=":material/compare_arrows:")
else:
    st.info(_("No runs yet. Start one above or on the Train page."), icon=":material/info:")

with st.container(border=True):
    st.subheader(_(":material/school: The ten lessons of the Keras tutorials"))
    st.caption(_("Probabilities, wider and deeper models, overfitting, normalization, callbacks, dropout and more: "
               "each lesson trains the tutorial's exact recipe in one click and shows where to look."))
    st.page_link("pages/lessons.py", label=_("Open the lessons"), icon=":material/arrow_forward:")
