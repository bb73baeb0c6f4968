"""Train page widgets: architecture picker and builder, settings, live job panel.

Streamlit-only glue: every decision (validation, shapes, training) is in lib.
"""

from __future__ import annotations

import threading
import time

import streamlit as st

from lib.execution import jobs
from lib.i18n import current_language
from lib.models import architectures
from lib.store import profile, runs
from lib.training.config import (
    LR_SCHEDULES,
    OPTIMIZERS,
    PRECISIONS,
    QUICK_MIN_STEPS,
    TARGET_METRICS,
    InvalidConfig,
    TrainConfig,
    config_defaults,
    default_learning_rate,
    epochs_for_steps,
)
from lib.ui import common as ui
from lib.ui.i18n import N_, _, engine_text, labels, number, stop_reason
from lib.viz import charts

# The schedules as the radio shows them: the CLI's names in English, the Chinese term with the name beside it.
SCHEDULE_NAMES = {"constant": N_("constant"), "cosine": N_("cosine"), "one_cycle": N_("one_cycle")}

CUSTOM = "custom"
SUBMIT_PROBLEM = "train_submit_problem"  # why the last Train click started nothing
KEEP = "session"  # settings survive visits to other pages
BATCH_SIZES = (16, 32, 64, 128, 256, 512)
MAX_EPOCHS_WIDGET = 200
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
BUILDER_COLUMNS = ("type", "size", "kernel", "activation", "padding", "rate")
# Home's one click: the default recipe on every training image (no held-out split), as bench measures it.
QUICK_RUN = dict(validation_split=0.0)
# Widget keys of the settings, so presets can set them before the widgets draw.
K = {name: f"train_{name}" for name in (
    "arch", "epochs", "batch_size", "optimizer", "learning_rate", "validation_split", "normalize",
    "label_encoding", "augment", "target_on", "target_metric", "target_value", "patience", "seed",
    "precision", "limit", "name", "builder", "builder_base", "json", "lr_schedule",
)}
# Widget extras that are not TrainConfig fields: the target switch and a target to start from.
WIDGET_DEFAULTS = {"target_on": False, "target_metric": "val_accuracy", "target_value": 0.98, "limit": 0}
# TrainConfig fields the widgets edit under another name.
FIELD_OF_WIDGET = {"patience": "early_stopping_patience"}


def setting_defaults() -> dict:
    """Initial widget values: TrainConfig's defaults, so the page, the CLI and the engine agree."""
    config = config_defaults()
    defaults = {}
    for name in K:
        field = FIELD_OF_WIDGET.get(name, name)
        if name in WIDGET_DEFAULTS:
            defaults[K[name]] = WIDGET_DEFAULTS[name]
        elif field in config:
            defaults[K[name]] = config[field]
    return defaults


def apply_defaults() -> None:
    """Initial settings; the widgets keep them for the session (persist_state="session")."""
    for key, value in setting_defaults().items():
        st.session_state.setdefault(key, value)


def limits_problem(config: TrainConfig) -> str:
    """Why this shared server will not train `config` ("" if it will, and always "" in local)."""
    active = profile.current()
    info = ui.dataset_infos(ui.data_key()).get(config.dataset)
    if not active.public or info is None:
        return ""  # an unknown dataset is reported by the job itself, as in local
    try:
        return profile.check_config(active, config, info)
    except ValueError:
        return ""  # an invalid model is reported where it is built


def submit(config: TrainConfig) -> str | None:
    """Queue a training in this visitor's workspace; None (and the reason kept for
    `show_submit_problem`) when a limit of the shared server says no."""
    return (submit_all([config]) or [None])[0]


def submit_all(configs: list[TrainConfig]) -> list[str]:
    """Queue the first config and chain the others after it (a lesson's pair); [] when refused."""
    problem = next((found for found in map(limits_problem, configs) if found), "")
    if not problem:
        try:
            job_ids = ui.job_manager().submit_chain(configs, ui.visitor_id(), runs_dir=ui.workspace().folder)
        except jobs.SubmitRefused as refused:
            problem = str(refused)
    if problem:
        st.session_state[SUBMIT_PROBLEM] = problem
        return []
    st.session_state.pop(SUBMIT_PROBLEM, None)
    st.session_state[ui.LAST_JOB] = job_ids[-1] if len(job_ids) == 1 else job_ids[0]
    return job_ids


