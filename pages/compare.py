"""Compare: runs side by side (curves and a sortable table), and rename or delete a run."""

import streamlit as st

from lib import ui, ui_compare

ui.require_entry()

st.title("Compare")
found, damaged = ui.list_runs()
ui.show_damaged(damaged)
if not found:
    st.info("No trained runs yet. Train one on the **Train** page.", icon=":material/info:")
    st.stop()

st.subheader("Validation curves")
chosen = ui.run_picker("Runs to compare", found, key=ui_compare.COMPARE_PICKER, multi=True)
ui_compare.compare_charts(chosen)

st.subheader("All runs")
st.caption("Click a column header to sort. ★ marks the best test accuracy.")
ui_compare.runs_overview(found)

st.subheader("Rename or delete a run")
ui_compare.manage_run(found)
