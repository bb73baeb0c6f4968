"""The run registry: one folder per trained model, written atomically.

A run is `<runs dir>/<run id>/` holding `model.keras`, `history.csv` and
`meta.json`. It is assembled in a hidden temporary folder and renamed into
place in one step, so a crash never leaves a half-written run. A damaged
folder is reported and skipped; it never breaks the listing. The bundled
default model in `models/default/` is listed as a read-only run.

Every meta.json is checked for the types and ranges of what the pages and the CLI read
(`meta_problem`) before it becomes a RunInfo: a hand-edited or forged one is a damaged
folder with the reason, never a crash further on. Scores are "measured" (trained or
re-scored here) or "claimed" (imported, not verified): only measured ones compete for best.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lib.data import datasets, paths
from lib.i18n import N_
from lib.models import modelfiles
from lib.store import backend
from lib.training.config import TrainConfig

MODEL_FILE, HISTORY_FILE, META_FILE = "model.keras", "history.csv", "meta.json"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images")
BUNDLED_ID = "default"
SCHEMA_VERSION = 1
MAX_NAME_LENGTH = 80
RUN_ID_PATTERN = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
IMPORTED = "imported"  # the status of a model trained elsewhere and scored on import
STATUSES = ("finished", "stopped", "diverged", "failed", IMPORTED)
# meta["scores"]: measured here (trained or re-scored on the test set), or claimed by an imported run.
MEASURED, CLAIMED = "measured", "claimed"
CLAIMED_NOTE = "claimed, not verified"
MAX_META_BYTES = MAX_HISTORY_BYTES = 5 * 1024 * 1024  # ours are a few kB; a bigger file is not a run
# meta.json scores: (lowest, highest) allowed; None is allowed too (not measured, or diverged).
SCORE_RANGES = {
    "test_accuracy": (0, 1), "best_val_accuracy": (0, 1), "test_loss": (0, math.inf),
    "training_seconds": (0, math.inf), "samples_per_s": (0, math.inf), "epochs_completed": (0, math.inf),
    "params": (0, math.inf),
}
TEXT_FIELDS = ("display_name", "stop_reason", "created_at", "arch", "precision")  # text, or null


# Why a run cannot be used or changed: English (the CLI, the logs), marked for the catalog and shown translated on
# a page (lib.i18n.translate_filled; a meta.json or history.csv `problem`, marked below, is translated too).
NO_BUNDLED = N_("The bundled default model is missing from models/default/.")
NOT_A_RUN_ID = N_("No run {run_id}: run ids look like 20261124-101500-a1b2c3 (see `python -m lib runs`).")
NO_SUCH_RUN = N_("No run {run_id} in {folder} (see `python -m lib runs`).")
BUNDLED_NOT_RENAMED = N_("The bundled default model is read-only; train your own run to name it.")
BUNDLED_NOT_DELETED = N_("The bundled default model cannot be deleted.")
EMPTY_NAME = N_("A run name cannot be empty.")
# A damaged folder's reason: "<run id>: ..." (a DamagedFolder's `problem` is the part after the lead).
META_MISSING = N_("{run}: meta.json is missing.")
META_TOO_LARGE = N_("{run}: meta.json is larger than a run's ({limit} MB).")
META_NOT_JSON = N_("{run}: meta.json is not valid JSON ({error}).")
META_PROBLEM = N_("{run}: meta.json: {problem}.")
MODEL_MISSING = N_("{run}: model.keras is missing or empty.")
HISTORY_MISSING = N_("{run}: history.csv is missing.")
HISTORY_PROBLEM = N_("{run}: history.csv {problem}.")


class RunNotFound(LookupError):
    """No run with that id; the message says what to do."""


class DamagedRun(RuntimeError):
    """A run folder that cannot be used; the message names the problem."""


class ReadOnlyRun(PermissionError):
    """The bundled model cannot be renamed or deleted."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    path: Path
    meta: dict
    read_only: bool = False

    @property
    def display_name(self) -> str:
        """One printable line (a hand-edited meta.json may hold newlines or terminal escapes)."""
        return clean_name(self.meta.get("display_name") or "") or self.run_id

    @property
    def model_path(self) -> Path:
        """The local .keras file. A run pulled from a remote store gets it here on first use: downloaded
        once into a cache keyed by its size and ETag (StoreError if the store fails), then local."""
        return backend.current().fetch(self.path / MODEL_FILE)

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    @property
    def dataset(self) -> dict:
        return self.meta.get("dataset", {})

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.get("class_names", [str(i) for i in range(10)]))

    @property
    def normalize(self) -> bool:
        return bool(self.config.get("normalize", True))

    @property
    def scores_verified(self) -> bool:
        """True when the scores were measured here; False for scores an imported run claims.

        An import made before runs carried `scores` (status "imported", or `imported_from` in
        meta.json) counts as claimed; a trained run without it as measured.
        """
        source = self.meta.get("scores")
        if source is not None:
            return source == MEASURED
        return self.meta.get("status") != IMPORTED and "imported_from" not in self.meta

    @property
    def label(self) -> str:
        """What a picker shows: name, accuracy (marked when only claimed) and a read-only mark."""
        accuracy = self.meta.get("test_accuracy")
        score = f" · {accuracy:.2%}" if isinstance(accuracy, (int, float)) else ""
        if score and not self.scores_verified:
            score += f" ({CLAIMED_NOTE})"
        mark = " (bundled, read-only)" if self.read_only else ""
        return f"{self.display_name}{score}{mark}"