def show_submit_problem() -> None:
    """The reason the last Train click started nothing, once, where the button is."""
    problem = st.session_state.pop(SUBMIT_PROBLEM, None)
    if problem:
        ui.error(_("This training was not started."), problem)


def submit_quick_run() -> str | None:
    """Home's one-click path: the fastest recipe (TrainConfig's defaults) on the selected dataset, with
    enough epochs for the recipe's steps on a small dataset."""
    info = ui.selected_dataset()
    epochs = epochs_for_steps(info.train_images, TrainConfig.batch_size)  # 1 on MNIST; more on small sets
    return submit(TrainConfig(dataset=info.name, epochs=min(epochs, MAX_EPOCHS_WIDGET), **QUICK_RUN))


def limits_note(config: TrainConfig | None) -> bool:
    """Public: this server's limits, and why `config` breaks one (shown before anything starts).
    Returns True when the config may be trained here."""
    active = profile.current()
    if not active.public:
        return True
    problem = limits_problem(config) if config is not None else ""
    with st.expander(_("Limits on this shared app"), icon=":material/rule:", expanded=bool(problem)):
        st.markdown("\n".join(f"- {line}" for line in profile.describe(active)))
        st.caption(_("Run MNIST Studio on your own computer (see the README) to train without limits."))
    if problem:
        ui.error(_("This run is over this shared app's limits."), problem)
    return not problem


def apply_tutorial_preset(arch_name: str) -> None:
    """Button callback: copy the tutorial's exact settings into the widgets."""
    tutorial = architectures.get_architecture(arch_name).tutorial or {}
    st.session_state[ui.DATASET] = tutorial.get("dataset", st.session_state[ui.DATASET])
    for field in ("epochs", "batch_size", "optimizer", "learning_rate", "validation_split", "normalize",
                  "label_encoding"):
        if field in tutorial:
            st.session_state[K[field]] = tutorial[field]
    st.session_state[K["lr_schedule"]] = "constant"  # the tutorials keep the rate fixed
    st.session_state[K["augment"]] = False
    st.session_state[K["target_on"]] = False


def architecture_picker(info) -> tuple[str, list[dict] | None]:
    """The zoo or the layer builder; returns (arch name, layer specs) with the summary shown."""
    names = [*architectures.ZOO, CUSTOM]

    def label(name):
        if name == CUSTOM:
            return _("Build your own, layer by layer")
        return f"{name} · {_(architectures.ZOO[name].title)}"

    arch_name = st.selectbox(_("Architecture"), names, format_func=labels(names, label), key=K["arch"], persist_state=KEEP)
    if arch_name == CUSTOM:
        layers = layer_builder()
    else:
        arch = architectures.get_architecture(arch_name)
        st.caption(_(arch.description))
        if arch.tutorial:
            st.button(
                _("Use the tutorial's settings · it reported {reported}").format(reported=_(arch.tutorial['reported'])),
                on_click=apply_tutorial_preset, args=(arch_name,), key="train_preset",
                icon=":material/school:", help=_("Sets dataset, optimizer, learning rate, batch size, epochs, "
                "normalization and label encoding exactly as the tutorial had them."),
            )
        layers = arch.layer_list()
    if layers is None:
        return arch_name, None
    try:
        rows = architectures.summarize(layers, info.input_shape, info.num_classes)
    except architectures.InvalidArchitecture as problem:
        ui.error(_("This architecture cannot be trained on this dataset."), str(problem))
        return arch_name, None
    show_summary(rows, layers, info)
    return arch_name, layers


