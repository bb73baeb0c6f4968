"""Show as code: any run configuration as a self-contained, readable Keras 3 script.

`script_for(config)` returns the text of a script that reproduces the run outside
the app, the way the tutorials are written: load the data with
`keras.datasets.<name>.load_data()` (or the `.npz` in `$MNIST_STUDIO_DATA_DIR`),
hold out the same seeded, stratified validation split as the app, build the same
layers, compile with the same optimizer and schedule, fit with the same
callbacks, evaluate on the test set and save. Its last line is
`RESULT {"name": ..., "params": ..., "test_accuracy": ..., ...}` (JSON) for scripts to read.
Plain Python: TensorFlow is only imported by the generated script.

Names, datasets and every other value are visitors' text: each enters the script only as a
literal built from its value with repr() (`_literal`), never pasted between quotes, and no
comment holds any of it, so a run name is data however many quotes, backslashes, newlines
or bidi marks it carries.
"""

from __future__ import annotations

import math
import numbers
import re

from lib.data import catalog, datasets
from lib.models import architectures
from lib.training.config import TrainConfig
from lib.training.loop import CLEAN_SHARE

RESULT_PREFIX = "RESULT "
BUILTIN_LOADERS = ("mnist", "fashion_mnist")
# Keras' own defaults, left out of the generated layer calls to keep them short.
_KERAS_DEFAULTS = {"strides": (1, None), "padding": ("valid",), "activation": (None,)}
_POSITIONAL = {
    "Conv2D": ("filters", "kernel_size"), "Dense": ("units",), "MaxPooling2D": ("pool_size",),
    "AveragePooling2D": ("pool_size",), "Dropout": ("rate",), "Activation": ("activation",),
}


def layer_code(spec: dict) -> str:
    """One layer as Keras code, e.g. `layers.Conv2D(32, 3, activation="relu")`."""
    spec = architectures.normalize_layers([spec])[0]
    positional = _POSITIONAL.get(spec["type"], ())
    args = [_layer_value(spec[name]) for name in positional]
    for name, value in spec.items():
        if name == "type" or name in positional or value in _KERAS_DEFAULTS.get(name, ()):
            continue
        args.append(f"{name}={_layer_value(value)}")
    return f"layers.{spec['type']}({', '.join(args)})"  # type and names: LAYER_TYPES' own keys, checked above


def _layer_value(value) -> str:
    if isinstance(value, str) and value == architectures.NUM_CLASSES_TOKEN:
        return "NUM_CLASSES"  # the script's own constant, as the tutorials write the output layer
    return _literal(value, "A layer setting")


def _literal(value, what: str) -> str:
    """`value` as Python source that evaluates to it: the built-in type's repr, never a subclass's own.

    Strings come out double-quoted like the tutorials' code, with repr()'s escapes: quotes,
    backslashes, newlines, control characters and bidi marks cannot end the literal or hide code.
    """
    if value is None or isinstance(value, bool):  # bool cannot be subclassed: its repr is its value
        return repr(value)
    if isinstance(value, numbers.Integral):
        return repr(int(value))  # int() and float() give the built-in types whatever the subclass
    if isinstance(value, numbers.Real):
        number = float(value)
        return repr(number) if math.isfinite(number) else f'float("{number!r}")'  # inf and nan are not names
    if isinstance(value, str):
        return f'"{_escaped(value)}"'
    raise ValueError(f"{what} cannot be written as code: {type(value).__name__} is not a number or text.")


def _escaped(text: str) -> str:
    """`text` as the inside of a double-quoted literal: str's own repr, re-quoted with double quotes."""
    quoted = str.__repr__(text)  # the value's characters, not a subclass's idea of its repr
    inside = quoted[1:-1]
    if quoted[0] == "'":  # repr escaped ' and left " as is: the other way round for double quotes
        inside = inside.replace("\\'", "'").replace('"', '\\"')
    return inside


def script_name(config: TrainConfig) -> str:
    """A file name for the script, e.g. `mlp_512_raw.py`: letters, digits and _ only, whatever the name."""
    for text in (config.name, f"{config.arch}_{config.dataset}"):
        stem = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") if isinstance(text, str) else ""
        if stem:
            return stem + ".py"
    return "model.py"


def _num_classes(config: TrainConfig) -> int | None:
    """The dataset's class count when this machine knows it (None: the script counts labels)."""
    if config.dataset in datasets.BUILTINS:
        return datasets.BUILTINS[config.dataset].num_classes
    try:
        return catalog.get_info(config.dataset).num_classes
    except (ValueError, datasets.InvalidDataset):
        return None


