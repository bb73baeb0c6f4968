"""Data page widgets for your own data and models: image-folder zips, drawn classes, model import.

Streamlit glue only: scanning and conversion are in lib.data.imagefolder, the drawing draft
in lib.data.drawnclasses, bundles and model import in lib.store.bundles (run as a job in a child
process: lib.execution.imports). Session state holds plain data: the draft (class names and small
uint8 arrays), ids and short notices.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.data import catalog, datasets, drawnclasses, imagefolder
from lib.execution import imports, jobs
from lib.store import backend, bundles, runs, workspaces
from lib.training import presets
from lib.ui import common as ui, draw as ui_draw, train as ui_train
from lib.ui.i18n import N_, _, engine_text, labels, number, percent

# Session-state and widget keys.
NOTICE = "data_own_notice"  # (section, "ok" | "error", text[, todo]) shown once under that section
FOLDER_ZIP, FOLDER_NAME, FOLDER_COLOUR, FOLDER_SIZE = "data_zip", "data_zip_name", "data_zip_colour", "data_zip_size"
DRAFT = "data_draft"  # the drawing draft (lib.data.drawnclasses), or None
DRAW_NAMES, DRAW_CLASS, DRAW_SET_NAME = "data_draw_names", "data_draw_class", "data_draw_set_name"
DRAW_EPOCHS, DRAW_DELETE = "data_draw_epochs", "data_draw_delete"
DRAW_CANVAS, DRAW_CLEARS = "data_draw_canvas", "data_draw_clears"
DRAW_PENDING = "data_draw_pending"  # the canvas's pixels as the last run saw them, for the Add button's callback
DRAW_JOB = "data_draw_job"  # the training job started from drawn classes
IMPORT_FILE, IMPORT_DATASET = "data_import_file", "data_import_dataset"
IMPORT_JOB = "import_job"  # per page (prefixed): the id of the import job this session started last
DEFAULTS = {DRAFT: None, DRAW_CLEARS: 0, DRAW_JOB: None, DRAW_PENDING: None}
DEFAULT_CLASSES = "circle, square, triangle"
SUGGESTED_PER_CLASS = 20
DRAW_MAX_EPOCHS = 200  # as the Train page's Epochs box
STORE_TODO = N_("It can be used here now and is sent to the run store by itself once the store answers again; "
                "if the app restarts before that, add it again.")
DRAWN_SET_BYTES = 1024 * 1024  # what a saved set of drawings may take, for the disk quota (a few 28x28 images)
STROKE_PX = 18
THUMB_PX = 56
SAMPLE_PX = 64


def apply_defaults() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def _notice(section: str, kind: str, text: str, todo: str = "") -> None:
    st.session_state[NOTICE] = (section, kind, text, todo)


def show_notice(section: str) -> None:
    """The outcome of the last action in this section (success, or what went wrong and what to do)."""
    notice = st.session_state.get(NOTICE)
    if not notice or notice[0] != section:
        return
    st.session_state.pop(NOTICE)
    if notice[1] == "ok":
        st.success(notice[2], icon=":material/check_circle:")
    else:
        ui.error(notice[2], notice[3])


def _use_dataset(info: datasets.DatasetInfo) -> None:
    ui.dataset_infos.clear()
    _unusable.clear()
    st.session_state[ui.DATASET] = info.name  # callbacks run before the sidebar draws its picker


def own_data_sections() -> None:
    """The Data page's "Your own data and models": image folders, drawn classes, .npz files, model import."""
    st.header(_("Your own data and models"))
    unusable_files()
    with st.container(border=True):
        st.subheader(_("Add an image folder (.zip)"))
        image_folder_section()
    with st.container(border=True):
        st.subheader(_("Draw your own classes"))
        drawn_classes_section()
    with st.container(border=True):
        st.subheader(_("Import a model (.keras) or run bundle"))
        import_section()
    with st.expander(_("Use your own dataset (.npz)")):
        npz_section()


@st.cache_data(show_spinner=False, ttl=60)
def _unusable(key: tuple[str, str]) -> dict[str, str]:
    return catalog.unusable_datasets(*key)


