"""Compare: runs side by side (curves and a sortable table); rename, delete, download, export or import a run."""

import streamlit as st

from lib.ui import common as ui, compare as ui_compare, data as ui_data, exports as ui_exports

ui.require_entry()

st.title("Compare")
found, damaged = ui.list_runs()
ui.show_damaged(damaged)
if not found:
    st.info("No trained runs yet. Train one on the **Train** page, or import one below.", icon=":material/info:")
    ui_data.import_section("compare")
    st.stop()

st.subheader("Curves and test accuracy")
chosen = ui.run_picker("Runs to compare", found, key=ui_compare.COMPARE_PICKER, multi=True)
ui_compare.compare_charts(chosen)

st.subheader("All runs")
st.caption("Click a column header to sort. ★ marks the best measured test accuracy on each dataset; "
           "an imported run's scores are claimed, not verified, and never starred.")
ui_compare.runs_overview(found)

st.subheader("Download, rename or delete a run")
managed = ui_compare.manage_run(found)
ui_exports.export_section(managed, key="compare")

with st.expander("Import a run bundle or a Keras model"):
    ui_data.import_section("compare")