def script_for(config: TrainConfig) -> str:
    """A runnable Keras script reproducing `config` (zoo, preset, lesson or custom layers).

    Raises ValueError (InvalidArchitecture for the layers) when a setting cannot become a literal.
    """
    _check_kinds(config)
    layers = config.layer_specs
    architectures.normalize_layers(layers)  # a broken spec raises here, not in the learner's terminal
    num_classes = _num_classes(config)
    model_lines = "\n".join(f"            {layer_code(spec)}," for spec in layers)
    settings = {field: _literal(getattr(config, field), field) for field in _KINDS}
    parts = [
        _HEADER.format(title=_escaped(config.display_name), file=script_name(config),
                       arch=_escaped(config.arch), dataset=_escaped(config.dataset)),
        _SETTINGS.format(
            run_name=_literal(config.display_name, "name"), **settings,
            num_classes="None  # counted from the labels" if num_classes is None else _literal(num_classes, "classes"),
            precision_note=_precision_note(config),
        ),
        _DATA,
        _AUGMENT.format(clean_share=CLEAN_SHARE) if config.augment else "",
        _MODEL.format(model_lines=model_lines, model_name=_literal(re.sub(r"\W", "_", config.arch), "arch")),
        _TARGET if config.target_metric else "",
        _MAIN_AUGMENT if config.augment else _MAIN,
    ]
    return "".join(parts)


# What each setting must hold to become a literal (TrainConfig checks ranges, not kinds: a config read
# back from an imported run's meta.json may hold any JSON value).
_KINDS = {
    "dataset": str, "epochs": int, "batch_size": int, "optimizer": str, "learning_rate": float,
    "lr_schedule": str, "validation_split": float, "normalize": bool, "label_encoding": str, "seed": int,
    "limit": int, "target_metric": str, "target_value": float, "early_stopping_patience": int,
}
_KIND_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "on or off (True or False)"}


def _check_kinds(config: TrainConfig) -> None:
    """ValueError naming the first setting whose value is not of its kind (the name and arch included)."""
    for field, kind in {**_KINDS, "name": str, "arch": str, "augment": bool, "precision": str}.items():
        value = getattr(config, field)
        if field == "limit" and value is None:
            continue
        fits = {
            str: isinstance(value, str),
            bool: isinstance(value, bool),
            int: isinstance(value, numbers.Integral) and not isinstance(value, bool),
            float: isinstance(value, numbers.Real) and not isinstance(value, bool),
        }[kind]
        if not fits:
            label = field.replace("_", " ").capitalize()
            raise ValueError(f"{label} cannot be written as code: it must be {_KIND_WORDS[kind]}.")


def _precision_note(config: TrainConfig) -> str:
    if config.precision == "float32":
        return ""
    return ("# The app may train in mixed bfloat16 where the CPU runs it natively (precision "
            f"{str.__repr__(config.precision)}); this script trains in float32, as the tutorials do.\n")


_HEADER = '''"""{title}: an MNIST Studio run as a plain Keras 3 script.

Architecture {arch!s} on {dataset!s}, with the same data split, layers, optimizer,
learning-rate schedule and callbacks as the app. Try it quickly with
    python {file} --epochs 1 --limit 2000
Data: $MNIST_STUDIO_DATA_DIR/<dataset>.npz when that is set, else keras.datasets.
The last line printed is RESULT {{json}} with the parameter count and test scores.
"""

import argparse
import csv
import json
import math
import os

import keras
import numpy as np
from keras import layers

'''

_SETTINGS = '''# ---- the run's settings (TrainConfig in the app) ----
RUN_NAME = {run_name}
DATASET = {dataset}
NUM_CLASSES = {num_classes}
EPOCHS = {epochs}
BATCH_SIZE = {batch_size}
OPTIMIZER = {optimizer}
LEARNING_RATE = {learning_rate}
LR_SCHEDULE = {lr_schedule}  # "constant"; "cosine": decay to 1% over the run; "one_cycle": warm up, then decay
VALIDATION_SPLIT = {validation_split}  # held out of the training set; the test set is only for the final score
NORMALIZE = {normalize}  # pixels / 255
LABEL_ENCODING = {label_encoding}  # "sparse" integer labels, or "one_hot"
SEED = {seed}
LIMIT = {limit}  # train on a stratified sample of this many images (None: all)
TARGET_METRIC = {target_metric}  # stop once this metric reaches TARGET_VALUE ("" = off)
TARGET_VALUE = {target_value}
EARLY_STOPPING_PATIENCE = {early_stopping_patience}  # epochs without val_loss improvement (0 = off)
{precision_note}
'''

