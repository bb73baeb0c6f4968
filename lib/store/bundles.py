"""Run bundles and model import: runs travel as one file, models trained anywhere come in.

A bundle is a zip holding a run's `model.keras`, `history.csv` and `meta.json` plus
`manifest.json` (format name and version, the files' SHA-256). `import_bundle` checks
everything (size, entries, checksums, meta schema, the model in Keras safe mode and its
fit to the run's dataset) and stores it as a NEW run in the given runs directory: always
a new id, never overwriting, written atomically (lib.runs.write_run). A bundle's scores are
what its author says: where its dataset is here, the model is scored again on the test set
and the run keeps the measured numbers (`meta["scores"] = "measured"`); where it is not, the
bundle's numbers stay, marked `"claimed"`. Either way `meta["claimed"]` keeps what the bundle said.

`import_keras` takes a bare `.keras` file trained anywhere, checks its input and output
against a chosen dataset (a message like "this model takes 32x32 colour images, but MNIST
has 28x28 grayscale"), scores it on that dataset's test set and stores it as a run with
status "imported", so Draw, Predictions and Compare use it like any other. A model that
takes flat (784,) or (28, 28) inputs, or outputs logits, is wrapped with built-in Keras
layers (Reshape, Softmax) and the run says so.

Every function takes the runs directory explicitly: a caller may keep one per visitor. Loading a
visitor's model and scoring it is heavy and the model is hostile until proven otherwise: the app
runs these functions in a child process with a time and memory limit (lib.execution.imports).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from lib.data import catalog, datasets
from lib.i18n import N_
from lib.models import inference, modelfiles
from lib.store import runs
from lib.training.config import TrainConfig

FORMAT = "mnist-studio-run"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
BUNDLE_FILES = (runs.MODEL_FILE, runs.HISTORY_FILE, runs.META_FILE)
BUNDLE_SUFFIX = ".studio.zip"
MAX_BUNDLE_BYTES = modelfiles.MAX_MODEL_BYTES + 10 * 1024 * 1024
MAX_TEXT_BYTES = 5 * 1024 * 1024  # meta.json, history.csv, manifest.json
IMPORTED = runs.IMPORTED  # status and arch of a model that was not trained here
UPLOAD_NAME = ".upload.keras"
PROBE_IMAGES = 512  # test images used to tell [0, 1] inputs from raw 0..255 ones
PROBABILITY_TOLERANCE = 1e-3
MEASURED, CLAIMED = runs.MEASURED, runs.CLAIMED  # meta["scores"]: scored on the test set here, or the bundle's word
SCORE_KEYS = ("test_accuracy", "test_loss", "per_class_accuracy", "confusion")


class InvalidBundle(ValueError):
    """A file that cannot be imported as a run; the message says what is wrong and what to do."""


# ---------------------------------------------------------------- export


def bundle_filename(run: runs.RunInfo) -> str:
    return f"{run.run_id}{BUNDLE_SUFFIX}"


def export_bundle(run: runs.RunInfo) -> bytes:
    """One zip with the run's model, history and meta, and a manifest to check them by."""
    contents = {name: (run.path / name).read_bytes() for name in BUNDLE_FILES}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run_id": run.run_id,
        "display_name": run.display_name,
        "exported_at": runs.timestamp(),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_FILE, json.dumps(manifest, indent=2))
        for name, data in contents.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def export_to_file(run: runs.RunInfo, path: Path) -> Path:
    """Write the run's bundle to `path` (a folder gets `<run id>.studio.zip`), atomically."""
    path = Path(path)
    if path.is_dir():
        path = path / bundle_filename(run)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(export_bundle(run))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------- import