def show_summary(rows, layers, info) -> None:
    import pandas as pd

    table = pd.DataFrame(
        [{"#": r.index, _("layer"): r.label, _("output shape"): " x ".join(map(str, r.output_shape)),
          _("params"): r.params, _("how the params are counted"): r.formula} for r in rows]
    )
    total = sum(r.params for r in rows)
    macs = architectures.forward_macs_per_sample(layers, info.input_shape, info.num_classes)
    with st.expander(_("Model summary: {total:,} parameters · {value:.1f} M multiply-adds per image").format(total=total, value=macs / 1e6), expanded=True):
        st.dataframe(table, hide_index=True, key="train_summary")
        st.caption(
            _("Conv2D: (kernel height x kernel width x input channels + 1 bias) x filters. "
            "Dense: (inputs + 1 bias) x units. Pooling, Flatten and Dropout have no weights.")
        )


def layer_builder() -> list[dict] | None:
    """Assemble a model as a table of layers, starting from any zoo model."""
    import pandas as pd

    base = st.selectbox(_("Start from"), list(architectures.ZOO), key=K["builder_base"],
                        help=_("Copies this zoo model into the table below; then edit, add or remove rows."))
    start = pd.DataFrame([_spec_to_row(spec) for spec in architectures.get_architecture(base).layers],
                         columns=BUILDER_COLUMNS)
    edited = st.data_editor(
        start,
        num_rows="dynamic",
        key=f"{K['builder']}_{base}",
        hide_index=True,
        column_config={
            "type": st.column_config.SelectboxColumn("type", options=sorted(architectures.LAYER_TYPES), required=True),
            "size": st.column_config.TextColumn(_("units / filters"), help=_("Dense units or Conv2D filters; "
                                                "'num_classes' on the last layer means the dataset's class count")),
            "kernel": st.column_config.NumberColumn(_("kernel / pool"), min_value=1, max_value=15, step=1),
            "activation": st.column_config.SelectboxColumn("activation", options=["", *architectures.ACTIVATIONS]),
            "padding": st.column_config.SelectboxColumn("padding", options=["", *architectures.PADDINGS]),
            "rate": st.column_config.NumberColumn(_("rate / momentum"), min_value=0.0, max_value=0.999, step=0.01,
                                                  help=_("Dropout's rate; BatchNormalization's momentum")),
        },
    )
    pasted = st.text_area(_("…or paste a layer list as JSON (overrides the table)"), key=K["json"],
                          placeholder=_('[{"type": "Flatten"}, {"type": "Dense", "units": "num_classes", '
                                      '"activation": "softmax"}]'))
    try:
        if pasted.strip():
            layers = architectures.layers_from_json(pasted)
        else:
            specs = [_row_to_spec(row) for row in edited.to_dict("records") if row.get("type")]
            layers = architectures.normalize_layers(specs)
    except architectures.InvalidArchitecture as problem:
        ui.error(_("This layer list is not valid yet."), str(problem))
        return None
    st.download_button(_("Export as JSON"), architectures.layers_to_json(layers), "architecture.json",
                       mime="application/json", key="train_export_json", icon=":material/download:")
    return layers


def _spec_to_row(spec: dict) -> dict:
    size = spec.get("units", spec.get("filters"))
    kernel = spec.get("kernel_size", spec.get("pool_size"))
    return {"type": spec["type"], "size": None if size is None else str(size), "kernel": kernel,
            "activation": spec.get("activation") or "", "padding": spec.get("padding") or "",
            "rate": spec.get("rate", spec.get("momentum"))}


def _row_to_spec(row: dict) -> dict:
    layer_type = row["type"]
    spec = {"type": layer_type}
    size = str(row.get("size") or "").strip()
    if size:
        value = size if size == architectures.NUM_CLASSES_TOKEN else _int_or_text(size)
        spec["units" if layer_type == "Dense" else "filters"] = value
    kernel = row.get("kernel")
    if kernel == kernel and kernel is not None:  # NaN-safe
        spec["kernel_size" if layer_type == "Conv2D" else "pool_size"] = int(kernel)
    if row.get("activation"):
        spec["activation"] = row["activation"]
    if row.get("padding"):
        spec["padding"] = row["padding"]
    rate = row.get("rate")
    if rate == rate and rate is not None:  # the one number column: Dropout's rate, BatchNorm's momentum
        spec["momentum" if layer_type == "BatchNormalization" else "rate"] = float(rate)
    allowed = architectures.LAYER_TYPES.get(layer_type, {})
    return {key: value for key, value in spec.items() if key == "type" or key in allowed}


