"""Use your model elsewhere: a run's SavedModel, TFLite and ONNX downloads on its report and on Compare.

The files are made on request outside the page run (lib.execution.exporting: a worker thread and a
child process), cached per run, and offered only after their check against Keras passed; this
module only asks, polls and shows. It imports no TensorFlow, converter or runtime.
"""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from lib.execution import exporting
from lib.models import exports, snippets, webpage
from lib.store import profile, runs
from lib.ui import common as ui
from lib.ui.i18n import _, engine_text

POLL_SECONDS = 1.0
REFUSED = "exports_refused"  # session state: why the last request was not queued, shown once


@st.cache_resource
def export_manager() -> exporting.ExportManager:
    """One process-wide export queue: one child process at a time, one request per visitor; on a shared
    server an export also waits while a training process runs (their memory would add up)."""
    if not profile.current().public:
        return exporting.ExportManager()
    jobs = ui.job_manager()
    return exporting.ExportManager(busy=lambda: bool(jobs.running()))


def export_section(run: runs.RunInfo, *, key: str) -> None:
    """The run's exports: a button that makes them, their progress, then the checked downloads."""
    st.markdown(_("##### Use your model elsewhere"))
    workspace = ui.workspace()
    out_dir = exporting.cache_dir(run, workspace)
    checks = exports.read_checks(out_dir, run.model_path)
    if len(checks) == len(exports.FORMATS):
        show_exports(run, out_dir, checks, key=key)
        return
    task = export_manager().task(out_dir)
    if task is not None and task.active:
        _progress(str(out_dir), key=key)
        return
    if task is not None and task.state == exporting.FAILED:
        ui.error(_("The export files could not be made."), task.error)
    st.caption(_("The model as a TensorFlow SavedModel (zip), TFLite (float32, and quantized: about 4x smaller) and "
               "ONNX (with a page that runs it in a browser), for servers, phones and web pages. Made on request "
               "(usually 10-30 s); each is loaded back with its own runtime and run on 100 test images against "
               "Keras before it is offered."))
    st.button(_("Make the export files"), key=f"{key}_exports_make", icon=":material/deployed_code:",
              on_click=_request, args=(run, workspace, ui.visitor_id()))
    refused = st.session_state.pop(REFUSED, None)
    if refused:
        ui.error(_("The export was not started."), refused)


def _request(run: runs.RunInfo, workspace, visitor: str) -> None:
    try:
        export_manager().request(run, workspace, visitor)
    except exporting.ExportRefused as problem:
        st.session_state[REFUSED] = str(problem)


def _progress(task_key: str, *, key: str) -> None:
    """Where the request is, redrawn every second; the whole page reruns once it has ended."""

    @st.fragment(run_every=POLL_SECONDS)
    def poll():
        task = export_manager().task(task_key)
        active = task is not None and task.active
        st.info(task.describe() if task else _("Starting…"), icon=":material/hourglass_top:")
        ui.rerun_when_ended(f"_exports_active_{key}", active, initially=True)

    poll()


def _web_page(facts: exports.ModelFacts, onnx_path, name: str) -> bytes:
    return webpage.page_for(facts, onnx_path.read_bytes(), name=name).encode("utf-8")


def check_table(checks: dict[str, exports.ExportCheck]) -> pd.DataFrame:
    """One row per format: size, runtime and how it compared with Keras."""
    rows = []
    for name, check in checks.items():
        spec = exports.FORMATS[name]
        measured = check.max_prob_diff is not None and check.images
        rows.append({
            _("format"): spec.title,
            _("size"): exports.human_bytes(check.bytes) if check.ok else "—",
            _("checked with"): spec.runtime,
            _("largest probability difference"): f"{check.max_prob_diff:.1e}" if measured else "—",
            _("same class as Keras"): f"{check.agree}/{check.images}" + (
                " " + _("({count} near-tie)").format(count=check.near_ties) if check.near_ties else ""
            ) if measured else "—",
            _("offered"): _("yes") if check.ok else _("no"),
        })
    return pd.DataFrame(rows)


def show_exports(run: runs.RunInfo, out_dir, checks: dict[str, exports.ExportCheck], *, key: str) -> None:
    """The checks as a table, then per format its download, what its check found and a runnable snippet."""
    source = next(iter(checks.values())).image_source
    mixed = (" " + _("This run computes in 16-bit floats; its exports compute in float32, so their probabilities "
                     "differ a little more.") if exports.ModelFacts.of(run).mixed_precision else "")
    st.caption(_("Each file was loaded back with its own runtime and run on {source}; the table compares its class probabilities with the Keras model's.{mixed}").format(source=engine_text(source), mixed=mixed))
    st.dataframe(check_table(checks), hide_index=True, key=f"{key}_exports_table")
    facts = exports.ModelFacts.of(run)
    tabs = st.tabs([exports.FORMATS[name].title for name in checks])
    for tab, (name, check) in zip(tabs, checks.items()):
        spec = exports.FORMATS[name]
        with tab:
            st.caption(_(spec.note))
            if not check.ok:
                ui.error(_("{title} is not offered.").format(title=spec.title), _("Its check failed: {reason}.").format(reason=engine_text(check.reason)))
                continue
            download_name = f"{run.run_id}-{spec.file_name}"
            st.download_button(f"{spec.title} · {exports.human_bytes(check.bytes)}",
                               functools.partial((out_dir / spec.file_name).read_bytes), download_name,
                               mime=spec.mime, key=f"{key}_dl_{name}", icon=":material/download:", on_click="ignore")
            st.caption(check.check_text[0].upper() + check.check_text[1:] + ".")
            if name == "onnx" and webpage.offered_for(facts):
                st.download_button(_("Browser page (.html)"), functools.partial(_web_page, facts, out_dir / spec.file_name,
                                                                            run.display_name),
                                   f"{run.run_id}-classify.html", mime="text/html", key=f"{key}_dl_onnx_page",
                                   icon=":material/web:", on_click="ignore",
                                   help=_("One file to open in any browser: draw, and this model answers there with "
                                        "onnxruntime-web (from the jsDelivr CDN). The model is inside the file."))
            code = snippets.snippet(name, facts, name=run.display_name, file_name=download_name)
            with st.expander(_("Python: classify a picture with it ({runtime})").format(runtime=exports.FORMATS[name].runtime)):
                st.code(code, language="python")
                st.download_button(_("Download the snippet"), code, snippets.script_name(name), mime="text/x-python",
                                   key=f"{key}_dl_{name}_snippet", icon=":material/code:")