def is_bundle(source: bytes | Path) -> bool:
    """A zip with a manifest.json (a .keras file is a zip too, with config.json instead); bytes or a file."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            return MANIFEST_FILE in archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError):
        return False


def import_bundle(data: bytes, runs_dir: Path, *, data_dir=None) -> runs.RunInfo:
    """Check a bundle and store it as a new run in `runs_dir`, re-scored on its test set where that
    dataset is here (`data_dir`, or the uploads beside `runs_dir`); InvalidBundle says why not."""
    contents, manifest = _read_bundle(data)
    meta = _checked_meta(contents[runs.META_FILE])
    _check_history(contents[runs.HISTORY_FILE])
    problem = runs.meta_problem(meta)  # the checks every listing makes: refused now, not listed as damaged later
    if problem:
        raise InvalidBundle(N_("meta.json in the bundle cannot make a run: {problem}.").format(problem=problem))
    shape = tuple(meta["dataset"]["input_shape"])
    num_classes = len(meta["dataset"]["class_names"])

    def write(folder: Path, run_id: str) -> dict:
        (folder / runs.MODEL_FILE).write_bytes(contents[runs.MODEL_FILE])
        model = _load(folder / runs.MODEL_FILE)
        problem = fit_problem(model, shape, num_classes, meta["dataset"].get("title") or meta["dataset"]["name"])
        if problem:
            raise InvalidBundle(N_("The bundle's model does not match its own run: {problem}").format(problem=problem))
        (folder / runs.HISTORY_FILE).write_bytes(contents[runs.HISTORY_FILE])
        return {
            **meta,
            **rescored(model, meta, data_dir=data_dir, uploads=datasets.uploads_dir(runs_dir)),
            "run_id": run_id,
            "display_name": runs.clean_name(meta.get("display_name") or manifest.get("display_name") or run_id),
            "created_at": runs.timestamp(),
            "imported_from": {
                "bundle_run_id": str(manifest.get("run_id", meta.get("run_id", ""))),
                "created_at": meta.get("created_at"),
                "exported_at": manifest.get("exported_at"),
            },
        }

    return runs.write_run(write, runs_dir)


def rescored(model, meta: dict, *, data_dir=None, uploads=None) -> dict:
    """The meta fields that replace a bundle's own scores: measured on its dataset's test set if that
    dataset is here (the same name, image shape and classes), else the bundle's, marked claimed.

    The bundle's numbers are kept under "claimed" either way; the parameter count is always measured.
    """
    claimed = {key: meta.get(key) for key in SCORE_KEYS}
    fields = {"params": int(model.count_params()), "claimed": claimed}
    dataset = meta["dataset"]
    try:
        loaded = catalog.load_dataset(dataset["name"], data_dir, uploads)
    except (ValueError, datasets.DatasetUnavailable, datasets.InvalidDataset, OSError):
        loaded = None
    here = loaded is not None and list(loaded.info.input_shape) == list(dataset["input_shape"]) \
        and list(loaded.info.class_names) == list(dataset["class_names"])
    if not here:
        return {**fields, "scores": CLAIMED}
    normalize = bool(meta["config"].get("normalize", True))  # as Draw and Predictions will feed it
    probs = inference.predict_proba(model, loaded.x_test, normalize=normalize)
    scores = inference.score(probs, loaded.y_test, len(dataset["class_names"]))
    return {**fields, "scores": MEASURED, "test_accuracy": scores["accuracy"], "test_loss": scores["loss"],
            "per_class_accuracy": scores["per_class_accuracy"], "confusion": scores["confusion"]}


def import_keras(data: bytes, dataset: str, runs_dir: Path, *, data_dir=None, filename: str = "model.keras",
                 name: str = "") -> runs.RunInfo:
    """Check a bare .keras model against `dataset`, score it on its test set, store it as a new run."""
    if len(data) > modelfiles.MAX_MODEL_BYTES:
        raise InvalidBundle(
            N_("The model file is {size:.0f} MB; the limit is {limit} MB.").format(
                size=len(data) / 2**20, limit=modelfiles.MAX_MODEL_BYTES // 2**20)
        )
    loaded = catalog.load_dataset(dataset, data_dir, datasets.uploads_dir(runs_dir))
    info = loaded.info
    source = Path(filename).name or "model.keras"

    def write(folder: Path, run_id: str) -> dict:
        upload = folder / UPLOAD_NAME
        upload.write_bytes(data)
        model = _load(upload)
        problem = fit_problem(model, info.input_shape, info.num_classes, info.title)
        if problem:
            raise InvalidBundle(problem)
        model, notes = adapt(model, info.input_shape, loaded.x_test)
        normalize = _pick_normalization(model, loaded.x_test, loaded.y_test, info.num_classes)
        probs = inference.predict_proba(model, loaded.x_test, normalize=normalize)
        scores = inference.score(probs, loaded.y_test, info.num_classes)
        notes.append(N_("It is fed pixels scaled to [0, 1].") if normalize else N_("It is fed raw 0..255 pixels."))
        model.save(folder / runs.MODEL_FILE)
        upload.unlink()
        (folder / runs.HISTORY_FILE).write_text(runs.history_csv([]), encoding="utf-8")
        return imported_meta(run_id, model, info, scores, normalize=normalize, source=source, notes=notes,
                             name=name)

    return runs.write_run(write, runs_dir)


def check_import_file(path: Path, dataset: str | None = None, *, filename: str | None = None) -> bool:
    """Whether the file at `path` is a run bundle (True) or a bare model (False), read no further than
    its zip directory; InvalidBundle when it is neither, too big, or a bare model without `dataset`."""
    path = Path(path)
    name = filename or path.name
    if not path.is_file():
        raise InvalidBundle(N_("There is no file at {path}.").format(path=path))
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise InvalidBundle(N_("{name} is over {limit} MB; that is no run bundle or model.").format(
            name=name, limit=MAX_BUNDLE_BYTES // 2**20))
    if is_bundle(path):
        return True
    if not zipfile.is_zipfile(path):  # both a bundle and a .keras file are zip archives
        raise InvalidBundle(N_("{name} is neither a run bundle (.studio.zip) nor a Keras model (.keras).").format(name=name))
    if not dataset:
        raise InvalidBundle(
            N_("{name} is a bare model, not a run bundle: say which dataset to check and score it on (--dataset "
               "mnist, for example).").format(name=name)
        )
    return False


def import_file(path: Path, runs_dir: Path, *, dataset: str | None = None, data_dir=None,
                filename: str | None = None, name: str = "") -> runs.RunInfo:
    """A bundle or a bare .keras file from disk; a .keras file needs `dataset`. `filename` is the
    name the user knows the file by (an upload is kept under another name until it is imported)."""
    path = Path(path)
    bundle = check_import_file(path, dataset, filename=filename)
    data = path.read_bytes()
    if bundle:
        return import_bundle(data, runs_dir, data_dir=data_dir)
    return import_keras(data, dataset, runs_dir, data_dir=data_dir, filename=filename or path.name, name=name)


# ---------------------------------------------------------------- model checks


def describe_input(shape) -> str:
    """An input shape (without the batch axis) in words: "32x32 colour images"."""
    shape = tuple(shape)
    if len(shape) == 3:
        height, width, channels = shape
        colour = {1: N_("grayscale"), 3: N_("colour")}.get(channels) or N_("{count}-channel").format(count=channels)
        if height is None or width is None:
            return N_("{colour} images of any size").format(colour=colour)
        return N_("{height}x{width} {colour} images").format(height=height, width=width, colour=colour)
    if len(shape) == 2:
        return N_("{height}x{width} grayscale images").format(height=_side(shape[0]), width=_side(shape[1]))
    if len(shape) == 1:
        return N_("flat vectors of {count} values").format(count=_side(shape[0]))
    return N_("inputs of shape {shape}").format(shape=shape)


def fit_problem(model, input_shape, num_classes: int, dataset_title: str) -> str:
    """Why this model cannot take the dataset's images or name its classes; '' if it can."""
    inputs, outputs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        return N_("This model has {inputs} inputs and {outputs} outputs; the app needs one image input and one "
                  "output with a probability per class.").format(inputs=len(inputs), outputs=len(outputs))
    height, width, channels = input_shape
    wanted = describe_input(input_shape)
    model_in = tuple(model.input_shape[1:])
    if not _input_fits(model_in, (height, width, channels)):
        return N_("This model takes {takes}, but {dataset} has {wanted}. Pick the dataset it was trained on, or "
                  "train a model for this one.").format(takes=describe_input(model_in), dataset=dataset_title,
                                                        wanted=wanted)
    model_out = tuple(model.output_shape[1:])
    if len(model_out) != 1:
        return N_("This model outputs shape {shape}, not one score per class; the app needs a last Dense layer "
                  "with one unit per class.").format(shape=model_out)
    if model_out[0] != num_classes:
        return N_("This model has {outputs} outputs, but {dataset} has {count} classes. Pick a dataset with as many "
                  "classes as the model has outputs.").format(outputs=model_out[0], dataset=dataset_title,
                                                               count=num_classes)
    return ""


