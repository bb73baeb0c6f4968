"""Time to accuracy: seconds of training until the MNIST test accuracy first reaches a target.

Test accuracy is checked after every epoch; the checking is not counted. Graph
tracing and the input pipeline are counted, as a user waits for them too.
Used by `python bench/run.py --time-to-accuracy`.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

from lib.data import datasets
from lib.models import architectures
from lib.training import loop
from lib.training.config import TrainConfig

PROJECT = Path(__file__).resolve().parent.parent
TARGET = 0.99
PLAIN_BATCH = 32  # the tutorial's model.fit default
PLAIN_MAX_EPOCHS = 6  # the tutorial recipe passes 99.0% after about 4 epochs
TUTORIAL_ARCH = "cnn-tf-tutorial"
# (b) The tutorial CNN with the engine's best recipe for it: 99.1% after 2 epochs (98.7% after one).
ENGINE_TUTORIAL = dict(arch=TUTORIAL_ARCH, epochs=2, batch_size=128, learning_rate=3e-3, lr_schedule="one_cycle")
# (c) The fastest preset: the app's default recipe.
FASTEST = dict(arch="cnn-fast", epochs=1, batch_size=128, learning_rate=1e-2, lr_schedule="one_cycle")
# 99.5%: the fast CNN for 4 epochs with augmentation (99.47% seen; 99.45% without, 99.38% in 6 epochs
# without: it overfits), and the bundled model's recipe (README) for comparison.
HIGH_TARGET = 0.995
TO_HIGH = dict(arch="cnn-fast", epochs=4, batch_size=128, learning_rate=1e-2, lr_schedule="one_cycle", augment=True)
BUNDLED = dict(arch="cnn-best", epochs=15, batch_size=128, learning_rate=1e-3, lr_schedule="cosine", augment=True,
               validation_split=0.1)


def full_mnist(dataset) -> datasets.PreparedData:
    """All 60,000 training images (as the tutorials train) and the 10,000 test images."""
    return datasets.prepare(dataset, validation_split=0.0, seed=0)


def recipe(fields: dict, **changes) -> TrainConfig:
    """A bench config: the whole training set (validation_split 0) unless the recipe says otherwise."""
    return TrainConfig(**{"validation_split": 0.0, **fields, **changes})


def estimate_seconds(data, fields: dict, images: int) -> dict:
    """A recipe too long for the bench, estimated from its throughput on `images` images (2 epochs, the second timed)."""
    config = recipe(fields, epochs=2, validation_split=0.0)
    small = dataclasses.replace(data, x_train=data.x_train[:images], y_train=data.y_train[:images])
    result = loop.train(config, small)
    rate = result.history[-1]["images"] / result.history[-1]["seconds"]
    train_images = round(len(data.y_train) * (1 - fields.get("validation_split", 0.0)))
    return {"samples_per_s": round(rate, 1), "estimated_seconds": round(fields["epochs"] * train_images / rate, 1),
            "measured_on_images": images}


def plain_fit(data, arch: str, *, max_epochs: int = PLAIN_MAX_EPOCHS, target: float = TARGET, seed: int = 0) -> dict:
    """The tutorial recipe: float arrays, model.fit, batch 32, Adam 1e-3 constant, one epoch per call."""
    import keras

    keras.utils.set_random_seed(seed)
    model = architectures.build_model(architectures.get_architecture(arch).layer_list(),
                                      data.input_shape, data.num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_train = data.x_train.astype("float32") / 255.0
    x_test = data.x_test.astype("float32") / 255.0
    seconds, epochs = 0.0, []
    for _ in range(max_epochs):
        started = time.perf_counter()
        model.fit(x_train, data.y_train, batch_size=PLAIN_BATCH, epochs=1, verbose=0)
        seconds += time.perf_counter() - started
        _, accuracy = model.evaluate(x_test, data.y_test, batch_size=1024, verbose=0)
        epochs.append({"epoch": len(epochs) + 1, "seconds": round(seconds, 2), "test_accuracy": round(float(accuracy), 4)})
        if accuracy >= target:
            break
    return _row("plain model.fit, tutorial recipe", arch, epochs, target, batch_size=PLAIN_BATCH,
                schedule="constant", optimizer="adam", learning_rate=1e-3, planned_epochs=max_epochs)


def engine(data, config: TrainConfig, *, label: str, target: float = TARGET) -> dict:
    """`loop.train` as the app runs it, with the test set as its per-epoch validation set.

    Batch events carry the seconds since training began; the gap between an epoch's
    last batch and its epoch event is the validation pass, which is not counted.
    """
    checked = dataclasses.replace(data, x_val=data.x_test, y_val=data.y_test)
    timer = _EpochTimer()
    result = loop.train(config, checked, on_progress=timer)
    epochs = [
        {"epoch": row["epoch"], "seconds": round(seconds, 2), "test_accuracy": round(row["val_accuracy"], 4)}
        for row, seconds in zip(result.history, timer.train_seconds)
    ]
    return _row(label, config.arch, epochs, target, batch_size=config.batch_size, schedule=config.lr_schedule,
                optimizer=config.optimizer, learning_rate=config.learning_rate, planned_epochs=config.epochs,
                final_accuracy=result.test_accuracy, precision=result.precision)


class _EpochTimer:
    """Training seconds at each epoch's end, without the validation passes."""

    def __init__(self):
        self.last_batch = 0.0
        self.validation = 0.0
        self.train_seconds: list[float] = []

    def __call__(self, event):
        if event["kind"] == "batch":
            self.last_batch = event["elapsed"]
        elif event["kind"] == "epoch":
            self.train_seconds.append(self.last_batch - self.validation)
            self.validation += event["elapsed"] - self.last_batch


