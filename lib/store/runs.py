"""The run registry: one folder per trained model, written atomically.

A run is `<runs dir>/<run id>/` holding `model.keras`, `history.csv` and
`meta.json`. It is assembled in a hidden temporary folder and renamed into
place in one step, so a crash never leaves a half-written run. A damaged
folder is reported and skipped; it never breaks the listing. The bundled
default model in `models/default/` is listed as a read-only run.
"""

from __future__ import annotations

import csv
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

from lib.data import paths
from lib.models import modelfiles
from lib.training.config import TrainConfig

MODEL_FILE, HISTORY_FILE, META_FILE = "model.keras", "history.csv", "meta.json"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images")
BUNDLED_ID = "default"
SCHEMA_VERSION = 1
MAX_NAME_LENGTH = 80
RUN_ID_PATTERN = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


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
        return self.meta.get("display_name") or self.run_id

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

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
    def label(self) -> str:
        """What a picker shows: name, accuracy and a read-only mark."""
        accuracy = self.meta.get("test_accuracy")
        score = f" · {accuracy:.2%}" if isinstance(accuracy, (int, float)) else ""
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
    runs, damaged = [], []
    if root.is_dir():
        for folder in sorted(root.iterdir(), reverse=True):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                runs.append(read_run(folder))
            except DamagedRun as problem:
                damaged.append(DamagedFolder(folder.name, folder, str(problem)))
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
            raise RunNotFound("The bundled default model is missing from models/default/.")
        return run
    if not RUN_ID_PATTERN.match(run_id or ""):
        raise RunNotFound(f"No run {run_id!r}: run ids look like 20261124-101500-a1b2c3 (see `python -m lib runs`).")
    folder = (Path(runs_dir) if runs_dir else paths.runs_dir()) / run_id
    if not folder.is_dir():
        raise RunNotFound(f"No run {run_id!r} in {folder.parent} (see `python -m lib runs`).")
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
        raise ReadOnlyRun("The bundled default model is read-only; train your own run to name it.")
    name = clean_name(new_name)
    if not name:
        raise ValueError("A run name cannot be empty.")
    meta = {**run.meta, "display_name": name}
    _write_json(run.path / META_FILE, meta)
    return RunInfo(run.run_id, run.path, meta)


def delete_run(run_id: str, runs_dir: Path | None = None) -> None:
    """Remove a run: first renamed out of sight (atomic), then deleted."""
    run = get_run(run_id, runs_dir)
    if run.read_only:
        raise ReadOnlyRun("The bundled default model cannot be deleted.")
    trash = run.path.parent / f".trash-{run.run_id}"
    os.replace(run.path, trash)
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
        "created_at": meta.get("created_at"),
        "read_only": run.read_only,
    }


def read_run(folder: Path) -> RunInfo:
    """The run in `folder`, checked to be complete; DamagedRun names what is missing."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise DamagedRun(f"{folder.name}: meta.json is missing.")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedRun(f"{folder.name}: meta.json is not valid JSON ({error}).") from None
    if not isinstance(meta, dict) or "config" not in meta or "dataset" not in meta:
        raise DamagedRun(f"{folder.name}: meta.json lacks the config or dataset.")
    model = folder / MODEL_FILE
    if not model.is_file() or model.stat().st_size == 0:
        raise DamagedRun(f"{folder.name}: model.keras is missing or empty.")
    if not (folder / HISTORY_FILE).is_file():
        raise DamagedRun(f"{folder.name}: history.csv is missing.")
    return RunInfo(folder.name, folder, meta)


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