def adapt(model, input_shape, x_sample: np.ndarray):
    """The model taking (H, W, C) images and giving probabilities: built-in Reshape / Softmax added if needed."""
    import keras

    notes = []
    model_in = tuple(model.input_shape[1:])
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    if model_in != tuple(input_shape) and None not in model_in:
        x = keras.layers.Reshape(model_in, name="reshape_to_model_input")(x)
        notes.append(N_("It takes {takes}: the app reshapes each image for it.").format(takes=describe_input(model_in)))
    outputs = model(x)
    probe = np.asarray(keras.Model(inputs, outputs)(inference.model_input(x_sample[:8], normalize=True)), dtype=np.float64)
    if not (np.allclose(probe.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE) and probe.min() >= 0):
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
        notes.append(N_("Its outputs are not probabilities (logits): the app adds a softmax."))
    if not notes:
        return model, notes
    return keras.Model(inputs, outputs, name="imported"), notes


def imported_meta(run_id: str, model, info: datasets.DatasetInfo, scores: dict, *, normalize: bool, source: str,
                  notes: list[str], name: str = "") -> dict:
    """meta.json of an imported model: what a trained run has, as far as it can be known."""

    config = {**TrainConfig().to_dict(), "dataset": info.name, "arch": IMPORTED, "epochs": 0,
              "normalize": normalize, "augment": False, "name": name}
    policy = getattr(getattr(model, "dtype_policy", None), "name", "float32")
    return {
        "schema": runs.SCHEMA_VERSION,
        "run_id": run_id,
        "display_name": runs.clean_name(name or f"{Path(source).stem} (imported)"),
        "created_at": runs.timestamp(),
        "status": IMPORTED,
        "stop_reason": N_("from {source}, scored on the {dataset} test set. {notes}").format(
            source=source, dataset=info.title, notes=" ".join(notes)),
        "config": config,
        "dataset": runs.dataset_meta(info),
        "arch": IMPORTED,
        "params": int(model.count_params()),
        "epochs_completed": 0,
        "test_loss": scores["loss"],
        "test_accuracy": scores["accuracy"],
        "per_class_accuracy": scores["per_class_accuracy"],
        "confusion": scores["confusion"],
        "scores": MEASURED,
        "best_val_accuracy": None,
        "training_seconds": None,
        "samples_per_s": None,
        "precision": policy,
        "versions": runs.library_versions(),
        "imported_from": {"file": source, "notes": notes},
    }


