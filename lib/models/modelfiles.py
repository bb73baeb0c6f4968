"""Keras model files from anywhere: checked before Keras reads them, loaded in safe mode.

A `.keras` file is a zip holding `config.json` (the architecture), `metadata.json`
and `model.weights.h5`. Before Keras sees one, its size, entries and config are
checked here, so a damaged download, an old HDF5 file, a zip bomb or a model with
custom Python code (a Lambda layer, a custom layer class) gets a message in the
user's words instead of Keras' internal text ("File not found: filepath=..." for
a file that exists). Loading itself is `keras.saving.load_model(safe_mode=True,
compile=False)`: nothing in the file is executed.

Safe mode alone has been bypassed before through built-in classes (any class a `keras.*` module
holds could be named). So the config is walked, every dict and list in it to a depth limit, and
each object it names must be on an allow-list: the built-in layers the app builds
(lib.models.architectures) and that a tutorial model uses, the built-in initializers,
regularizers, constraints, optimizers, learning-rate schedules, losses, metrics and dtype
policies, and the activation functions by name. Anything else is refused by name.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from lib.i18n import N_

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
# Refusals stay English here (the CLI, the logs, a child process's answer) and are marked for the catalog:
# the pages show them translated (lib.i18n.translate_filled).
UNSAFE_CLASSES = {"Lambda": N_("a Lambda layer"), "TFSMLayer": N_("a TFSMLayer (it loads a SavedModel from disk)")}
REBUILD_HINT = N_("rebuild it with built-in Keras layers only, save it with model.save('name.keras') and try again.")
MAX_CONFIG_DEPTH = 64  # the app's models nest 7-10 levels (a model inside a Functional one: 10); JSON bombs go deeper

# The Keras classes a config may name, by the module Keras writes for them. Layers: what
# lib.models.architectures builds, the wrappers lib.store.bundles adds (Reshape, Softmax, a model
# inside a model) and the built-ins of the usual MNIST tutorials.
ALLOWED_LAYERS = frozenset({
    "InputLayer", "Dense", "Conv1D", "Conv2D", "SeparableConv2D", "DepthwiseConv2D", "MaxPooling1D",
    "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "Flatten", "Reshape", "Permute", "ZeroPadding2D", "Cropping2D",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "BatchNormalization", "LayerNormalization",
    "Activation", "Softmax", "ReLU", "LeakyReLU", "PReLU", "ELU", "Rescaling", "Normalization", "Identity",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
})
ALLOWED_CLASSES: dict[str, frozenset] = {
    "keras": frozenset({"Sequential", "Functional", "Model", "DTypePolicy", "FloatDTypePolicy"}),
    "keras.models": frozenset({"Sequential", "Functional", "Model"}),
    "keras.src.models.functional": frozenset({"Functional"}),
    "keras.src.models.sequential": frozenset({"Sequential"}),
    "keras.src.models.model": frozenset({"Model"}),
    "keras.layers": ALLOWED_LAYERS,
    "keras.initializers": frozenset({
        "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal", "Zeros", "Ones",
        "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal", "VarianceScaling", "Orthogonal", "Identity",
    }),
    "keras.regularizers": frozenset({"L1", "L2", "L1L2", "OrthogonalRegularizer"}),
    "keras.constraints": frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"}),
    "keras.optimizers": frozenset({
        "Adam", "AdamW", "Adamax", "Nadam", "SGD", "RMSprop", "Adagrad", "Adadelta", "Ftrl", "Lion",
        "LossScaleOptimizer",
    }),
    "keras.optimizers.schedules": frozenset({
        "CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay",
        "PolynomialDecay",
    }),
    "keras.losses": frozenset({
        "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy", "MeanSquaredError",
        "CategoricalHinge", "KLDivergence",
    }),
    "keras.metrics": frozenset({
        "Accuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy", "BinaryAccuracy", "TopKCategoricalAccuracy",
        "SparseTopKCategoricalAccuracy", "Mean", "SparseCategoricalCrossentropy", "CategoricalCrossentropy",
        "AUC", "Precision", "Recall", "F1Score",
    }),
}
# Functions a config may name (activations, losses and metrics given by name, as Keras writes them).
ALLOWED_FUNCTIONS = frozenset({
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish", "hard_silu",
    "hard_swish", "mish", "sigmoid", "hard_sigmoid", "tanh", "softmax", "log_softmax", "softplus", "softsign",
    "exponential", "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
    "mean_squared_error", "mse", "kl_divergence", "accuracy", "acc", "sparse_categorical_accuracy",
    "categorical_accuracy", "binary_accuracy", "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "crossentropy", "loss",
})
FUNCTION_MODULES = frozenset({"builtins", "keras.activations", "keras.losses", "keras.metrics"})
FUNCTION_KEYS = frozenset({"activation", "recurrent_activation"})  # where a function is given by its name alone
# Keras' own markers in a config: the links between a Functional model's layers.
ALLOWED_MARKERS = frozenset({"__keras_tensor__"})


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
        raise UnusableModel(N_("There is no model file at {path}.").format(path=path))
    size = path.stat().st_size
    if size == 0:
        raise UnusableModel(N_("The model file is empty (0 bytes). Save the model again and use the new file."))
    if size > MAX_MODEL_BYTES:
        raise UnusableModel(
            N_("The model file is {size:.0f} MB; the limit is {limit} MB. Models that train in this app are far "
               "smaller.").format(size=size / 2**20, limit=MAX_MODEL_BYTES // 2**20)
        )
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(HDF5_SIGNATURE):
        raise UnusableModel(
            N_("This is an old-style HDF5 (.h5) Keras model. Load it in Keras and save it again in the current "
               "format with model.save('name.keras'), then use that file.")
        )
    if not head.startswith(ZIP_SIGNATURE):
        raise UnusableModel(
            N_("This is not a Keras model file. A .keras file is what model.save('name.keras') writes (a zip "
               "archive holding the architecture and the weights).")
        )
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            _check_entries(entries)
            names = {entry.filename for entry in entries}
            missing = [name for name in REQUIRED_ENTRIES if name not in names]
            if missing:
                raise UnusableModel(
                    N_("This zip file is not a Keras model: it has no {names}. Use the file that "
                       "model.save('name.keras') writes.").format(names=" and no ".join(missing))
                )
            config_text = archive.read("config.json")
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
        raise UnusableModel(damaged_message(error)) from None
    try:
        config = json.loads(config_text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UnusableModel(damaged_message(N_("config.json is not valid JSON"))) from None
    except RecursionError:
        raise UnusableModel(too_deep_message()) from None
    if not isinstance(config, dict):
        raise UnusableModel(damaged_message(N_("config.json holds no model")))
    problem = config_problem(config)
    if problem:
        raise UnusableModel(problem)
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
    if isinstance(error, MemoryError) or "OOM when allocating" in text or "ResourceExhausted" in type(error).__name__:
        return N_("This model needs more memory to load than the app may use: its layers are far bigger than the "
                  "models this app trains. Import a smaller model.")
    if "Lambda" in text or "safe_mode" in text:
        return custom_code_message(UNSAFE_CLASSES["Lambda"])
    if "custom_objects" in text or "register_keras_serializable" in text or "could not be deserialized" in text \
            or "Could not locate" in text:
        return custom_code_message(N_("a custom class"))
    if "File not found" in text or "Unable to synchronously open" in text or "truncated" in text.lower():
        return damaged_message(error)
    return N_("Keras could not rebuild the model from this file ({error}). It may have been saved by an "
              "incompatible Keras version; save it again with Keras 3 as .keras.").format(
        error=f"{type(error).__name__}: {text[:300]}")


def damaged_message(detail) -> str:
    return N_("The model file is damaged or incomplete ({detail}); it may have been cut off while downloading or "
              "copying. Download or save it again and use the new file.").format(detail=detail)


def custom_code_message(what: str) -> str:
    return N_("This model contains custom Python code ({what}), which the app will not run for safety; "
              "{hint}").format(what=what, hint=REBUILD_HINT)


def too_deep_message() -> str:
    return N_("The model's config.json is nested more than {limit} levels deep; no Keras model is. It was not "
              "opened.").format(limit=MAX_CONFIG_DEPTH)


def config_problem(config) -> str:
    """Why the app will not load a model with this Keras config ('' if it will): walks every dict and
    list in it, to MAX_CONFIG_DEPTH, and names the first object that is custom code or not on the
    allow-list."""
    stack = [(config, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            return too_deep_message()
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        problem = _object_problem(node)
        if problem:
            return problem
        for key, value in node.items():
            if key in FUNCTION_KEYS and isinstance(value, str) and value not in ALLOWED_FUNCTIONS:
                return not_allowed_message(N_("the function {name!r}").format(name=value))
            stack.append((value, depth + 1))
    return ""


def not_allowed_message(what: str) -> str:
    return N_("This model uses {what}, which is not among the built-in Keras layers and settings the app loads "
              "(Dense, Conv2D, pooling, Flatten, Reshape, Dropout, BatchNormalization, the usual activations, ...); "
              "{hint}").format(what=what, hint=REBUILD_HINT)


def _custom_code(node: dict) -> str:
    """One config object that needs the user's Python code, described; '' if it is built-in."""
    class_name = node.get("class_name")
    if not isinstance(class_name, str):
        return ""
    if class_name in UNSAFE_CLASSES:
        return UNSAFE_CLASSES[class_name]
    if class_name == "__lambda__":
        return N_("a Python lambda function")
    module = node.get("module")
    registered = node.get("registered_name")
    custom_module = isinstance(module, str) and module != "keras" and not module.startswith("keras.") \
        and not (class_name == "function" and module == "builtins")
    if custom_module or (isinstance(registered, str) and registered not in ("", class_name, "function")):
        return N_("a custom function {name!r}").format(name=node.get("config")) if class_name == "function" else \
            N_("a custom class {name!r}").format(name=class_name)
    return ""


