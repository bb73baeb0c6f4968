"""Lessons page widgets: the tutorials' lessons, one-click presets, reported vs measured, progress.

Streamlit-only glue: the lessons and recipes are in lib.training.presets, the scripts in lib.training.codegen.
"""

from __future__ import annotations

import streamlit as st

from lib.data import datasets, paths
from lib.execution import jobs
from lib.models import architectures
from lib.training import presets
from lib.training.presets import LESSONS
from lib.ui import common as ui, compare as ui_compare, train as ui_train
from lib.ui.i18n import N_, _, labels, number, percent, stop_reason

PICK = "lessons_pick"  # the lesson on screen
JOBS = "lessons_jobs"  # lesson key -> job ids submitted from this page in this session
QUICK = "lessons_quick"
QUICK_LIMIT = 5_000  # images for a quick try: the lesson shows, in a fraction of the time
MNIST_INSTEAD = "lessons_mnist_instead_"
PAGE_FILES = {"Compare": "pages/compare.py", "Predictions": "pages/predictions.py", "Draw": "pages/draw.py",
              "Inside": "pages/inside.py", "Train": "pages/train.py"}
PAGE_ICONS = {"Compare": ":material/compare_arrows:", "Predictions": ":material/grid_view:",
              "Draw": ":material/draw:", "Inside": ":material/neurology:", "Train": ":material/model_training:"}


VERDICTS = {"reproduced": N_("reproduced"), "missed": N_("missed"), "not run": N_("not run")}


def lesson_name(lesson: presets.Lesson) -> str:
    return _("Bonus") if not lesson.key.isdigit() else _("Lesson {key}").format(key=lesson.key)


def preset_title(preset: presets.Preset) -> str:
    """A recipe's title in the visitor's language (a zoo recipe's is its architecture's title)."""
    arch = architectures.ZOO.get(preset.name)
    if arch is not None and preset.title == f"{arch.title}: the tutorial's recipe":
        return _("{title}: the tutorial's recipe").format(title=_(arch.title))
    return _(preset.title)


@st.cache_data(ttl=30, show_spinner=False)
def measured() -> dict[str, dict]:
    """The full benchmark's rows by preset (re-read every 30 s: a benchmark may be filling it)."""
    return presets.measured_results()


def progress(done: list[str]) -> None:
    """How many lessons this visitor has run, and a badge per lesson (green once run)."""
    runnable = [lesson for lesson in LESSONS.values() if lesson.presets]
    st.progress(len(done) / len(runnable),
                text=_("You have run {count} of {count2} lessons (lesson 3 needs no training).").format(count=len(done), count2=len(runnable)))
    badges = [f":green-badge[:material/check: {_short(key)}]" if key in done else f":gray-badge[{_short(key)}]"
              for key in LESSONS]
    st.markdown(" ".join(badges), help=_("Green: you have a saved run of every recipe in that lesson."))


def _short(key: str) -> str:
    return key if key.isdigit() else _("learning rate")


def pick_lesson() -> presets.Lesson:
    """The lesson on screen (a `?lesson=7` link opens that one)."""
    keys = list(LESSONS)
    requested = st.query_params.get("lesson")
    if requested in LESSONS and PICK not in st.session_state:
        st.session_state[PICK] = requested
    key = st.selectbox(_("Lesson"), keys, format_func=labels(keys, lambda key: f"{lesson_name(LESSONS[key])} · {_(LESSONS[key].title)}"),
                       key=PICK)
    return LESSONS[key]


def show_lesson(lesson: presets.Lesson, latest: dict, quick: bool) -> None:
    st.subheader(_("{lesson}: {title}").format(lesson=lesson_name(lesson), title=_(lesson.title)))
    st.markdown(_("**The tutorial teaches:** {claim}").format(claim=_(lesson.claim)))
    st.info(_("**What to look at:** {look_at}").format(look_at=_(lesson.look_at)), icon=":material/visibility:")
    if lesson.broken_layers:
        broken_models(lesson)
    if lesson.presets:
        recipe_cards(lesson)
        train_buttons(lesson, quick)
        job_status(lesson)
        where_to_look(lesson, latest)
    elif "Draw" in lesson.where:
        where_to_look(lesson, latest)