# ---------------------------------------------------------------- helpers


def _load(path: Path):
    try:
        return modelfiles.load_keras_file(path)
    except modelfiles.UnusableModel as problem:
        raise InvalidBundle(str(problem)) from None


def _side(value) -> str:
    return "any" if value is None else str(value)


def _input_fits(model_in: tuple, image_shape: tuple) -> bool:
    """The model takes (H, W, C) images as they are, flattened, or (H, W) for one channel."""
    height, width, channels = image_shape
    if len(model_in) == 3:
        return all(m in (None, d) for m, d in zip(model_in, image_shape))
    if len(model_in) == 2:
        return channels == 1 and model_in == (height, width)
    if len(model_in) == 1:
        return model_in[0] == height * width * channels
    return False


def _pick_normalization(model, x_test, y_test, num_classes: int) -> bool:
    """Scaled to [0, 1] unless the model clearly scores better on raw 0..255 pixels (it rescales itself)."""
    x, y = x_test[:PROBE_IMAGES], y_test[:PROBE_IMAGES]
    accuracy = {}
    for normalize in (True, False):
        probs = inference.predict_proba(model, x, normalize=normalize)
        accuracy[normalize] = inference.score(probs, y, num_classes)["accuracy"]
    return not accuracy[False] > accuracy[True] + 0.05


