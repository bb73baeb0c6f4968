"""Compare: runs side by side (curves and a sortable table); rename, delete, download, export or import a run."""

import streamlit as st

from lib.ui import common as ui, compare as ui_compare, data as ui_data, exports as ui_exports
from lib.ui.i18n import _

ui.require_entry()

st.title(_("Compare"))
found, damaged = ui.list_runs()
ui.show_damaged(damaged)
if not found:
    st.info(_("No trained runs yet. Train one on the **Train** page, or import one below."), icon=":material/info:")
    ui_data.import_section("compare")
    st.stop()

st.subheader(_("Curves and test accuracy"))
chosen = ui.run_picker(_("Runs to compare"), found, key=ui_compare.COMPARE_PICKER, multi=True)
ui_compare.compare_charts(chosen)

st.subheader(_("All runs"))
st.caption(_("Click a column header to sort. ★ marks the best measured test accuracy on each dataset; "
           "an imported run's scores are claimed, not verified, and never starred."))
ui_compare.runs_overview(found)

st.subheader(_("Download, rename or delete a run"))
managed = ui_compare.manage_run(found)
ui_exports.export_section(managed, key="compare")

with st.expander(_("Import a run bundle or a Keras model")):
    ui_data.import_section("compare")