def broken_models(lesson: presets.Lesson) -> None:
    """Lesson 3: each broken layer list and the message the builder gives before any training."""
    for (title, layers), (_layers, message) in zip(lesson.broken_layers, presets.broken_messages(lesson)):
        with st.container(border=True):
            st.markdown(f"**{_(title)}**")
            st.code(" -> ".join(_layer_text(spec) for spec in layers), language=None)
            st.error(_("**The builder refuses it:** {message}").format(message=message), icon=":material/block:")
    st.page_link(PAGE_FILES["Train"], label=_("Try it in the Train page's layer builder"), icon=PAGE_ICONS["Train"])


def _layer_text(spec: dict) -> str:
    if spec["type"] == "Dense":
        return f"Dense({spec['units']}, {spec.get('activation')})"
    return f"{spec['type']}()"


def recipe_cards(lesson: presets.Lesson) -> None:
    """Each preset's recipe, the tutorial's number and ours from the full benchmark, side by side."""
    found = measured()
    for column, name in zip(st.columns(len(lesson.presets)), lesson.presets):
        preset = presets.get_preset(name)
        row = found.get(name) or {}
        with column.container(border=True):
            st.markdown(_("**{title}**  \n`{arch}` on {dataset}").format(title=preset_title(preset), arch=preset.arch, dataset=_(datasets.BUILTINS[preset.dataset].title) if preset.dataset in datasets.BUILTINS else preset.dataset))
            st.caption(presets.settings_text(preset.settings))
            reported, ours = st.columns(2)
            reported.markdown(_("**Tutorial reported**  \n{value}").format(value=_(preset.reported.text) if preset.reported else '—'))
            ours.markdown(_("**Measured here**  \n{_measured_text}").format(_measured_text=_measured_text(preset, row)))
            verdict = row.get("verdict")
            if verdict:
                st.badge(_(VERDICTS.get(verdict, verdict)), color={"reproduced": "green", "missed": "orange"}.get(verdict, "gray"),
                         icon=":material/check:" if verdict == "reproduced" else None)
            for note in (presets.EXPLANATIONS.get(name), preset.note):
                if note:
                    st.caption(_(note))
            ui.show_as_code(preset.config(), key=f"lesson_code_{lesson.key}_{name}")
    st.caption(_("Measured here: `python bench/run.py --zoo-only` (full data, the recipe exactly, seed 0, {images:,} training images); reproduced = within 0.5 accuracy points, or a test loss no higher than reported.").format(images=row.get('train_images', 48_000)))


def _measured_text(preset: presets.Preset, row: dict) -> str:
    if not row:
        return _("not measured yet")
    if row.get("test_accuracy") is None:
        return _(row.get("note") or VERDICTS["not run"])
    text = _("{accuracy} test accuracy, test loss {loss}").format(accuracy=percent(row["test_accuracy"]),
                                                                  loss=number(row["test_loss"], 4))
    if preset.reported and preset.reported.metric == "loss" and row.get("measured_value") is not None:
        text += _(", training loss {loss} after epoch {epoch}").format(loss=number(row["measured_value"], 3),
                                                                       epoch=preset.reported.epoch)
    if row.get("status") not in (None, "finished"):
        text += f" ({_(row['status'])})"
    return text


def train_buttons(lesson: presets.Lesson, quick: bool) -> None:
    """One click trains the lesson's preset(s); a missing dataset offers MNIST instead."""
    infos = ui.dataset_infos(ui.data_key())
    dataset = presets.get_preset(lesson.presets[0]).dataset
    overrides = {}
    if infos.get(dataset) is None or (dataset in datasets.BUILTINS and infos[dataset].path is None):
        st.warning(_("**{title} has no file on this server**, so these recipes may not run here. Put `{dataset}.npz` into the data folder, or train them on MNIST instead.").format(title=_(datasets.BUILTINS[dataset].title), dataset=dataset),
                   icon=":material/warning:")
        if st.checkbox(_("Train on MNIST instead"), value=True, key=f"{MNIST_INSTEAD}{lesson.key}"):
            overrides["dataset"] = "mnist"
    seconds = [measured().get(name, {}).get("seconds") for name in lesson.presets]
    if not quick and all(seconds):
        minutes = sum(seconds) / 60
        took = _("under a minute") if minutes < 1 else _("about {minutes:.0f} min").format(minutes=minutes)
        st.caption(_("The full recipe took {took} of training in this server's benchmark; \"Quick try\" is faster.").format(took=took))
    label = _("Train both") if len(lesson.presets) > 1 else _("Train it")
    detail = (_("quick try: {images} images").format(images=number(QUICK_LIMIT)) if quick
              else _("the tutorial's recipe on the full data"))
    st.button(f"{label} ({detail})", type="primary", icon=":material/play_arrow:", key=f"lesson_train_{lesson.key}",
              on_click=submit_lesson, args=(lesson.key, QUICK_LIMIT if quick else None, overrides))
    ui_train.show_submit_problem()


