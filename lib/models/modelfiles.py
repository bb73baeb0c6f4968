"""Keras model files from anywhere: checked before Keras reads them, loaded in safe mode.

A `.keras` file is a zip holding `config.json` (the architecture), `metadata.json`
and `model.weights.h5`. Before Keras sees one, its size, entries and config are
checked here, so a damaged download, an old HDF5 file, a zip bomb or a model with
custom Python code (a Lambda layer, a custom layer class) gets a message in the
user's words instead of Keras' internal text ("File not found: filepath=..." for
a file that exists). Loading itself is `keras.saving.load_model(safe_mode=True,
compile=False)`: nothing in the file is executed.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

MAX_MODEL_BYTES = 200 * 1024 * 1024  # the app's upload limit; our largest zoo model is ~10 MB
MAX_ENTRIES = 64
MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
MAX_CONFIG_BYTES = 10 * 1024 * 1024
# A compressed entry this much smaller than its content is a zip bomb (weights barely compress).
MAX_COMPRESSION_RATIO = 100
RATIO_CHECK_FROM_BYTES = 1024 * 1024  # small entries cannot be bombs on their own
REQUIRED_ENTRIES = ("config.json", "model.weights.h5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
# Built-in layers that read or run something outside the file.
UNSAFE_CLASSES = {"Lambda": "a Lambda layer", "TFSMLayer": "a TFSMLayer (it loads a SavedModel from disk)"}
REBUILD_HINT = "rebuild it with built-in Keras layers only, save it with model.save('name.keras') and try again."


class UnusableModel(ValueError):
    """A model file the app will not or cannot use; the message says what is wrong and what to do."""


def check_keras_file(path: Path) -> dict:
    """Check a `.keras` file without running Keras; return its parsed config.json.

    Raises UnusableModel naming the problem: missing, empty, too big, an old HDF5
    file, not a zip (or cut off), a zip with odd or oversized entries, no
    config.json, or custom Python code in the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise UnusableModel(f"There is no model file at {path}.")
    size = path.stat().st_size
    if size == 0:
        raise UnusableModel("The model file is empty (0 bytes). Save the model again and use the new file.")
    if size > MAX_MODEL_BYTES:
        raise UnusableModel(
            f"The model file is {size / 2**20:.0f} MB; the limit is {MAX_MODEL_BYTES // 2**20} MB. "
            "Models that train in this app are far smaller."
        )
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(HDF5_SIGNATURE):
        raise UnusableModel(
            "This is an old-style HDF5 (.h5) Keras model. Load it in Keras and save it again in the "
            "current format with model.save('name.keras'), then use that file."
        )
    if not head.startswith(ZIP_SIGNATURE):
        raise UnusableModel(
            "This is not a Keras model file. A .keras file is what model.save('name.keras') writes "
            "(a zip archive holding the architecture and the weights)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            _check_entries(entries)
            names = {entry.filename for entry in entries}
            missing = [name for name in REQUIRED_ENTRIES if name not in names]
            if missing:
                raise UnusableModel(
                    f"This zip file is not a Keras model: it has no {' and no '.join(missing)}. "
                    "Use the file that model.save('name.keras') writes."
                )
            config_text = archive.read("config.json")
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
        raise UnusableModel(damaged_message(error)) from None
    try:
        config = json.loads(config_text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UnusableModel(damaged_message("config.json is not valid JSON")) from None
    if not isinstance(config, dict):
        raise UnusableModel(damaged_message("config.json holds no model"))
    unsafe = find_custom_code(config)
    if unsafe:
        raise UnusableModel(custom_code_message(unsafe))
    return config


def load_keras_file(path: Path):
    """Check, then load a `.keras` file in Keras safe mode (compile=False); UnusableModel if it cannot be used."""
    path = Path(path)
    check_keras_file(path)
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - every load failure gets one message for the user
        raise UnusableModel(describe_load_error(error)) from None


def describe_load_error(error: Exception) -> str:
    """Keras' load errors in the user's words (the checks above catch most problems first)."""
    text = str(error)
    if "Lambda" in text or "safe_mode" in text:
        return custom_code_message("a Lambda layer")
    if "custom_objects" in text or "register_keras_serializable" in text or "could not be deserialized" in text \
            or "Could not locate" in text:
        return custom_code_message("a custom class")
    if "File not found" in text or "Unable to synchronously open" in text or "truncated" in text.lower():
        return damaged_message(error)
    return (
        f"Keras could not rebuild the model from this file ({type(error).__name__}: {text[:300]}). "
        "It may have been saved by an incompatible Keras version; save it again with Keras 3 as .keras."
    )


def damaged_message(detail) -> str:
    return (
        f"The model file is damaged or incomplete ({detail}); it may have been cut off while downloading "
        "or copying. Download or save it again and use the new file."
    )


def custom_code_message(what: str) -> str:
    return (
        f"This model contains custom Python code ({what}), which the app will not run for safety; {REBUILD_HINT}"
    )


def find_custom_code(config) -> str:
    """The first piece of custom or unsafe code a Keras config refers to, described; '' if none.

    Built-in Keras objects are serialized with a `module` in the keras package and no
    `registered_name`; anything else (a registered custom layer, a function from the
    user's module, a serialized lambda) would need the user's Python code to load.
    """
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        class_name = node.get("class_name")
        if isinstance(class_name, str):
            if class_name in UNSAFE_CLASSES:
                return UNSAFE_CLASSES[class_name]
            if class_name == "__lambda__":
                return "a Python lambda function"
            module = node.get("module")
            registered = node.get("registered_name")
            custom_module = isinstance(module, str) and module != "keras" and not module.startswith("keras.")
            if custom_module or (isinstance(registered, str) and registered not in ("", class_name)):
                return f"a custom class {class_name!r}"
        stack.extend(node.values())
    return ""


def _check_entries(entries: list[zipfile.ZipInfo]) -> None:
    if len(entries) > MAX_ENTRIES:
        raise UnusableModel(f"This zip file holds {len(entries)} files; a Keras model holds three. It is not a model.")
    total = 0
    for entry in entries:
        total += entry.file_size
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > RATIO_CHECK_FROM_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise UnusableModel(
                f"The model file unpacks to far more than it holds ({entry.filename}: {ratio:.0f}x); "
                "it looks like a zip bomb and was not opened."
            )
        if entry.filename == "config.json" and entry.file_size > MAX_CONFIG_BYTES:
            raise UnusableModel("The model's config.json is over 10 MB; that is no model architecture.")
    if total > MAX_UNCOMPRESSED_BYTES:
        raise UnusableModel(
            f"The model file unpacks to {total / 2**30:.1f} GB; the limit is {MAX_UNCOMPRESSED_BYTES // 2**30} GB."
        )
