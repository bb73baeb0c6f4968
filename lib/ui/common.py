"""Streamlit helpers shared by the pages: session state, caches, sidebar, errors.

Part of lib/ui/, the only package in lib that imports Streamlit (its other modules serve
one page or concern each).
Nothing here imports TensorFlow at module level, so Home renders without it.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import numpy as np
import streamlit as st

from lib.data import catalog, datasets, paths
from lib.execution import jobs, managers, raycluster
from lib.store import backend, profile, runs, workspaces
from lib.ui import layout, workspace as ui_workspace
from lib.ui.i18n import (
    N_,
    _,
    class_names,
    engine_reason,
    engine_text,
    labels,
    language_switch,
    number,
    percent,
    stop_reason,
)

# Session-state keys: declared once, used by every page.
SESSION_ID = "session_id"
DATASET = "dataset"
SELECTED_RUN = "selected_run"
LAST_JOB = "last_job"
DRAW_CLEARS = "draw_canvas_clears"  # bumped by the Draw page's Clear
DEEP_LINK = "deep_link_page"  # the page a cold server's first visitor asked for
BAR_DATASET = "compact_bar_dataset"  # the compact bar's copy of the Dataset picker (phones)
BAR_LANGUAGE = "compact_bar_language"  # the compact bar's copy of the language switch (phones)
DRAW_FOCUS = "draw_focus_run"  # a run just trained on drawn classes or imported: Draw asks it first
DEFAULTS = {DATASET: "mnist", SELECTED_RUN: None, LAST_JOB: None, DRAW_CLEARS: 0, DRAW_FOCUS: None}
JOB_POLL_SECONDS = 1.0  # charts redraw at least once a second while training
SIDEBAR_POLL_SECONDS = 2.0


def require_entry() -> None:
    """Pages run only through the router; a cold deep link is sent through it once, then on to its page.

    Until streamlit_app.py has called st.navigation once, a fresh server treats pages/ as
    Streamlit's old pages folder (1.67: PagesManager.uses_pages_directory) and serves the
    first visitor's /draw as pages/draw.py directly, skipping page config, session defaults
    and the sidebar. The page asked for is remembered, so the router (`follow_deep_link`)
    opens it instead of Home.
    """
    if SESSION_ID not in st.session_state:
        page = Path(sys._getframe(1).f_globals.get("__file__", ""))
        if page.parent.name == "pages":
            st.session_state[DEEP_LINK] = f"pages/{page.name}"
        st.switch_page("streamlit_app.py", query_params=st.query_params.to_dict())


def follow_deep_link() -> None:
    """In the router, after st.navigation: open the page a cold deep link asked for (see `require_entry`)."""
    page = st.session_state.pop(DEEP_LINK, None)
    if page:
        st.switch_page(page, query_params=st.query_params.to_dict())


def apply_session_defaults() -> None:
    st.session_state.setdefault(SESSION_ID, uuid.uuid4().hex)
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def keep_keras_state_between_reruns() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every script run.

    Streamlit (1.67, script_runner._clean_problem_modules) clears the Keras session
    after each run once keras is imported: TensorFlow's kernel cache and a full
    gc.collect(), twice a second while the live charts poll, under a training in
    another thread. Measured in a real browser this cut training from ~2,200 to
    ~720 images/s. Our models live in st.cache_resource and the job manager, not in
    Keras' global session, so nothing needs that clearing. Guarded: if a Streamlit
    release moves the hook, nothing breaks (the slowdown would come back).
    """
    from streamlit.runtime.scriptrunner import script_runner

    if hasattr(script_runner, "_clean_problem_modules"):
        script_runner._clean_problem_modules = _no_cleanup


def _no_cleanup() -> None:
    """We use no matplotlib, and Keras' session must survive reruns (see above)."""


@st.cache_resource
def job_manager() -> jobs.JobManager:
    """One process-wide job manager: jobs survive reruns, page changes and closed tabs.

    In the public profile each training runs in its own process, under the workspace
    quota, with one active job per visitor and a bounded queue (lib.execution.jobs.manager_for);
    with MNIST_STUDIO_RAY_ADDRESS set, trainings run as jobs on that Ray cluster
    (lib.execution.raycluster), under the same caps counted over the whole cluster.
    """
    return managers.manager_for(profile.current())