_DATA = '''
def load_data(name):
    """(x_train, y_train), (x_test, y_test) as uint8 images and integer labels."""
    data_dir = os.environ.get("MNIST_STUDIO_DATA_DIR")
    path = os.path.join(data_dir, f"{name}.npz") if data_dir else None
    if path and os.path.isfile(path):
        with np.load(path, allow_pickle=False) as npz:
            return (npz["x_train"], npz["y_train"]), (npz["x_test"], npz["y_test"])
    if name in ("mnist", "fashion_mnist"):
        return getattr(keras.datasets, name).load_data()
    raise SystemExit(f"Put {name}.npz into a folder and set MNIST_STUDIO_DATA_DIR to that folder.")


def stratified_take(y, count, rng):
    """`count` indices with every class in proportion (the app's sampling, same seed, same picks)."""
    order = rng.permutation(len(y))
    shuffled = y[order]
    classes, totals = np.unique(shuffled, return_counts=True)
    quotas = np.floor(totals / len(y) * count).astype(int)
    fractions = totals / len(y) * count - quotas
    quotas[np.argsort(-fractions)[: count - quotas.sum()]] += 1
    picked = [order[shuffled == c][:q] for c, q in zip(classes, quotas)]
    return np.sort(np.concatenate(picked))


def split(x, y, limit, validation_split, seed):
    """Optionally sample `limit` training images, then hold out a stratified validation split."""
    rng = np.random.default_rng(seed)
    if limit is not None and limit < len(y):
        keep = stratified_take(y, limit, rng)
        x, y = x[keep], y[keep]
    val_count = int(round(len(y) * validation_split))
    if validation_split > 0 and val_count == 0:
        val_count = 1
    val_idx = stratified_take(y, val_count, rng) if val_count else np.array([], dtype=np.int64)
    is_train = np.ones(len(y), dtype=bool)
    is_train[val_idx] = False
    return (x[is_train], y[is_train]), (x[val_idx], y[val_idx])


def with_channel_axis(x):
    return x[..., np.newaxis] if x.ndim == 3 else x  # (N, 28, 28) -> (N, 28, 28, 1)


def to_model_input(x):
    x = x.astype("float32")
    return x / 255.0 if NORMALIZE else x


def to_targets(y, num_classes):
    return keras.utils.to_categorical(y, num_classes) if LABEL_ENCODING == "one_hot" else y

'''

_AUGMENT = '''
def make_augmenter(seed):
    """The app's augmentation: mild rotation, zoom, shifts and stroke width, on 0-255 images."""
    import tensorflow as tf

    geometric = keras.Sequential([
        layers.RandomRotation(0.03, fill_mode="constant", seed=seed),  # about +-11 degrees
        layers.RandomZoom((-0.1, 0.1), fill_mode="constant", seed=seed + 1),
        layers.RandomTranslation(0.07, 0.07, fill_mode="constant", seed=seed + 2),  # +-2 px
    ])

    def augment(images):
        count = tf.shape(images)[0]
        moved = geometric(images, training=True)
        thicker = tf.nn.max_pool2d(moved, ksize=2, strides=1, padding="SAME")  # grey dilation
        thinner = -tf.nn.max_pool2d(-moved, ksize=2, strides=1, padding="SAME")  # grey erosion
        pen = tf.random.uniform((count, 1, 1, 1), 0, 6, dtype=tf.int32)
        moved = tf.where(pen == 0, thicker, tf.where(pen == 1, thinner, moved))
        keep_clean = tf.random.uniform((count, 1, 1, 1)) < {clean_share}  # this share stays as it is
        return tf.where(keep_clean, images, moved)

    return augment


def augmented_batches(x, y, num_classes, seed):
    """Shuffled batches of uint8 images, augmented, then scaled: as the app's input pipeline."""
    import tensorflow as tf

    augment = make_augmenter(seed)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed).batch(BATCH_SIZE)

    def prepare(images, labels):
        images = augment(tf.cast(images, tf.float32))
        images = images / 255.0 if NORMALIZE else images
        labels = tf.one_hot(labels, num_classes) if LABEL_ENCODING == "one_hot" else labels
        return images, labels

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

'''