def _row(label, arch, epochs, target, *, final_accuracy=None, **recipe) -> dict:
    hit = next((row for row in epochs if row["test_accuracy"] >= target), None)
    return {
        "label": label,
        "arch": arch,
        **recipe,
        "epochs_run": len(epochs),
        "per_epoch": epochs,
        "seconds_to_target": hit["seconds"] if hit else None,
        "epochs_to_target": hit["epoch"] if hit else None,
        "train_seconds": epochs[-1]["seconds"] if epochs else None,
        "final_accuracy": round(final_accuracy if final_accuracy is not None else epochs[-1]["test_accuracy"], 4),
    }


def thread_rates(arch: str, images: int, plans: dict[str, dict | None]) -> dict[str, float]:
    """Training images/s of `arch`, each thread plan in a fresh process (threads are fixed at TF start).

    A plan is {"intra_op": n, "inter_op": m}; None leaves TensorFlow's own defaults.
    Run three times in alternation; the best of each is kept (one epoch of a few thousand images
    lasts about a second on a fast CPU: single runs differ by 20%).
    """
    rates: dict[str, float] = {}
    for _ in range(3):
        for name, plan in plans.items():
            script = _THREAD_CHILD.format(plan=json.dumps(plan), arch=arch, images=images)
            done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT,
                                  timeout=900, check=True)
            rate = float(done.stdout.strip().splitlines()[-1])
            rates[name] = max(rates.get(name, 0.0), rate)
    return rates


_THREAD_CHILD = """
import json
import tensorflow as tf
from lib.data import catalog, datasets
from lib.training import hardware, loop
plan = json.loads({plan!r})
if plan is None:
    hardware.configure_threads = lambda *args: {{}}  # TensorFlow's defaults
else:
    tf.config.threading.set_intra_op_parallelism_threads(plan["intra_op"])
    tf.config.threading.set_inter_op_parallelism_threads(plan["inter_op"])
    hardware.configure_threads = lambda *args: plan
data = datasets.prepare(catalog.load_dataset("mnist"), validation_split=0.0, limit={images}, seed=5)
config = TrainConfig(arch={arch!r}, epochs=2, batch_size=128, validation_split=0.0)
result = loop.train(config, data)
print(result.history[-1]["images"] / result.history[-1]["seconds"])
"""