def unusable_files() -> None:
    """Dataset files that are there but cannot be used, each with its reason: otherwise they would
    just be missing from the dataset list, with no hint why."""
    problems = _unusable(ui.data_key())
    if problems:
        st.warning(_("**Not in the dataset list:**\n") + "\n".join(f"- {engine_text(problem)}" for problem in problems.values()),
                   icon=":material/warning:")


def npz_section() -> None:
    """A ready-made .npz dataset, checked before it is kept."""
    st.markdown(
        _("An `.npz` with `x_train`, `y_train`, `x_test`, `y_test` as `keras.datasets.mnist.load_data()` returns "
        "them: uint8 images (N, H, W) or (N, H, W, C), integer labels 0..K-1, optional `class_names` (strings). "
        "It is checked before it is kept.")
    )
    name = st.text_input(_("Dataset name"), key="data_upload_name", placeholder=_("e.g. my_letters"))
    upload = st.file_uploader(_("Dataset file"), type=["npz"], key="data_upload_file")
    if st.button(_("Add dataset"), disabled=not (upload and name), key="data_upload_add"):
        try:
            data = upload.getvalue()
            added = _store_dataset(len(data), lambda folder: datasets.save_upload(name, data, folder=folder))
        except (datasets.InvalidDataset, workspaces.QuotaExceeded) as problem:
            ui.error(_("This file cannot be used as a dataset."), str(problem))
        except backend.StoreError as problem:
            ui.dataset_infos.clear()
            ui.error(_("The dataset was added here but not to the run store."), f"{engine_text(problem)} {_(STORE_TODO)}")
        else:
            ui.dataset_infos.clear()
            _unusable.clear()
            st.success(_("Added {name}: {num_classes} classes. Pick it in the sidebar.").format(name=added.name, num_classes=added.num_classes))


def _store_dataset(nbytes: int, save):
    """`save(folder)` into this visitor's uploads folder, within the disk quotas (QuotaExceeded says why not)."""
    return ui.workspace().store(nbytes, lambda folder: save(datasets.uploads_dir(folder)))


# ---------------------------------------------------------------- image folders


@st.cache_resource(max_entries=2, show_spinner=False)
def _scan(file_id: str, _data: bytes, filename: str):
    """The scan of one upload (by its id): a FolderScan, or the message saying why not."""
    try:
        return imagefolder.scan_zip(_data, source=filename)
    except imagefolder.InvalidImageFolder as problem:
        return str(problem)