def _read_bundle(data: bytes) -> tuple[dict[str, bytes], dict]:
    """The bundle's files, checked against its manifest; InvalidBundle for anything odd."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise InvalidBundle(N_("The bundle is {size:.0f} MB; the limit is {limit} MB.").format(
            size=len(data) / 2**20, limit=MAX_BUNDLE_BYTES // 2**20))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = {entry.filename: entry for entry in archive.infolist()}
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise InvalidBundle(
            N_("This is not a run bundle: not a readable zip file (or it was cut off while downloading). Download "
               "the run again with the Run bundle button and use the new file.")
        ) from None
    expected = {MANIFEST_FILE, *BUNDLE_FILES}
    if set(entries) != expected:
        odd = sorted(set(entries) - expected)
        lacking = sorted(expected - set(entries))
        detail = (N_("unexpected {odd}; missing {lacking}") if odd and lacking else
                  N_("unexpected {odd}") if odd else N_("missing {lacking}")).format(odd=", ".join(odd),
                                                                                      lacking=", ".join(lacking))
        raise InvalidBundle(N_("This is not a run bundle the app made ({detail}). A bundle holds exactly "
                               "{names}.").format(detail=detail, names=", ".join(sorted(expected))))
    for name, entry in entries.items():
        limit = modelfiles.MAX_MODEL_BYTES if name == runs.MODEL_FILE else MAX_TEXT_BYTES
        if entry.file_size > limit or entry.file_size > max(entry.compress_size, 1) * modelfiles.MAX_COMPRESSION_RATIO \
                and entry.file_size > modelfiles.RATIO_CHECK_FROM_BYTES:
            raise InvalidBundle(N_("{name} in the bundle unpacks to {size:.0f} MB; it was not opened.").format(
                name=name, size=entry.file_size / 2**20))
    try:
        contents = {name: archive.read(name) for name in expected}
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise InvalidBundle(N_("The bundle is damaged ({error}); download the run again.").format(error=error)) from None
    manifest = _json(contents.pop(MANIFEST_FILE), MANIFEST_FILE)
    if manifest.get("format") != FORMAT:
        raise InvalidBundle(N_("This zip's manifest is not an MNIST Studio run bundle's."))
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidBundle(
            N_("This bundle has format version {version!r}, newer than this app reads ({readable}); update the "
               "app, or export the run again from this version.").format(version=version, readable=FORMAT_VERSION)
        )
    sums = manifest.get("files") or {}
    for name, content in contents.items():
        if sums.get(name) != hashlib.sha256(content).hexdigest():
            raise InvalidBundle(N_("{name} in the bundle does not match its checksum: the file was changed or "
                                   "damaged.").format(name=name))
    return contents, manifest


def _json(data: bytes, name: str) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidBundle(N_("{name} in the bundle is not valid JSON.").format(name=name)) from None
    if not isinstance(value, dict):
        raise InvalidBundle(N_("{name} in the bundle holds no object.").format(name=name))
    return value


def _checked_meta(data: bytes) -> dict:
    """meta.json with the fields the app relies on checked; malformed optional scores dropped."""
    meta = _json(data, runs.META_FILE)
    dataset = meta.get("dataset")
    if not isinstance(meta.get("config"), dict) or not isinstance(dataset, dict):
        raise InvalidBundle(N_("meta.json in the bundle lacks the run's config or dataset."))
    names, shape = dataset.get("class_names"), dataset.get("input_shape")
    if not (isinstance(dataset.get("name"), str) and datasets.NAME_PATTERN.match(dataset["name"])):
        raise InvalidBundle(N_("meta.json in the bundle does not name its dataset."))
    if not (isinstance(names, list) and 2 <= len(names) <= datasets.MAX_CLASSES and all(isinstance(n, str) for n in names)):
        raise InvalidBundle(N_("meta.json in the bundle has no usable class names (2 to 100 strings)."))
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) for v in shape)
            and datasets.MIN_SIDE <= shape[0] <= datasets.MAX_SIDE and datasets.MIN_SIDE <= shape[1] <= datasets.MAX_SIDE
            and shape[2] in (1, 3)):
        raise InvalidBundle(N_("meta.json in the bundle has an unusable input shape {shape!r}.").format(shape=shape))
    if dataset.get("kind") not in datasets.KINDS:
        dataset["kind"] = "object"
    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "training_seconds", "samples_per_s",
                "epochs_completed", "params"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            meta[key] = None
    k = len(names)
    confusion, per_class = meta.get("confusion"), meta.get("per_class_accuracy")
    if not (isinstance(confusion, list) and len(confusion) == k
            and all(isinstance(row, list) and len(row) == k and all(isinstance(v, int) for v in row) for row in confusion)):
        meta["confusion"] = []
    if not (isinstance(per_class, list) and len(per_class) == k and all(isinstance(v, (int, float)) for v in per_class)):
        meta["per_class_accuracy"] = []
        meta["confusion"] = []
    if not isinstance(meta.get("display_name"), str):
        meta["display_name"] = ""
    if not isinstance(meta.get("status"), str):
        meta["status"] = IMPORTED
    return meta


def _check_history(data: bytes) -> None:
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        header = csv.DictReader(io.StringIO(data.decode("utf-8"))).fieldnames or []
    except (UnicodeDecodeError, csv.Error):
        raise InvalidBundle(N_("history.csv in the bundle is not readable text.")) from None
    if "epoch" not in header or not set(header) <= set(runs.HISTORY_COLUMNS):
        raise InvalidBundle(N_("history.csv in the bundle has columns {header}; expected {expected}.").format(
            header=header, expected=list(runs.HISTORY_COLUMNS)))
    for row in rows:
        for value in row.values():
            if value not in ("", None):
                try:
                    float(value)
                except ValueError:
                    raise InvalidBundle(N_("history.csv in the bundle has a non-number {value!r}.").format(value=value)) from None