def _object_problem(node: dict) -> str:
    """Why one config object (a dict with a class_name) may not be loaded; '' if it may."""
    if "class_name" not in node:
        return ""
    class_name, module = node.get("class_name"), node.get("module")
    if not isinstance(class_name, str):
        return damaged_message(N_("config.json names an object by something other than a name"))
    unsafe = _custom_code(node)
    if unsafe:
        return custom_code_message(unsafe)
    if class_name in ALLOWED_MARKERS:
        return ""
    if class_name == "function":
        name = node.get("config")
        if module in FUNCTION_MODULES and isinstance(name, str) and name in ALLOWED_FUNCTIONS:
            return ""
        return not_allowed_message(N_("the function {name!r}").format(name=name) if isinstance(name, str) else
                                   N_("a function"))
    if class_name in ALLOWED_CLASSES.get(module, ()):
        return ""
    return not_allowed_message(N_("the Keras class {name!r} from {module}").format(name=class_name, module=module)
                               if isinstance(module, str) else N_("the Keras class {name!r}").format(name=class_name))


def _check_entries(entries: list[zipfile.ZipInfo]) -> None:
    if len(entries) > MAX_ENTRIES:
        raise UnusableModel(N_("This zip file holds {count} files; a Keras model holds three. It is not a model.").format(
            count=len(entries)))
    total = 0
    for entry in entries:
        total += entry.file_size
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > RATIO_CHECK_FROM_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise UnusableModel(
                N_("The model file unpacks to far more than it holds ({name}: {ratio:.0f}x); it looks like a zip "
                   "bomb and was not opened.").format(name=entry.filename, ratio=ratio)
            )
        if entry.filename == "config.json" and entry.file_size > MAX_CONFIG_BYTES:
            raise UnusableModel(N_("The model's config.json is over 10 MB; that is no model architecture."))
    if total > MAX_UNCOMPRESSED_BYTES:
        raise UnusableModel(
            N_("The model file unpacks to {size:.1f} GB; the limit is {limit} GB.").format(
                size=total / 2**30, limit=MAX_UNCOMPRESSED_BYTES // 2**30)
        )