@dataclass(frozen=True)
class DamagedFolder:
    run_id: str
    path: Path
    problem: str


def new_run_id() -> str:
    """Generated ids only: time-ordered, never taken from user text."""
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def library_versions() -> dict:
    import keras
    import numpy
    import tensorflow

    return {
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def build_meta(run_id: str, config, result, info) -> dict:
    """meta.json: the config, the scores and how the run was made."""
    val_accuracies = [row["val_accuracy"] for row in result.history if row.get("val_accuracy") is not None]
    return {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "display_name": clean_name(config.display_name),
        "created_at": timestamp(),
        "status": result.status,
        "stop_reason": result.stop_reason,
        "config": config.to_dict(),
        "dataset": dataset_meta(info),
        "arch": config.arch,
        "params": result.params,
        "epochs_completed": result.epochs_trained,
        "test_loss": result.test_loss,
        "test_accuracy": result.test_accuracy,
        "per_class_accuracy": result.per_class_accuracy,
        "confusion": result.confusion,
        "best_val_accuracy": max(val_accuracies) if val_accuracies else None,
        "training_seconds": round(result.seconds, 3),
        "samples_per_s": round(result.samples_per_s, 1),
        "precision": result.precision,
        "versions": library_versions(),
    }


def dataset_meta(info) -> dict:
    """What a run records about its dataset: enough for Draw, Predictions and Compare without loading it."""
    return {
        "name": info.name,
        "title": info.title,
        "class_names": list(info.class_names),
        "input_shape": list(info.input_shape),
        "kind": info.kind,
    }


def timestamp() -> str:
    """Now, UTC, to the millisecond: orders runs made in the same second."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def save_run(result, config, info, runs_dir: Path | None = None) -> RunInfo:
    """Persist a trained run atomically and return it."""

    def write(folder: Path, run_id: str) -> dict:
        result.model.save(folder / MODEL_FILE)
        (folder / HISTORY_FILE).write_text(history_csv(result.history), encoding="utf-8")
        return build_meta(run_id, config, result, info)

    return write_run(write, runs_dir)


def write_run(write, runs_dir: Path | None = None) -> RunInfo:
    """Make a new run atomically: `write(folder, run_id)` fills a hidden temporary folder with the
    model and history and returns the meta; meta.json goes in last and the folder is renamed into
    place. Always a new id; on any error nothing is left behind."""
    root = Path(runs_dir) if runs_dir else paths.runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    tmp = root / f".tmp-{run_id}"
    tmp.mkdir()
    try:
        meta = write(tmp, run_id)
        _write_json(tmp / META_FILE, meta)  # last: a folder with meta.json is complete
        final = root / run_id
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Then onto the store (commit object last); on failure the run stays here and StoreError says so.
    try:
        backend.current().push_run(final)
    except backend.StoreError as error:
        raise backend.StoreError(backend.NOT_STORED.format(problem=error)) from None
    return RunInfo(run_id, final, meta)


def history_csv(history: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in HISTORY_COLUMNS})
    return buffer.getvalue()


def list_runs(runs_dir: Path | None = None, *, include_bundled: bool = True) -> tuple[list[RunInfo], list[DamagedFolder]]:
    """All usable runs, newest first (bundled model last), and the damaged folders."""
    root = Path(runs_dir) if runs_dir else paths.runs_dir()
    backend.current().pull(root)  # runs saved by another server (or before a restart); a failure: store.problem
    runs, damaged = [], []
    if root.is_dir():
        for folder in sorted(root.iterdir(), reverse=True):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                runs.append(read_run(folder))
            except DamagedRun as problem:  # the folder is named once, by the DamagedFolder
                if not folder.exists():
                    continue  # deleted while listed (here, or on another server and then here)
                damaged.append(DamagedFolder(folder.name, folder, str(problem).removeprefix(f"{folder.name}: ")))
    runs.sort(key=lambda run: (str(run.meta.get("created_at") or ""), run.run_id), reverse=True)
    if include_bundled:
        bundled = bundled_run()
        if bundled is not None:
            runs.append(bundled)
    return runs, damaged


def bundled_run() -> RunInfo | None:
    folder = paths.BUNDLED_MODELS_DIR / BUNDLED_ID
    try:
        run = read_run(folder)
    except DamagedRun:
        return None
    return RunInfo(BUNDLED_ID, folder, run.meta, read_only=True)


def get_run(run_id: str, runs_dir: Path | None = None) -> RunInfo:
    if run_id == BUNDLED_ID:
        run = bundled_run()
        if run is None:
            raise RunNotFound(NO_BUNDLED)
        return run
    if not RUN_ID_PATTERN.match(run_id or ""):
        raise RunNotFound(NOT_A_RUN_ID.format(run_id=repr(run_id)))
    folder = (Path(runs_dir) if runs_dir else paths.runs_dir()) / run_id
    if not folder.is_dir():
        backend.current().pull(folder.parent, wait=True)
    if not folder.is_dir():
        raise RunNotFound(NO_SUCH_RUN.format(run_id=repr(run_id), folder=folder.parent))
    return read_run(folder)


def read_config(run: RunInfo):
    """The run's stored settings as a TrainConfig, to rebuild or rerun it; None where they cannot
    make one (a run saved by an older or foreign version)."""
    try:
        return TrainConfig.from_dict(run.config)
    except (TypeError, ValueError):
        return None


def load_model(run: RunInfo):
    """Load a run's Keras model in safe mode (no lambdas or custom code executed)."""
    return load_model_file(run.model_path)


def load_model_file(path: Path):
    """Check and load a .keras file in safe mode; DamagedRun says what is wrong in the user's words."""
    try:
        return modelfiles.load_keras_file(path)
    except modelfiles.UnusableModel as problem:
        raise DamagedRun(f"{Path(path).name}: {problem}") from None


def load_history(run: RunInfo):
    """history.csv as a DataFrame (epoch, loss, accuracy, val_loss, val_accuracy, ...)."""
    import pandas as pd

    return pd.read_csv(run.history_path)


def rename_run(run_id: str, new_name: str, runs_dir: Path | None = None) -> RunInfo:
    """Change the display name only; the id and folder stay."""
    run = get_run(run_id, runs_dir)
    if run.read_only:
        raise ReadOnlyRun(BUNDLED_NOT_RENAMED)
    name = clean_name(new_name)
    if not name:
        raise ValueError(EMPTY_NAME)
    meta = {**run.meta, "display_name": name}
    _write_json(run.path / META_FILE, meta)
    backend.current().push_files([run.path / META_FILE])
    return RunInfo(run.run_id, run.path, meta)


def delete_run(run_id: str, runs_dir: Path | None = None) -> None:
    """Remove a run: first renamed out of sight (atomic), then deleted."""
    run = get_run(run_id, runs_dir)
    if run.read_only:
        raise ReadOnlyRun(BUNDLED_NOT_DELETED)
    backend.current().remove(run.path, run=True)  # first: a failure leaves the run here, and retrying is safe
    trash = run.path.parent / f".trash-{run.run_id}"
    try:
        os.replace(run.path, trash)
    except FileNotFoundError:
        return  # a listing saw it gone from the store meanwhile and removed it here
    shutil.rmtree(trash, ignore_errors=True)


def clean_name(name: str) -> str:
    """A display name: printable, one line, at most MAX_NAME_LENGTH characters."""
    text = "".join(ch for ch in str(name) if ch.isprintable()).strip()
    return text[:MAX_NAME_LENGTH]


def summary(run: RunInfo) -> dict:
    """A run's facts as one flat row: what `python -m lib runs --json` prints and the app's tables show."""
    meta = run.meta
    return {
        "run_id": run.run_id,
        "display_name": run.display_name,
        "dataset": run.dataset.get("name"),
        "arch": meta.get("arch"),
        "params": meta.get("params"),
        "epochs_completed": meta.get("epochs_completed"),
        "test_accuracy": meta.get("test_accuracy"),
        "test_loss": meta.get("test_loss"),
        "training_seconds": meta.get("training_seconds"),
        "samples_per_s": meta.get("samples_per_s"),
        "status": meta.get("status"),
        "scores": MEASURED if run.scores_verified else CLAIMED,
        "created_at": meta.get("created_at"),
        "read_only": run.read_only,
    }


def best_marks(found: list[RunInfo]) -> list[bool]:
    """For each run, whether it has the best test accuracy among the runs of its own dataset.

    Only measured scores compete (a claimed 99.99% is never best) and datasets are never
    compared with each other; ties are all marked.
    """
    best: dict[str, float] = {}
    for run in found:
        accuracy = run.meta.get("test_accuracy")
        if run.scores_verified and accuracy is not None:
            name = run.dataset.get("name")
            best[name] = max(best.get(name, accuracy), accuracy)
    return [run.scores_verified and run.meta.get("test_accuracy") is not None
            and run.meta["test_accuracy"] == best[run.dataset.get("name")] for run in found]


def read_run(folder: Path) -> RunInfo:
    """The run in `folder`, checked to be complete and readable by every page; DamagedRun names the problem."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise DamagedRun(META_MISSING.format(run=folder.name))
    try:
        if meta_path.stat().st_size > MAX_META_BYTES:
            raise DamagedRun(META_TOO_LARGE.format(run=folder.name, limit=MAX_META_BYTES // 2**20))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise DamagedRun(META_NOT_JSON.format(run=folder.name, error=error)) from None
    problem = meta_problem(meta)
    if problem:
        raise DamagedRun(META_PROBLEM.format(run=folder.name, problem=problem))
    model = folder / MODEL_FILE
    on_store = int(backend.remote_files(folder).get(MODEL_FILE, {}).get("size") or 0)  # pulled, fetched on use
    if not on_store and (not model.is_file() or model.stat().st_size == 0):
        raise DamagedRun(MODEL_MISSING.format(run=folder.name))
    if not (folder / HISTORY_FILE).is_file():
        raise DamagedRun(HISTORY_MISSING.format(run=folder.name))
    problem = history_problem(folder / HISTORY_FILE)
    if problem:
        raise DamagedRun(HISTORY_PROBLEM.format(run=folder.name, problem=problem))
    return RunInfo(folder.name, folder, meta)


def meta_problem(meta) -> str | None:
    """What in a parsed meta.json the pages or the CLI could not use, in words; None when it is sound.

    Types and ranges, not only keys: "config" a dict of TrainConfig-typed fields, "dataset" a dict
    with a dataset name, class names and an image shape, scores finite numbers in range (or null),
    a known status, text where text is shown, per-class scores sized to the classes.
    """
    if not isinstance(meta, dict):
        return N_("it holds no object")
    for key in ("config", "dataset"):
        if not isinstance(meta.get(key), dict):
            return (N_("{key} is missing") if meta.get(key) is None else N_("{key} is not an object")).format(key=key)
    return (_config_problem(meta["config"]) or _dataset_problem(meta["dataset"]) or _fields_problem(meta)
            or _per_class_problem(meta, len(meta["dataset"].get("class_names") or range(10))))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# TrainConfig's field types (as annotated) -> (check of a stored value, what it must be, in words).
_CONFIG_TYPES = {
    "str": (lambda value: isinstance(value, str), N_("text")),
    "int": (_is_int, N_("a whole number")),
    "float": (_is_number, N_("a number")),
    "bool": (lambda value: isinstance(value, bool), N_("true or false")),
    "tuple": (lambda value: isinstance(value, list) and all(isinstance(layer, dict) for layer in value),
              N_("a list of layers")),
    "int | None": (lambda value: value is None or _is_int(value), N_("a whole number or null")),
}
# Built at import: a TrainConfig field of a new type fails loudly here, not in a page.
CONFIG_FIELD_CHECKS = {field.name: _CONFIG_TYPES[str(field.type)] for field in dataclasses.fields(TrainConfig)}


def _config_problem(config: dict) -> str | None:
    """Fields a run saved are typed as TrainConfig types them; missing ones (older runs) are fine."""
    for name, (check, words) in CONFIG_FIELD_CHECKS.items():
        if name in config:
            if not check(config[name]):
                return N_("config.{name} is not {wanted}").format(name=name, wanted=words)
    return None


def _dataset_problem(dataset: dict) -> str | None:
    name, names, shape = dataset.get("name"), dataset.get("class_names"), dataset.get("input_shape")
    if "name" in dataset and not (isinstance(name, str) and datasets.NAME_PATTERN.match(name)):
        return N_("dataset.name is not a dataset name")  # absent (early runs): listed, and pages say the data is missing
    if not isinstance(dataset.get("title", ""), (str, type(None))):
        return N_("dataset.title is not text")
    if "class_names" in dataset and not (isinstance(names, list) and 2 <= len(names) <= datasets.MAX_CLASSES
                                         and all(isinstance(item, str) for item in names)):
        return N_("dataset.class_names is not a list of 2 to {limit} names").format(limit=datasets.MAX_CLASSES)
    if shape is not None and not (
            isinstance(shape, list) and len(shape) == 3 and all(_is_int(side) for side in shape)
            and all(datasets.MIN_SIDE <= side <= datasets.MAX_SIDE for side in shape[:2]) and shape[2] in (1, 3)):
        return N_("dataset.input_shape is not an image shape [height, width, 1 or 3]")
    if dataset.get("kind") is not None and dataset["kind"] not in datasets.KINDS:
        return N_("dataset.kind is not one of {options}").format(options=", ".join(datasets.KINDS))
    return None


def _fields_problem(meta: dict) -> str | None:
    if meta.get("status") is not None and meta["status"] not in STATUSES:  # none: an early run, shown as "?"
        return N_("status is not one of {options}").format(options=", ".join(STATUSES))
    if meta.get("scores") is not None and meta["scores"] not in (MEASURED, CLAIMED):
        return N_("scores is not {measured} or {claimed}").format(measured=repr(MEASURED), claimed=repr(CLAIMED))
    if "imported_from" in meta and not isinstance(meta["imported_from"], dict):
        return N_("{key} is not an object").format(key="imported_from")
    for key in TEXT_FIELDS:
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return N_("{key} is not text").format(key=key)
    for key, (low, high) in SCORE_RANGES.items():
        value = meta.get(key)
        if value is not None and not (_is_number(value) and low <= value <= high):
            return (N_("{key} is not a number of {low} or more") if high == math.inf else
                    N_("{key} is not a number from {low} to {high}")).format(key=key, low=low, high=high)
    if meta.get("params") is not None and not _is_int(meta["params"]):
        return N_("{key} is not a whole number").format(key="params")
    return None


def _per_class_problem(meta: dict, num_classes: int) -> str | None:
    """Per-class accuracy and the confusion matrix: absent or empty, or one entry per class."""
    per_class, confusion = meta.get("per_class_accuracy"), meta.get("confusion")
    if per_class and not (isinstance(per_class, list) and len(per_class) == num_classes and all(
            value is None or (_is_number(value) and 0 <= value <= 1) for value in per_class)):
        return N_("per_class_accuracy is not {count} numbers from 0 to 1, one per class").format(count=num_classes)
    if confusion and not (isinstance(confusion, list) and len(confusion) == num_classes and all(
            isinstance(row, list) and len(row) == num_classes and all(type(v) is int for v in row) and min(row) >= 0
            for row in confusion)):  # `type(v) is int`: fast on 100 x 100, and true/false are not counts
        return N_("confusion is not a {count} x {count} table of counts").format(count=num_classes)
    return None


def history_problem(path: Path) -> str | None:
    """What keeps history.csv from being charted, in words (after "history.csv"); None when it reads."""
    try:
        if path.stat().st_size > MAX_HISTORY_BYTES:
            return N_("is larger than a run's ({limit} MB)").format(limit=MAX_HISTORY_BYTES // 2**20)
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except OSError:
        return N_("cannot be read")
    except (UnicodeDecodeError, csv.Error):
        return N_("is not readable text")
    header = rows[0] if rows else []
    if "epoch" not in header or not set(header) <= set(HISTORY_COLUMNS) or len(set(header)) < len(header):
        return N_("does not have the columns {columns}").format(columns=", ".join(HISTORY_COLUMNS))
    for row in rows[1:]:
        if len(row) > len(header):
            return N_("has a row longer than its header")
        for value in row:
            try:
                if value:
                    float(value)
            except ValueError:
                return N_("holds a value that is not a number")
    return None


def _write_json(path: Path, data: dict) -> None:
    """Strict JSON (NaN and infinity become null: other tools' parsers reject them), replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_finite(data), indent=2, allow_nan=False, default=_jsonable), encoding="utf-8")
    os.replace(tmp, path)


def _finite(value):
    """`value` with every non-finite float (a diverged loss, say) replaced by None, recursively."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