def check_profile() -> bool:
    """False, after saying what to fix, when the deployment's settings cannot be used."""
    try:
        profile.current()
        raycluster.settings()
    except profile.SettingError as problem:
        error(_("This app's settings are not valid."), _("{problem} (The operator sets these as environment variables or, on Community Cloud, as root-level secrets.)").format(problem=problem))
        return False
    return True


def workspace() -> workspaces.Workspace:
    """Whose runs and datasets this session sees: the runs dir in local, the visitor's own in public."""
    return ui_workspace.current()


def visitor_id() -> str:
    """Who a job belongs to: the visitor's workspace in public, this browser session in local."""
    return ui_workspace.visitor_id(workspace())


def data_key() -> tuple[str, str]:
    """The data dir and this visitor's uploads dir: part of every dataset cache key.

    On a remote store the visitor's uploaded and drawn datasets come back from it first (at most
    once per backend.LIST_TTL_S, shared with the run listing of the same workspace).
    """
    folder = workspace().folder
    backend.current().pull(folder)
    return str(paths.data_dir()), str(datasets.uploads_dir(folder))


@st.cache_data(show_spinner=False, ttl=60)
def dataset_infos(key: tuple[str, str]) -> dict[str, datasets.DatasetInfo]:
    """The datasets a visitor can pick; the data dir's image folders are converted once per store
    (their cache is synced with it, so a restarted server does not convert them again)."""
    from lib.data import imagefolder

    store = backend.current()
    cache = datasets.uploads_dir() / imagefolder.CACHE_SUBDIR
    store.sync(cache)
    found = catalog.available_datasets(*key)
    store.sync(cache, force=True)  # a folder converted just now goes up
    return found


def dataset_key(name: str) -> tuple[str, str]:
    """`data_key()` as far as dataset `name` depends on it: the key to cache its arrays, and what is
    computed from them, under. The uploads dir only when `name` is one of this visitor's uploads; a
    dataset every visitor reads from the same file (MNIST in the data dir) gets one key for all, so a
    shared server holds one copy of its test split (and of a model's predictions on it), not one per visitor.
    """
    key = data_key()
    info = dataset_infos(key).get(name)
    if info is not None and info.path is not None and Path(info.path).is_relative_to(key[1]):
        return key
    return shared_dataset_key(key[0])


def shared_dataset_key(data_dir: str) -> tuple[str, str]:
    """`dataset_key` of a dataset in the data dir (or downloaded), the same for every visitor."""
    return data_dir, ""