def _int_or_text(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def _optimizer_changed() -> None:
    """A new optimizer starts from its own usual learning rate."""
    st.session_state[K["learning_rate"]] = default_learning_rate(st.session_state[K["optimizer"]])


def settings_form(arch_name: str, layers: list[dict] | None) -> TrainConfig | None:
    """Hyperparameter widgets; returns a valid config or shows what is wrong."""
    left, middle, right = st.columns(3)
    with left:
        st.number_input(_("Epochs"), 1, MAX_EPOCHS_WIDGET, key=K["epochs"], persist_state=KEEP,
                        help=_("From 1 to {most}; a number outside is not taken and the box keeps its value.").format(
                            most=MAX_EPOCHS_WIDGET))
        st.selectbox(_("Batch size"), BATCH_SIZES, key=K["batch_size"], persist_state=KEEP)
        st.selectbox(_("Optimizer"), OPTIMIZERS, key=K["optimizer"], persist_state=KEEP, on_change=_optimizer_changed,
                     help=_("Changing it sets its usual learning rate (RMSprop 1e-4, as in its tutorials)."))
        st.select_slider(_("Learning rate"), LEARNING_RATES, key=K["learning_rate"], persist_state=KEEP, format_func=lambda v: f"{v:g}")
        st.radio(_("Learning-rate schedule"), LR_SCHEDULES, key=K["lr_schedule"], persist_state=KEEP, horizontal=True,
                 format_func=labels(LR_SCHEDULES, lambda name: _(SCHEDULE_NAMES[name])),
                 help=_("cosine: start at the rate above and glide down to 1/100 of it by the last batch. "
                      "one_cycle: climb from 1/25 of the rate to the rate in the first fifth (20%) of the batches, "
                      "then glide down: large steps early, fine ones at the end; the fastest way to 99%."))
    with middle:
        st.slider(_("Validation split"), 0.0, 0.5, step=0.05, key=K["validation_split"], persist_state=KEEP,
                  help=_("Held out of the training set to watch for overfitting; the test set is kept for the final score."))
        st.toggle(_("Normalize pixels to [0, 1]"), key=K["normalize"], persist_state=KEEP, help=_("Off reproduces the unnormalized tutorials."))
        st.radio(_("Labels"), ("sparse", "one_hot"), key=K["label_encoding"], persist_state=KEEP, horizontal=True,
                 format_func=labels(("sparse", "one_hot"), {"sparse": _("integers"), "one_hot": _("one-hot")}.__getitem__))
        st.toggle(_("Augment (shift, rotate, zoom, stroke width)"), key=K["augment"], persist_state=KEEP)
    with right:
        st.toggle(_("Stop at a target"), key=K["target_on"], persist_state=KEEP, help=_("The tutorials' callback: end training once reached."))
        if st.session_state[K["target_on"]]:
            st.selectbox(_("Target metric"), TARGET_METRICS, key=K["target_metric"], persist_state=KEEP)
            st.number_input(_("Target value"), 0.0, 100.0, step=0.01, key=K["target_value"], persist_state=KEEP, format="%.3f")
        st.number_input(_("Early-stopping patience (0 = off)"), 0, 50, key=K["patience"], persist_state=KEEP)
        st.selectbox(_("Precision"), PRECISIONS, key=K["precision"], persist_state=KEEP,
                     help=_("auto: mixed bfloat16 where this CPU runs it natively, float32 otherwise."))
        st.number_input(_("Seed"), 0, 2**31 - 1, key=K["seed"], persist_state=KEEP)
        st.number_input(_("Limit training images (0 = all)"), 0, 10_000_000, step=1000, key=K["limit"], persist_state=KEEP)
    st.text_input(_("Run name (optional)"), key=K["name"], persist_state=KEEP, max_chars=runs.MAX_NAME_LENGTH)
    if layers is None:
        return None
    state = st.session_state
    try:
        config = TrainConfig(
            dataset=state[ui.DATASET], arch=arch_name, layers=tuple(layers) if arch_name == CUSTOM else (),
            epochs=int(state[K["epochs"]]), batch_size=int(state[K["batch_size"]]), optimizer=state[K["optimizer"]],
            learning_rate=float(state[K["learning_rate"]]), lr_schedule=state[K["lr_schedule"]],
            validation_split=float(state[K["validation_split"]]),
            normalize=bool(state[K["normalize"]]), label_encoding=state[K["label_encoding"]],
            seed=int(state[K["seed"]]), augment=bool(state[K["augment"]]), precision=state[K["precision"]],
            target_metric=state[K["target_metric"]] if state[K["target_on"]] else "",
            target_value=float(state[K["target_value"]]), early_stopping_patience=int(state[K["patience"]]),
            limit=int(state[K["limit"]]) or None, name=state[K["name"]],
        )
    except InvalidConfig as problem:  # each problem translated on its own (ui.error would see them joined)
        ui.error(_("These settings cannot be used."), " ".join(map(engine_text, problem.problems)))
        return None
    except ValueError as problem:
        ui.error(_("These settings cannot be used."), str(problem))
        return None
    few_steps_hint(config)
    return config


def few_steps_hint(config: TrainConfig) -> None:
    """A scheduled rate on a small dataset: too few steps to learn; suggest enough epochs."""
    info = ui.dataset_infos(ui.data_key()).get(config.dataset)
    if info is None or config.lr_schedule == "constant":
        return
    images = profile.epoch_images(1, info.train_images, config.validation_split, config.limit)
    needed = min(epochs_for_steps(images, config.batch_size, epochs=config.epochs), MAX_EPOCHS_WIDGET)
    if needed <= config.epochs:
        return
    steps = -(-images // config.batch_size)
    st.info(_("{images:,} training images at batch {batch_size} are only {steps} steps per epoch; a {lr_schedule} schedule needs about {QUICK_MIN_STEPS} steps in all to learn well (on 1,000 MNIST images: 37% after 1 epoch, 96.5% after 50). Try {needed} epochs.").format(images=images, batch_size=config.batch_size, steps=steps, lr_schedule=config.lr_schedule, QUICK_MIN_STEPS=QUICK_MIN_STEPS, needed=needed),
            icon=":material/lightbulb:")
    st.button(_("Use {needed} epochs").format(needed=needed), key="train_use_epochs", on_click=_set_epochs, args=(needed,))


def _set_epochs(epochs: int) -> None:
    st.session_state[K["epochs"]] = epochs


FORM_WHILE_TRAINING = N_("Change the model or settings (for your next run)")


def active_job_id() -> str | None:
    """The visitor's newest queued or running job, for a session that started none: after the app
    server restarted, a training on the cluster goes on, and the Train page follows it again."""
    active = [job for job in ui.job_manager().jobs_for(ui.visitor_id()) if job.active]
    return active[0].job_id if active else None


def form_container(job: jobs.Job | None):
    """Where the Train page draws its form: in an expander, collapsed while the visitor's job is
    active (the live job is what they came to see), open once it has ended; a plain container
    before their first job."""
    if job is None:
        return st.container()
    return st.expander(_(FORM_WHILE_TRAINING), expanded=not job.active, icon=":material/tune:")


def job_panel(job_id: str) -> None:
    """Live view of one job: progress, charts, Stop; polls while the job is active."""
    manager = ui.job_manager()
    first = manager.snapshot(job_id)
    if first is None:
        return

    @st.fragment(run_every=ui.JOB_POLL_SECONDS if first.active else None)
    def panel():
        job = manager.snapshot(job_id)
        head, stop = st.columns([5, 1])
        head.markdown(f"#### {job.config.display_name}\n{jobs.describe_state(job)}")
        if job.active:
            stop.button(_("Stop"), key=f"stop_{job_id}", icon=":material/stop_circle:", type="primary",
                        on_click=manager.stop, args=(job_id,),
                        help=_("Stops after the current batch and keeps the model trained so far."))
        if job.state == jobs.RUNNING:
            last = job.last or {}
            rate, eta = last.get("samples_per_s"), last.get("eta")
            detail = (_("{rate} images/s · ETA {eta} s").format(rate=number(rate, 0), eta=number(eta, 0))
                      if rate and eta is not None else _("warming up…"))
            st.progress(min(jobs.job_fraction(job), 1.0), text=detail)
        acc, loss = st.columns(2)
        figures = _live_cache(job, st.session_state.get(ui.SESSION_ID, ""))
        acc.plotly_chart(live_figure(job, "accuracy", figures), key=f"live_acc_{job_id}")
        loss.plotly_chart(live_figure(job, "loss", figures), key=f"live_loss_{job_id}")
        if job.state == jobs.FAILED:
            ui.error(_("Training failed."), job.error)
        elif job.state == jobs.DIVERGED:
            ui.error(_("Training diverged."), stop_reason(job.summary.get("reason", "")))
        ui.rerun_when_ended(f"_active_{job_id}", job.active, initially=first.active)  # show the run's report

    panel()


# (browser session id, job id) -> (last poll, {metric: (shape, figure)}): the live charts each session
# is watching, kept here rather than in session state (plain data only). Per session, because a cached
# figure's batch points are refreshed in place: two tabs (or a share link) watching one job must never
# share a figure. An entry goes when its job ends, when its session stops polling it (the tab was closed
# or moved on) and, oldest first, past MAX_LIVE_FIGURES.
LIVE_FIGURES: dict[tuple[str, str], tuple[float, dict]] = {}
MAX_LIVE_FIGURES = 32
LIVE_FIGURES_IDLE_S = 60.0  # the panel polls every JOB_POLL_SECONDS while its job runs
_LIVE_FIGURES_LOCK = threading.Lock()  # every session's script thread reaches the mapping


def _live_cache(job: jobs.Job, session_id: str, *, now: float | None = None) -> dict:
    """This session's cached live figures of `job` (a fresh dict once it has ended)."""
    key = (session_id, job.job_id)
    now = time.monotonic() if now is None else now
    with _LIVE_FIGURES_LOCK:
        for gone in [other for other, (polled, _figures) in LIVE_FIGURES.items()
                     if now - polled > LIVE_FIGURES_IDLE_S or (not job.active and other[1] == job.job_id)]:
            del LIVE_FIGURES[gone]
        if not job.active:
            return {}
        _polled, figures = LIVE_FIGURES.pop(key, (now, {}))  # re-inserted last: the mapping is oldest first
        while len(LIVE_FIGURES) >= MAX_LIVE_FIGURES:
            LIVE_FIGURES.pop(next(iter(LIVE_FIGURES)))
        LIVE_FIGURES[key] = (now, figures)
        return figures


def live_figure(job: jobs.Job, metric: str, cache: dict):
    """The live chart of `metric`, rebuilt only when its shape changes (an epoch ends, the job ends).

    Between those, new batch points go into the cached figure in place: the
    panel redraws every second while training shares the CPU, and a rebuild
    costs about ten times as much. So `cache` must belong to one session
    (`_live_cache`). While the job runs the x axis spans the planned epochs;
    afterwards it fits what was trained (a stopped run is not a sliver).
    """
    shape = (job.job_id, job.created, len(job.epochs), job.active, current_language())  # titles follow the language
    cached = cache.get(metric)
    if cached is not None and cached[0] == shape and charts.refresh_batch_points(cached[1], job.batches, metric=metric):
        return cached[1]
    total = job.config.epochs if job.active else None
    figure = charts.history_figure(job.batches, job.epochs, metric=metric, total_epochs=total)
    cache[metric] = (shape, figure)
    return figure


def finished_run(job_id: str) -> runs.RunInfo | None:
    job = ui.job_manager().snapshot(job_id)
    if job is None or job.run_id is None:
        return None
    try:
        return ui.get_run(job.run_id)
    except (runs.RunNotFound, runs.DamagedRun):
        return None
