"""Train: pick an architecture and settings, train in the background, watch it live."""

import streamlit as st

from lib.ui import common as ui, exports as ui_exports, train as ui_train
from lib.ui.i18n import _

ui.require_entry()

st.title(_("Train"))
info = ui.selected_dataset()
st.caption(_("Dataset: **{title}** · {num_classes} classes · images {items} (change it in the sidebar)").format(title=_(info.title), num_classes=info.num_classes, items=' x '.join(map(str, info.input_shape))))

manager = ui.job_manager()
job_id = st.session_state.get(ui.LAST_JOB) or ui_train.active_job_id()  # a job from before a restart too
job = manager.snapshot(job_id) if job_id else None
if job is not None:  # the visitor's training comes first: live while it runs, then its results
    st.subheader(_("3 · Training"))
    ui_train.job_panel(job_id)
    run = ui_train.finished_run(job_id)
    if run is not None:
        st.subheader(_("4 · Results"))
        ui.run_report(run)
        ui_exports.export_section(run, key="report")

busy = [other for other in manager.running() if other.session_id != ui.visitor_id()]
if busy:  # outside the folded form: a visitor whose run waits must see why
    st.info(_("Someone else is training right now; your run will queue behind it."), icon=":material/hourglass:")

with ui_train.form_container(job):
    with st.container(border=True):
        st.subheader(_("1 · Architecture"))
        arch_name, layers = ui_train.architecture_picker(info)

    with st.container(border=True):
        st.subheader(_("2 · Settings"))
        config = ui_train.settings_form(arch_name, layers)

    if config is not None:
        ui.show_as_code(config, key="train_code")
    allowed = ui_train.limits_note(config)
    # A callback, so the job exists before the next run draws the sidebar's job status.
    st.button(_("Train"), type="primary", icon=":material/play_arrow:", disabled=config is None or not allowed,
              key="train_start", on_click=ui_train.submit, args=(config,))
    ui_train.show_submit_problem()