def submit_lesson(key: str, limit: int | None, overrides: dict) -> None:
    """Button callback: queue every preset of the lesson, named after it."""
    job_ids = ui_train.submit_all([presets.get_preset(name).config(limit=limit, **overrides)
                                   for name in LESSONS[key].presets])
    if job_ids:
        st.session_state.setdefault(JOBS, {})[key] = job_ids


def job_status(lesson: presets.Lesson) -> None:
    """The lesson's jobs from this session, polled while any is queued or running."""
    job_ids = st.session_state.get(JOBS, {}).get(lesson.key, [])
    manager = ui.job_manager()
    if not job_ids or manager.snapshot(job_ids[0]) is None:
        return
    first_active = any(manager.snapshot(job_id).active for job_id in job_ids)

    @st.fragment(run_every=ui.JOB_POLL_SECONDS if first_active else None)
    def status():
        snapshots = [manager.snapshot(job_id) for job_id in job_ids]
        for job in snapshots:
            st.markdown(f"**{job.config.display_name}** · {jobs.describe_state(job)}")
            if job.active:
                st.progress(jobs.job_fraction(job))
            elif job.state == jobs.DIVERGED:
                ui.error(_("This run diverged."), stop_reason(job.summary.get("reason", "")))
            elif job.summary.get("reason"):
                st.caption(stop_reason(job.summary["reason"]))  # e.g. which target stopped it, and when
        if any(job.active for job in snapshots):
            st.page_link(PAGE_FILES["Train"], label=_("Watch the live charts on the Train page"),
                         icon=PAGE_ICONS["Train"])
        ui.rerun_when_ended(f"_lesson_active_{lesson.key}", any(job.active for job in snapshots),
                            initially=first_active)

    status()


def where_to_look(lesson: presets.Lesson, latest: dict) -> None:
    """Buttons to the pages that show the lesson, opened on the lesson's newest runs."""
    chosen = [latest[name] for name in lesson.presets if name in latest]
    ready = len(chosen) == len(lesson.presets)
    if lesson.presets and not ready:
        pages = " / ".join(_(page) for page in lesson.where)
        st.caption((_("Once the runs have finished, open them here in {pages}.") if len(lesson.presets) > 1 else
                    _("Once the run has finished, open it here in {pages}.")).format(pages=pages))
    columns = st.columns(max(len(lesson.where), 1))
    for column, page in zip(columns, lesson.where):
        if page == "Inside" and not (paths.PROJECT_DIR / PAGE_FILES["Inside"]).is_file():
            continue
        if page in ("Draw", "Inside") and not chosen:  # the bundled model already draws
            column.page_link(PAGE_FILES[page], label=_("Open {page}").format(page=_(page)), icon=PAGE_ICONS[page])
            continue
        if not ready:
            continue
        label = (_("Compare these runs") if page == "Compare" and len(chosen) > 1
                 else _("Open {page} with this run").format(page=_(page)))
        if column.button(label, key=f"lesson_open_{lesson.key}_{page}", icon=PAGE_ICONS[page]):
            open_page(page, [run.run_id for run in chosen])


def open_page(page: str, run_ids: list[str]) -> None:
    """Pre-select the runs on the target page (its pickers read these keys), then go there."""
    if page == "Compare":
        st.session_state[ui_compare.COMPARE_PICKER] = run_ids
    else:
        st.session_state[ui.SELECTED_RUN] = run_ids[-1]
    st.switch_page(PAGE_FILES[page])


def recipes_overview() -> None:
    """Every tutorial recipe with the number it reported and ours."""
    found = measured()
    rows = []
    for preset in presets.PRESETS.values():
        row = found.get(preset.name) or {}
        verdict = row.get("verdict") or ""
        rows.append({_("recipe"): preset.name, _("lessons"): ", ".join(preset.lessons), _("architecture"): preset.arch,
                     _("dataset"): preset.dataset, _("settings"): presets.settings_text(preset.settings),
                     _("tutorial reported"): _(preset.reported.text) if preset.reported else "—",
                     _("measured here"): _measured_text(preset, row),
                     _("verdict"): _(VERDICTS[verdict]) if verdict in VERDICTS else verdict})
    st.dataframe(rows, hide_index=True, key="lessons_all_recipes")