_MODEL = '''
def build_model(input_shape, num_classes):
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
{model_lines}
        ],
        name={model_name},
    )


def make_optimizer(total_steps):
    learning_rate = LEARNING_RATE
    if LR_SCHEDULE == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, total_steps, alpha=0.01)
    elif LR_SCHEDULE == "one_cycle":  # warm up from 1/25 of the rate over 20% of the steps, then cosine to 1%
        warmup_steps = max(1, round(total_steps * 0.2))
        learning_rate = keras.optimizers.schedules.CosineDecay(
            LEARNING_RATE / 25, max(1, total_steps - warmup_steps), alpha=0.01,
            warmup_target=LEARNING_RATE, warmup_steps=warmup_steps)
    optimizers = {{"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}}
    return optimizers[OPTIMIZER](learning_rate=learning_rate)

'''

_TARGET = '''
class TargetReached(keras.callbacks.Callback):
    """Stop once TARGET_METRIC reaches TARGET_VALUE at the end of an epoch (the callback lesson)."""

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(TARGET_METRIC)
        if current is None:
            return
        hit = current <= TARGET_VALUE if TARGET_METRIC.endswith("loss") else current >= TARGET_VALUE
        if hit:
            print(f"Target reached at epoch {epoch + 1}: {TARGET_METRIC} {current:.4f}")
            self.model.stop_training = True

'''

_MAIN_HEAD = '''
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--limit", type=int, default=LIMIT, help="train on a stratified sample of N images")
    parser.add_argument("--output", default=os.path.splitext(os.path.basename(__file__))[0] + ".keras",
                        help="where to save the model (the history goes next to it as CSV)")
    args = parser.parse_args()
    keras.utils.set_random_seed(SEED)

    (x_train, y_train), (x_test, y_test) = load_data(DATASET)
    x_train, x_test = with_channel_axis(x_train), with_channel_axis(x_test)
    y_train, y_test = y_train.astype("int64"), y_test.astype("int64")
    num_classes = NUM_CLASSES or int(max(y_train.max(), y_test.max())) + 1
    (x_train, y_train), (x_val, y_val) = split(x_train, y_train, args.limit, VALIDATION_SPLIT, SEED)
    print(f"{{len(y_train):,}} training, {{len(y_val):,}} validation, {{len(y_test):,}} test images")

    model = build_model(x_train.shape[1:], num_classes)
    model.summary()
    steps_per_epoch = math.ceil(len(y_train) / BATCH_SIZE)
    model.compile(
        optimizer=make_optimizer(args.epochs * steps_per_epoch),
        loss="sparse_categorical_crossentropy" if LABEL_ENCODING == "sparse" else "categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [keras.callbacks.TerminateOnNaN()]  # the app stops a run whose loss explodes
    if TARGET_METRIC:
        callbacks.append(TargetReached())
    if EARLY_STOPPING_PATIENCE:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=EARLY_STOPPING_PATIENCE, restore_best_weights=True))
    validation = (to_model_input(x_val), to_targets(y_val, num_classes)) if len(y_val) else None
'''

_FIT_PLAIN = '''    history = model.fit(
        to_model_input(x_train), to_targets(y_train, num_classes),
        batch_size=BATCH_SIZE, epochs=args.epochs, shuffle=True,
        validation_data=validation, callbacks=callbacks, verbose=2,
    )
'''

_FIT_AUGMENT = '''    history = model.fit(
        augmented_batches(x_train, y_train, num_classes, SEED), epochs=args.epochs,
        validation_data=validation, callbacks=callbacks, verbose=2,
    )
'''

_MAIN_TAIL = '''
    test_loss, test_accuracy = model.evaluate(to_model_input(x_test), to_targets(y_test, num_classes), verbose=0)
    model.save(args.output)
    history_path = os.path.splitext(args.output)[0] + "-history.csv"
    with open(history_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *history.history])
        for epoch, values in enumerate(zip(*history.history.values()), start=1):
            writer.writerow([epoch, *values])
    print(f"Saved {{args.output}} and {{history_path}}")
    print("RESULT " + json.dumps({{
        "name": RUN_NAME, "params": model.count_params(), "test_accuracy": round(float(test_accuracy), 4),
        "test_loss": round(float(test_loss), 4), "epochs": len(history.epoch),
    }}))


if __name__ == "__main__":
    main()
'''

_MAIN = (_MAIN_HEAD + _FIT_PLAIN + _MAIN_TAIL).replace("{{", "{").replace("}}", "}")
_MAIN_AUGMENT = (_MAIN_HEAD + _FIT_AUGMENT + _MAIN_TAIL).replace("{{", "{").replace("}}", "}")