def image_folder_section() -> None:
    """Upload a zip of class folders, see what was found, choose size and colour, save it."""
    st.markdown(
        _("One folder of images per class (PNG, JPEG, BMP or GIF; any size, colour or grayscale), zipped. Optional `train/` and `test/` top folders; otherwise a fifth (20%) of each class is held out for testing. Up to {value} MB and {MAX_ENTRIES:,} files.").format(value=imagefolder.MAX_ZIP_BYTES // 2**20, MAX_ENTRIES=imagefolder.MAX_ENTRIES)
    )
    upload = st.file_uploader(_("Image folder (.zip)"), type=["zip"], key=FOLDER_ZIP)
    show_notice("folder")
    if upload is None:
        return
    with st.spinner(_("Checking the zip and reading every image's header…")):
        scan = _scan(upload.file_id, upload.getvalue(), upload.name)
    if isinstance(scan, str):
        ui.error(_("This zip cannot be used as a dataset."), scan)
        return
    options, report = st.columns([1, 2])
    with options:
        st.text_input(_("Dataset name"), value=imagefolder.suggest_name(upload.name), key=FOLDER_NAME,
                      max_chars=40, help=_("Lowercase letters, digits, - and _."))
        size = st.segmented_control(_("Image size"), imagefolder.SIZES, default=28, required=True, key=FOLDER_SIZE,
                                    format_func=lambda px: f"{px} x {px}")
        colour = st.toggle(_("Keep colour"), key=FOLDER_COLOUR,
                           help=_("Off: grayscale like MNIST (smaller, faster). On: RGB, three channels."))
        st.button(_("Save as dataset"), type="primary", icon=":material/save:", key="data_zip_save",
                  on_click=_save_folder, args=(upload.file_id, upload.name))
    with report:
        scan_report(scan, size=int(size), colour=bool(colour))


def scan_report(scan: imagefolder.FolderScan, *, size: int, colour: bool) -> None:
    """What the zip holds: classes and counts, samples, sizes and the resize, skipped files and why."""
    counts = scan.counts()
    cols = st.columns(3)
    cols[0].metric(_("Classes"), len(scan.class_names))
    cols[1].metric(_("Images"), f"{sum(counts):,}")
    cols[2].metric(_("Files skipped"), len(scan.skipped))
    table = {_("class"): scan.class_names}
    if scan.split_given:
        table.update({_("train"): scan.counts("train"), _("test"): scan.counts("test")})
    else:
        table[_("images")] = counts
    st.dataframe(pd.DataFrame(table), hide_index=True, key="data_zip_counts")
    st.caption(_("Train and test come from your train/ and test/ folders.") if scan.split_given else
               _("{TEST_SHARE:.0%} of each class (seeded, stratified) will be the test set.").format(TEST_SHARE=imagefolder.TEST_SHARE))
    st.info(scan.resize_note(size, colour), icon=":material/photo_size_select_large:")
    for warning in scan.warnings:
        st.warning(engine_text(warning), icon=":material/warning:")
    for name in scan.class_names:
        thumbs = scan.samples.get(name) or []
        if thumbs:
            st.image(thumbs, width=SAMPLE_PX, caption=[name] * len(thumbs))
    if scan.skipped:
        with st.expander(_("Skipped files ({count}): ").format(count=len(scan.skipped))
                         + "; ".join(f"{n} {engine_text(why)}" for why, n in scan.skipped_summary().items())):
            st.dataframe(pd.DataFrame([(path, engine_text(why)) for path, why in scan.skipped],
                                      columns=[_("file"), _("why")]), hide_index=True,
                         key="data_zip_skipped")


def _save_folder(file_id: str, filename: str) -> None:
    upload = st.session_state.get(FOLDER_ZIP)
    scan = _scan(file_id, upload.getvalue(), filename) if upload is not None else _("The upload is gone.")
    if isinstance(scan, str):
        _notice("folder", "error", _("This zip cannot be used as a dataset."), scan)
        return
    try:
        info, converted = _store_dataset(len(upload.getvalue()), lambda folder: imagefolder.save_scan(
            st.session_state.get(FOLDER_NAME, ""), scan, size=int(st.session_state.get(FOLDER_SIZE) or 28),
            colour=bool(st.session_state.get(FOLDER_COLOUR)), folder=folder,
        ))
    except (imagefolder.InvalidImageFolder, datasets.InvalidDataset, workspaces.QuotaExceeded) as problem:
        _notice("folder", "error", _("The dataset was not saved."), str(problem))
        return
    except backend.StoreError as problem:
        _notice("folder", "error", _("The dataset was saved here but not to the run store."), f"{engine_text(problem)} {_(STORE_TODO)}")
        return
    _use_dataset(info)
    sizes = " x ".join(map(str, info.input_shape))
    _notice("folder", "ok", _("Saved {name}: {classes} classes, {train} training and {test} test images ({sizes}). "
                              "It is selected in the sidebar: train on it on the Train page.").format(
        name=info.name, classes=info.num_classes, train=number(len(converted.arrays["y_train"])),
        test=number(len(converted.arrays["y_test"])), sizes=sizes) + " " + " ".join(map(engine_text, converted.notes[1:])))


# ---------------------------------------------------------------- drawn classes


def drawn_classes_section() -> None:
    """Name 2-10 classes, draw examples of each, save them as a dataset, train, then go to Draw."""
    draft = st.session_state.get(DRAFT)
    show_notice("draw")
    if draft is None:
        st.markdown(_("Name 2 to 10 classes (letters, shapes, symbols), then draw about {SUGGESTED_PER_CLASS} examples of each on the canvas.").format(SUGGESTED_PER_CLASS=SUGGESTED_PER_CLASS))
        st.text_input(_("Class names, separated by commas"), value=DEFAULT_CLASSES, key=DRAW_NAMES)
        st.button(_("Start drawing"), icon=":material/draw:", key="data_draw_start", on_click=_start_draft)
        return
    pad, shelf = st.columns([1, 1])
    with pad:
        chosen = st.segmented_control(_("Draw an example of"), draft["classes"], default=draft["classes"][0],
                                      required=True, key=DRAW_CLASS)
        image = ui_draw.canvas(STROKE_PX, key=DRAW_CANVAS, clears_key=DRAW_CLEARS)
        st.session_state[DRAW_PENDING] = image
        add, undo, clear = st.columns([3, 2, 2])
        add.button(_("Add to {chosen}").format(chosen=chosen), type="primary", icon=":material/add:", key="data_draw_add",
                   disabled=image is None, on_click=_add_drawing, args=(chosen,), width="stretch")
        undo.button(_("Undo"), icon=":material/undo:", key="data_draw_undo", on_click=_undo,
                    disabled=not draft["order"], width="stretch")
        clear.button(_("Clear"), icon=":material/ink_eraser:", key="data_draw_clear", on_click=ui_draw.clear_canvas,
                     args=(DRAW_CANVAS, DRAW_CLEARS), width="stretch")
    with shelf:
        drawings_shelf(draft, chosen)
    save_and_train(draft)


def drawings_shelf(draft: dict, chosen: str) -> None:
    """Counts per class, the chosen class's drawings as the model sees them, delete one."""
    counts = drawnclasses.counts(draft)
    for name, count in counts.items():
        st.progress(min(count / SUGGESTED_PER_CLASS, 1.0), text=_("{name}: {count} drawing(s)").format(name=name, count=count))
    thumbs = drawnclasses.thumbnails(draft, chosen)
    if not thumbs:
        st.caption(_("No drawings of {chosen} yet. They show here as the model will see them (28 x 28).").format(chosen=chosen))
        return
    st.image(thumbs, width=THUMB_PX, caption=[f"#{i + 1}" for i in range(len(thumbs))])
    number, delete = st.columns([2, 1], vertical_alignment="bottom")
    number.selectbox(_("Drawing of {chosen} to delete").format(chosen=chosen), range(len(thumbs)), format_func=lambda i: f"#{i + 1}",
                     key=DRAW_DELETE)
    delete.button(_("Delete"), icon=":material/delete_forever:", key="data_draw_delete_one", on_click=_delete,
                  args=(chosen,))


def save_and_train(draft: dict) -> None:
    """Save the drawings as a dataset and train on it in one click; then go to Draw."""
    short = drawnclasses.missing(draft)
    name_col, epochs_col, go_col = st.columns([2, 1, 2], vertical_alignment="bottom")
    name_col.text_input(_("Dataset name"), value=_("my_drawings"), key=DRAW_SET_NAME, max_chars=40)
    epochs_col.number_input(_("Epochs"), 1, DRAW_MAX_EPOCHS, presets.DRAWN_CLASSES_RECIPE["epochs"], key=DRAW_EPOCHS,
                            help=_("Many short epochs: there are few images. Light augmentation is on. From 1 to "
                                   "{most}.").format(most=DRAW_MAX_EPOCHS))
    go_col.button(_("Save and train"), type="primary", icon=":material/model_training:", key="data_draw_train",
                  disabled=bool(short), on_click=_save_and_train,
                  help=_("Draw at least three examples of each class first.") if short else None)
    if short:
        st.caption(_("Still to draw: ") + "; ".join(short) + _(". About {SUGGESTED_PER_CLASS} per class work well.").format(SUGGESTED_PER_CLASS=SUGGESTED_PER_CLASS))
    col_restart, _spacer = st.columns([1, 3])
    col_restart.button(_("Start over"), icon=":material/restart_alt:", key="data_draw_reset", on_click=_reset_draft)
    job_id = st.session_state.get(DRAW_JOB)
    if job_id and ui.job_manager().snapshot(job_id) is not None:
        _job_status(job_id)


def _job_status(job_id: str) -> None:
    manager = ui.job_manager()

    @st.fragment(run_every=ui.JOB_POLL_SECONDS if manager.snapshot(job_id).active else None)
    def status():
        job = manager.snapshot(job_id)
        st.markdown(f"**{job.config.display_name}** · {jobs.describe_state(job)}")
        if job.active:
            st.progress(min(jobs.job_fraction(job), 1.0))
            st.session_state["_data_draw_active"] = True
            return
        if st.session_state.pop("_data_draw_active", False):
            st.rerun()  # redraw the page with the finished run's button
        if job.run_id:
            if st.button(_("Try it on Draw"), type="primary", icon=":material/draw:", key="data_draw_go"):
                st.session_state[ui.DRAW_FOCUS] = job.run_id
                st.switch_page("pages/draw.py")
        elif job.state == jobs.FAILED:
            ui.error(_("Training failed."), job.error or "")

    status()


def _start_draft() -> None:
    st.session_state.pop(DRAW_CLASS, None)
    try:
        st.session_state[DRAFT] = drawnclasses.new_draft(st.session_state.get(DRAW_NAMES, "").split(","))
    except drawnclasses.InvalidDraft as problem:
        _notice("draw", "error", _("These class names do not work."), str(problem))


def _add_drawing(class_name: str) -> None:
    image = st.session_state.get(DRAW_PENDING)
    if image is None:
        return  # a second click before the canvas was redrawn: nothing new to add
    try:
        drawnclasses.add_drawing(st.session_state[DRAFT], class_name, image)
    except drawnclasses.InvalidDraft as problem:
        _notice("draw", "error", _("The drawing was not added."), str(problem))
    st.session_state[DRAW_PENDING] = None
    ui_draw.clear_canvas(DRAW_CANVAS, DRAW_CLEARS)


def _undo() -> None:
    drawnclasses.undo_last(st.session_state[DRAFT])


def _delete(class_name: str) -> None:
    try:
        drawnclasses.delete_drawing(st.session_state[DRAFT], class_name, int(st.session_state.get(DRAW_DELETE) or 0))
    except drawnclasses.InvalidDraft as problem:
        _notice("draw", "error", _("Nothing was deleted."), str(problem))
    st.session_state.pop(DRAW_DELETE, None)


def _reset_draft() -> None:
    st.session_state.pop(DRAW_CLASS, None)
    st.session_state[DRAFT] = None
    st.session_state[DRAW_JOB] = None


def _save_and_train() -> None:
    draft = st.session_state[DRAFT]
    try:
        info = _store_dataset(DRAWN_SET_BYTES, lambda folder: drawnclasses.save_draft(
            st.session_state.get(DRAW_SET_NAME, ""), draft, folder=folder))
        config = presets.drawn_classes_config(info.name, epochs=int(st.session_state.get(DRAW_EPOCHS) or 1))
    except (drawnclasses.InvalidDraft, datasets.InvalidDataset, ValueError, workspaces.QuotaExceeded) as problem:
        _notice("draw", "error", _("The drawings were not saved."), str(problem))
        return
    except backend.StoreError as problem:
        _notice("draw", "error", _("The drawings were saved here but not to the run store."), f"{engine_text(problem)} {_(STORE_TODO)}")
        return
    _use_dataset(info)
    st.session_state[DRAW_JOB] = ui_train.submit(config)
    if st.session_state[DRAW_JOB] is None:
        refused = st.session_state.pop(ui_train.SUBMIT_PROBLEM, "")
        _notice("draw", "error", _("Saved {name}, but the training was not started.").format(name=info.name), refused)
        return
    counts = drawnclasses.counts(draft)
    _notice("draw", "ok", _("Saved {name} ({drawings} drawings of {classes} classes) and started training with light "
                            "augmentation: {epochs} epochs.").format(name=info.name, drawings=sum(counts.values()),
                                                                      classes=len(counts), epochs=config.epochs))


# ---------------------------------------------------------------- model and run import


def import_section(key_prefix: str = "data") -> None:
    """Upload a run bundle or a bare .keras model; a model is checked and scored on a chosen dataset.

    The import is a job (a child process with a time and memory limit, in the same queue and
    per-visitor limits as trainings): the section shows it pending, then what came of it.
    """
    st.markdown(
        _("A **run bundle** (`.studio.zip`, from the Run bundle download of any run) comes back as a new run, "
        "scored again on its test set where that dataset is here. "
        "A **Keras model** (`.keras`, saved with `model.save` anywhere) is loaded in safe mode (no custom code "
        "runs), checked against a dataset, scored on its test set and kept as a run for Draw, Predictions "
        "and Compare. Both are opened in a separate process with a time and memory limit.")
    )
    section, job_key = f"{key_prefix}_import", f"{key_prefix}_{IMPORT_JOB}"
    upload = st.file_uploader(_("Run bundle or Keras model"), type=["zip", "keras"], key=f"{key_prefix}_{IMPORT_FILE}")
    _import_outcome(job_key, section)
    show_notice(section)
    if st.session_state.get(job_key):
        _import_status(st.session_state[job_key], job_key)
    if upload is None:
        return
    data = upload.getvalue()
    is_bundle = bundles.is_bundle(data)
    dataset = None
    if not is_bundle:
        infos = ui.dataset_infos(ui.data_key())
        names = list(infos)
        current = st.session_state.get(ui.DATASET)
        dataset = st.selectbox(_("Dataset to check and score it on"), names, format_func=labels(names, lambda n: _(infos[n].title)),
                               index=names.index(current) if current in names else 0,
                               key=f"{key_prefix}_{IMPORT_DATASET}")
    if st.button(_("Import run") if is_bundle else _("Import model"), type="primary", icon=":material/upload:",
                 key=f"{key_prefix}_import_go"):
        _submit_import(upload.name, data, dataset, section, job_key)
        st.rerun()


def _submit_import(filename: str, data: bytes, dataset: str | None, section: str, job_key: str) -> None:
    """Queue the import as a job of this visitor's; a refusal (size, a job already active) is the notice."""
    if len(data) > bundles.MAX_BUNDLE_BYTES:
        _notice(section, "error", _("{filename} was not imported.").format(filename=filename),
                _("It is {size:.0f} MB; the limit is {limit} MB.").format(size=len(data) / 2**20,
                                                                         limit=bundles.MAX_BUNDLE_BYTES // 2**20))
        return
    request = imports.stage_upload(data, filename, dataset=dataset)
    try:
        st.session_state[job_key] = ui.job_manager().submit(request, ui.visitor_id(), runs_dir=ui.workspace().folder)
    except jobs.SubmitRefused as refused:
        imports.discard(request)
        _notice(section, "error", _("{filename} was not imported.").format(filename=filename), str(refused))


def _import_status(job_id: str, job_key: str) -> None:
    """The pending import: queued or importing, redrawn until it ends; then the whole page reruns."""
    manager = ui.job_manager()
    job = manager.snapshot(job_id)
    if job is None or not job.active:
        st.rerun()  # it ended since the top of this run: the next run shows what came of it

    @st.fragment(run_every=ui.JOB_POLL_SECONDS)
    def status():
        now = manager.snapshot(job_id)
        active = now is not None and now.active
        if active:
            st.info(f"**{now.config.filename}** · {jobs.describe_state(now)}", icon=":material/hourglass_top:")
        ui.rerun_when_ended(f"_{job_key}_active", active, initially=True)

    status()


def _import_outcome(job_key: str, section: str) -> None:
    """An import job that has ended becomes the section's notice (once), and Draw asks its run first."""
    job_id = st.session_state.get(job_key)
    job = ui.job_manager().snapshot(job_id) if job_id else None
    if job is not None and job.active:
        return
    st.session_state.pop(job_key, None)
    if job is None:
        return
    filename = job.config.filename
    if job.state != jobs.FINISHED or not job.run_id:
        _notice(section, "error", _("{filename} was not imported.").format(filename=filename),
                job.error or jobs.describe_state(job))
        return
    try:
        run = ui.workspace().get_run(job.run_id)
    except runs.RunNotFound:
        _notice(section, "error", _("{filename} was imported, but its run is gone.").format(filename=filename),
                _("It was deleted since."))
        return
    st.session_state[ui.DRAW_FOCUS] = run.run_id
    accuracy = run.meta.get("test_accuracy")
    score = ""
    if isinstance(accuracy, (int, float)):
        score = " " + (_("Test accuracy {accuracy}, as the bundle claims: its dataset is not here to check it.")
                       if run.meta.get("scores") == bundles.CLAIMED else
                       _("Test accuracy {accuracy}, measured here on the test set.")).format(accuracy=percent(accuracy))
    _notice(section, "ok", _("Imported as run {name} ({run_id}).").format(name=run.display_name, run_id=run.run_id)
            + score + " " + _("Draw, Predictions and Compare list it now."))
