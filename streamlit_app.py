"""MNIST Studio: the router. Page config, session defaults, shared sidebar, navigation."""

import streamlit as st

from lib.ui import (
    common as ui,
    data as ui_data,
    i18n as ui_i18n,
    predictions as ui_predictions,
    train as ui_train,
    workspace as ui_workspace,
)
from lib.ui.i18n import _

ui_i18n.apply_language()  # ?lang=, the session's choice or the browser's: before any text is drawn
st.set_page_config(page_title=_("MNIST Studio"), page_icon=":material/draw:", layout="wide")
ui.keep_keras_state_between_reruns()
ui.apply_session_defaults()
ui_train.apply_defaults()
ui_data.apply_defaults()
if not ui.check_profile():  # a mistyped MNIST_STUDIO_* setting: say which, start nothing
    st.stop()
ui_workspace.open_share_link()
ui.sweep_idle_workspaces()
ui_predictions.prewarm_shared()  # public: the bundled model's test predictions, before the first visitors ask

page = st.navigation(
    [
        st.Page("pages/home.py", title=_("Home"), icon=":material/home:", default=True),
        st.Page("pages/lessons.py", title=_("Lessons"), icon=":material/school:"),
        st.Page("pages/data.py", title=_("Data"), icon=":material/dataset:"),
        st.Page("pages/train.py", title=_("Train"), icon=":material/model_training:"),
        st.Page("pages/predictions.py", title=_("Predictions"), icon=":material/grid_view:"),
        st.Page("pages/draw.py", title=_("Draw"), icon=":material/draw:"),
        st.Page("pages/inside.py", title=_("Inside"), icon=":material/visibility:"),
        st.Page("pages/compare.py", title=_("Compare"), icon=":material/compare_arrows:"),
    ]
)
ui.follow_deep_link()  # a cold server's first visitor who followed a link to a page
ui.sidebar()
page.run()