def test_split(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Dataset `name`'s test images and labels, as this visitor sees it; cached under `dataset_key`."""
    with st.spinner(_("Loading the test images…")):
        return _test_split(name, dataset_key(name), data_key())


def shared_test_split(name: str, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """`test_split` of a dataset in the data dir, for work that serves every visitor (no session needed)."""
    return _test_split(name, shared_dataset_key(data_dir), (data_dir, None))


@st.cache_data(show_spinner=False, max_entries=4)
def _test_split(name: str, key: tuple[str, str], _data_key: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Cached by `key`; read through the caller's `_data_key` (unhashed: the same file, whoever calls)."""
    dataset = catalog.load_dataset(name, *_data_key)
    return dataset.x_test, dataset.y_test


def dataset_overview(name: str) -> dict:
    """datasets.overview of dataset `name` as this visitor sees it; cached under `dataset_key`."""
    with st.spinner(_("Reading the dataset…")):
        return _dataset_overview(name, dataset_key(name), data_key())


@st.cache_data(show_spinner=False, max_entries=4)
def _dataset_overview(name: str, key: tuple[str, str], _data_key: tuple[str, str]) -> dict:
    return datasets.overview(catalog.load_dataset(name, *_data_key))


@st.cache_resource(max_entries=8, show_spinner=False)
def run_model(model_path: str, stamp: float):
    """A run's Keras model, cached by its file (stamp: the file's mtime, so a replaced file reloads).

    Keyed by path, not run id: ids are only unique within one workspace. Only saved
    runs come here, never a model that is still training.
    """
    return runs.load_model_file(Path(model_path))


def model_for(run: runs.RunInfo):
    with st.spinner(_("Loading the model…")):
        return run_model(str(run.model_path), run.model_path.stat().st_mtime)


def list_runs() -> tuple[list[runs.RunInfo], list[runs.DamagedFolder]]:
    """The runs this session may see: its workspace's, the gallery, the bundled model, and
    a run opened through a share link (read-only)."""
    found, damaged = workspace().list_runs()
    shared = ui_workspace.shared_run()
    if shared is not None and all(run.path != shared.path for run in found):
        found = [shared, *found]
    return found, damaged


def get_run(run_id: str) -> runs.RunInfo:
    """One of the runs `list_runs` shows; RunNotFound for anyone else's."""
    shared = ui_workspace.shared_run()
    if shared is not None and shared.run_id == run_id:
        return shared
    return workspace().get_run(run_id)


@st.cache_resource(ttl=3600, show_spinner=False)
def sweep_idle_workspaces() -> list[str]:
    """Public: delete workspaces idle for longer than the limit, at most once an hour per server.

    Workspaces with a training queued, waiting or running are kept: the job saves into its
    runs dir (the workspace folder) and counts against its visitor (the folder's name).
    """
    active = profile.current()
    if not active.public:
        return []
    busy = set()
    for job in job_manager().active_jobs():
        busy.add(job.session_id)
        if job.runs_dir:
            busy.add(Path(job.runs_dir).name)
    return workspaces.sweep_expired(active.limits.idle_days, keep=busy)


def show_damaged(damaged: list[runs.DamagedFolder]) -> None:
    """Say which run folders were skipped, without hiding the good ones; and when the run store failed."""
    show_store_problem()
    if damaged:
        names = "; ".join(f"{folder.run_id} ({engine_reason(folder.problem)})" for folder in damaged)
        st.warning(
            _("Skipped {count} damaged run folder(s): {names}. Your other runs are fine; delete or repair the folder(s) in {runs_dir}.").format(count=len(damaged), names=names, runs_dir=paths.runs_dir()),
            icon=":material/warning:",
        )


def show_store_problem() -> None:
    """One st.error when the run store failed (unreachable, refused credentials, full); the page goes on
    with what is here and the bundled model."""
    problem = backend.current().problem
    if problem:
        st.error(engine_text(problem), icon=":material/cloud_off:")


def rerun_when_ended(key: str, active: bool, *, initially: bool = False) -> None:
    """Inside a polling fragment: rerun the whole page once the job it watches stops being active.

    `key` remembers, per session, whether the job was active at the last poll.
    """
    was_active = st.session_state.get(key, initially)
    st.session_state[key] = active
    if was_active and not active:
        st.rerun()


def error(what: str, todo: str) -> None:
    """An error a user can act on: what happened, then what to do."""
    st.error(f"**{what}**  \n{engine_text(todo)}", icon=":material/error:")


def dataset_error(name: str, problem: Exception) -> None:
    if isinstance(problem, datasets.DatasetUnavailable):
        error(_("The dataset {name!r} is not available here.").format(name=name), str(problem))
    else:
        error(_("The dataset {name!r} cannot be used.").format(name=name), _("{problem} Pick another dataset in the sidebar or fix the file.").format(problem=engine_text(problem)))


def selected_dataset() -> datasets.DatasetInfo:
    infos = dataset_infos(data_key())
    return infos.get(st.session_state[DATASET]) or infos["mnist"]


# What a run is, as its picker label says it (your own runs carry no mark).
BUNDLED_MARK, GALLERY_MARK, SHARED_MARK = N_("bundled, read-only"), N_("gallery, read-only"), N_("shared with you, read-only")


def run_kind_mark(run: runs.RunInfo, shared: runs.RunInfo | None) -> str:
    """Whose a run is, for a label: "" for this visitor's own, else bundled, gallery or shared with them
    (`shared`: the run this session's share link opened, if any)."""
    if not run.read_only:
        return ""
    if run.run_id == runs.BUNDLED_ID and run.path == paths.BUNDLED_MODELS_DIR / runs.BUNDLED_ID:
        return BUNDLED_MARK
    if shared is not None and shared.path == run.path:
        return SHARED_MARK
    return GALLERY_MARK


def run_labels(found: list[runs.RunInfo]) -> dict[str, str]:
    """Run id -> what a picker shows: name, test accuracy and, for a run that is not the visitor's,
    what it is. Computed in the script run (a picker's format_func may be called outside it)."""
    shared = ui_workspace.shared_run()
    labels = {}
    for run in found:
        accuracy = run.meta.get("test_accuracy")
        score = f" · {percent(accuracy)}" if isinstance(accuracy, (int, float)) else ""
        if score and not run.scores_verified:
            score += f" ({_(runs.CLAIMED_NOTE)})"
        mark = run_kind_mark(run, shared)
        labels[run.run_id] = f"{run.display_name}{score}" + (f" ({_(mark)})" if mark else "")
    return labels


def run_picker(label: str, found: list[runs.RunInfo], *, key: str, multi: bool = False, max_selections=None):
    """Pick saved runs by name; remembers the last choice across pages."""
    if not found:
        st.info(_("No trained runs yet. Train one on the **Train** page."), icon=":material/info:")
        return [] if multi else None
    by_id = {run.run_id: run for run in found}
    labels = run_labels(found)
    ids = list(by_id)
    if multi:
        if key in st.session_state:
            # Keep the user's picks that still exist (a run may have been deleted).
            st.session_state[key] = [run_id for run_id in st.session_state[key] if run_id in by_id] or ids[:1]
            default = None
        else:
            default = ids[:2]
        chosen = st.multiselect(label, ids, default=default, format_func=labels.__getitem__,
                                key=key, max_selections=max_selections)
        return [by_id[run_id] for run_id in chosen]
    if st.session_state.get(key) not in by_id:
        st.session_state.pop(key, None)
    remembered = st.session_state.get(SELECTED_RUN)
    index = ids.index(remembered) if remembered in by_id else 0
    initial = {} if key in st.session_state else {"index": index}
    chosen = st.selectbox(label, ids, format_func=labels.__getitem__, key=key, **initial)
    st.session_state[SELECTED_RUN] = chosen  # the next page's picker starts here
    return by_id[chosen]


def sidebar() -> None:
    """Language, dataset in use and this session's running or last job, on every page; on a phone also
    one tap away in a compact bar at the top, with the workspace link (lib.ui.layout)."""
    language_switch()
    infos = dataset_infos(data_key())
    if st.session_state[DATASET] not in infos:
        st.session_state[DATASET] = "mnist"
    if layout.on_phone():
        layout.compact_bar(lambda: _compact_bar(infos))
    with st.sidebar:
        st.selectbox(
            _("Dataset"),
            list(infos),
            format_func=labels(infos, lambda name: _(infos[name].title)),
            key=DATASET,
            persist_state="session",  # the choice holds on every page
            help=_("Used by the Data and Train pages. Add your own .npz on the Data page."),
        )
        _sidebar_job_status()
    ui_workspace.sidebar(workspace())
    layout.apply()


def _compact_bar(infos: dict) -> None:
    """The sidebar's essentials for a phone: the same language and Dataset choice, job status and workspace link."""
    st.session_state[BAR_DATASET] = st.session_state[DATASET]
    language_switch(container=st, key=BAR_LANGUAGE)
    st.selectbox(_("Dataset"), list(infos), format_func=labels(infos, lambda name: _(infos[name].title)), key=BAR_DATASET,
                 on_change=lambda: st.session_state.update({DATASET: st.session_state[BAR_DATASET]}))
    _sidebar_job_status()
    ui_workspace.link_box(workspace())


def _sidebar_job_status() -> None:
    manager = job_manager()
    visitor = visitor_id()
    mine = manager.jobs_for(visitor)
    active = any(job.active for job in mine)

    @st.fragment(run_every=SIDEBAR_POLL_SECONDS if active else None)
    def status():
        jobs_now = manager.jobs_for(visitor)
        if not jobs_now:
            st.caption(_("No training in this session yet."))
            return
        job = jobs_now[0]
        if job.kind == jobs.IMPORT:
            st.caption(_("Import") if job.active else _("Last import"))
        else:
            st.caption(_("Training job") if job.active else _("Last training job"))
        st.markdown(f"**{job.config.display_name}**  \n{jobs.describe_state(job)}")
        if job.state == jobs.RUNNING:
            st.progress(min(jobs.job_fraction(job), 1.0))
        rerun_when_ended("_sidebar_active", job.active)  # stop polling once the job has ended

    status()


# runs.summary() keys -> the column names the tables show, in this order (translated when shown).
RUN_TABLE_COLUMNS = {
    "display_name": N_("name"), "dataset": N_("dataset"), "arch": N_("architecture"), "params": N_("params"),
    "epochs_completed": N_("epochs"), "training_seconds": N_("training s"), "samples_per_s": N_("images/s"),
    "test_accuracy": N_("test accuracy"), "scores": N_("scores"), "status": N_("status"), "created_at": N_("created"),
    "run_id": N_("run id"),
}
SCORE_WORDS = {runs.MEASURED: N_("measured"), runs.CLAIMED: runs.CLAIMED_NOTE}
# A run's status as meta.json says it -> as the tables and the report say it.
STATUS_WORDS = {"finished": N_("finished"), "stopped": N_("stopped"), "diverged": N_("diverged"),
                "failed": N_("failed"), runs.IMPORTED: N_("imported")}


def column(name: str) -> str:
    """A `runs_table` column's header in the visitor's language (`name`: RUN_TABLE_COLUMNS' English)."""
    return _(name)


def runs_table(found: list[runs.RunInfo]):
    """One row per run, as Home and Compare show them."""
    import pandas as pd

    table = pd.DataFrame([runs.summary(run) for run in found], columns=[*RUN_TABLE_COLUMNS, "read_only"])
    table["display_name"] = [name + (" 🔒" if locked else "") for name, locked in
                             zip(table["display_name"], table["read_only"])]
    table["created_at"] = table["created_at"].fillna("").str[:16].str.replace("T", " ")
    table["test_accuracy"] = pd.to_numeric(table["test_accuracy"], errors="coerce") * 100  # sorts by value
    table["scores"] = table["scores"].map(lambda score: _(SCORE_WORDS[score]) if score in SCORE_WORDS else score)
    table["status"] = table["status"].map(lambda status: _(STATUS_WORDS[status]) if status in STATUS_WORDS else status)
    return table[list(RUN_TABLE_COLUMNS)].rename(columns={key: _(name) for key, name in RUN_TABLE_COLUMNS.items()})


def runs_table_format() -> dict:
    """Number formats for `runs_table` columns, the same on Home and Compare."""
    return {
        column("params"): st.column_config.NumberColumn(format="localized"),
        column("epochs"): st.column_config.NumberColumn(
            format="%g", help=_("A stopped run shows how far its last epoch got.")),
        column("training s"): st.column_config.NumberColumn(_("training time"), format=_("%.1f s")),
        column("images/s"): st.column_config.NumberColumn(format="%,.0f"),
        column("test accuracy"): st.column_config.NumberColumn(format="%.2f%%"),
        column("scores"): st.column_config.TextColumn(
            help=_("measured: trained or scored here. claimed, not verified: an imported run's own numbers.")),
    }


def precision_note(policy: str, requested: str = "auto") -> str:
    if policy == "float32" and requested == "float32":
        return _("Precision used: float32, as chosen in the settings.")
    if policy == "float32":
        return _("Precision used: float32 (auto: this CPU has no native bfloat16, so mixed precision would be slower).")
    return _("Precision used: {policy} (weights in float32, math in 16 bits; the output layer stays float32).").format(
        policy=policy)


def run_report(run: runs.RunInfo, *, key: str = "report") -> None:
    """A saved run: scores, curves, confusion matrix, per-class accuracy, downloads."""
    from lib.viz import charts

    meta = run.meta
    status, reason = meta.get("status") or "?", meta.get("stop_reason") or ""  # null in an early or imported run
    if status in ("failed", "diverged"):
        error(_("This run failed.") if status == "failed" else _("This run diverged."), stop_reason(reason))
    else:
        word = _(STATUS_WORDS[status]) if status in STATUS_WORDS else status
        word = word[:1].upper() + word[1:]
        # A trained run's reason says how it ended ("Completed 1 epoch."); the status word would only repeat it.
        shown = stop_reason(reason) if reason and status in ("finished", "stopped") else \
            _("{status}: {reason}").format(status=word, reason=stop_reason(reason))
        st.success(shown, icon=":material/check_circle:")
    cols = st.columns(5)
    accuracy, loss, params = meta.get("test_accuracy"), meta.get("test_loss"), meta.get("params")
    claimed = "" if run.scores_verified else f" ({_(runs.CLAIMED_NOTE)})"
    missing = _("n/a")
    cols[0].metric(_("Test accuracy") + claimed, missing if accuracy is None else percent(accuracy))
    cols[1].metric(_("Test loss") + claimed, missing if loss is None else number(loss, 4))
    cols[2].metric(_("Parameters"), missing if params is None else number(params))
    seconds, speed = meta.get("training_seconds"), meta.get("samples_per_s")  # None: imported, not trained here
    cols[3].metric(_("Training time"), missing if seconds is None else _("{seconds} s").format(seconds=number(seconds, 1)))
    cols[4].metric(_("Speed"), missing if speed is None else _("{speed} img/s").format(speed=number(speed, 0)))
    config = runs.read_config(run)
    if status != "imported":
        st.caption(precision_note(meta.get("precision") or "float32", config.precision if config else "auto"))
    history = runs.load_history(run)
    left, right = st.columns(2)
    names = class_names(run.class_names)
    left.plotly_chart(charts.history_figure_from_csv_frame(history, "accuracy"), key=f"{key}_acc")
    right.plotly_chart(charts.history_figure_from_csv_frame(history, "loss"), key=f"{key}_loss")
    if meta.get("confusion"):
        left, right = st.columns(2)
        left.plotly_chart(charts.confusion_figure(meta["confusion"], names), key=f"{key}_confusion")
        right.plotly_chart(charts.per_class_accuracy_figure(meta["per_class_accuracy"], names),
                           key=f"{key}_per_class")
    down_model, down_history, down_bundle, _spacer = st.columns([1, 1, 1, 2])
    # Read when clicked: a run pulled from a remote store fetches its model then, not on every render.
    down_model.download_button(_("Model (.keras)"), lambda: run.model_path.read_bytes(), f"{run.run_id}.keras",
                               mime="application/octet-stream", key=f"{key}_dl_model", icon=":material/download:",
                               on_click="ignore")
    down_history.download_button(_("History (CSV)"), run.history_path.read_bytes(), f"{run.run_id}-history.csv",
                                 mime="text/csv", key=f"{key}_dl_history", icon=":material/download:")
    bundle_download(run, key=f"{key}_dl_bundle", container=down_bundle)
    ui_workspace.share_button(workspace(), run, key=f"{key}_share")


def bundle_download(run: runs.RunInfo, *, key: str, container=st) -> None:
    """Download a run as one file (model, history, metadata) that imports back as a new run."""
    import functools

    from lib.store import bundles

    container.download_button(
        _("Run bundle"), functools.partial(bundles.export_bundle, run), bundles.bundle_filename(run),
        mime="application/zip", key=key, icon=":material/download:", on_click="ignore",
        help=_("Model, history and metadata in one file: import it on the Data or Compare page, here or elsewhere."),
    )


def show_as_code(config, *, key: str) -> None:
    """A toggle that shows `config` as a runnable Keras script, with a download button."""
    from lib.training import codegen

    if not st.toggle(_("Show as code"), key=f"{key}_toggle", help=_("A plain Keras 3 script that reproduces this run")):
        return
    try:
        script = codegen.script_for(config)
    except ValueError as problem:
        error(_("This model cannot be written as code yet."), str(problem))
        return
    st.caption(_("Run it with `python {script_name} --epochs 1 --limit 2000` for a quick try; it reads `$MNIST_STUDIO_DATA_DIR/<dataset>.npz` when that is set.").format(script_name=codegen.script_name(config)))
    st.code(script, language="python")
    st.download_button(_("Download the script"), script, file_name=codegen.script_name(config), mime="text/x-python",
                       key=f"{key}_download", icon=":material/download:")
