"""Compare: runs side by side (curves and a sortable table), and rename or delete a run."""

import streamlit as st

from lib import ui, ui_results

ui.require_entry()

st.title("Compare")
found, damaged = ui.list_runs()
ui.show_damaged(damaged)
if not found:
    st.info("No trained runs yet. Train one on the **Train** page.", icon=":material/info:")
    st.stop()

st.subheader("Validation curves")
chosen = ui.run_picker("Runs to compare", found, key=ui_results.COMPARE_PICKER, multi=True)
ui_results.compare_charts(chosen)

st.subheader("All runs")
st.caption("Click a column header to sort. ★ marks the best test accuracy.")
ui_results.runs_overview(found)

st.subheader("Rename or delete a run")
ui_results.manage_run(found)
