"""Time to accuracy: seconds of training until the MNIST test accuracy first reaches a target.

Test accuracy is checked after every epoch; the checking is not counted. Graph
tracing and the input pipeline are counted, as a user waits for them too.
Used by `python bench/run.py --time-to-accuracy`.
"""

from __future__ import annotations

import dataclasses
import time

from lib import architectures, datasets, training
from lib.training import TrainConfig

TARGET = 0.99
PLAIN_BATCH = 32  # the tutorial's model.fit default
PLAIN_MAX_EPOCHS = 6  # the tutorial recipe passes 99.0% after about 4 epochs


def full_mnist(dataset) -> datasets.PreparedData:
    """All 60,000 training images (as the tutorials train) and the 10,000 test images."""
    return datasets.prepare(dataset, validation_split=0.0, seed=0)


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
    """`training.train` as the app runs it, with the test set as its per-epoch validation set.

    Batch events carry the seconds since training began; the gap between an epoch's
    last batch and its epoch event is the validation pass, which is not counted.
    """
    checked = dataclasses.replace(data, x_val=data.x_test, y_val=data.y_test)
    timer = _EpochTimer()
    result = training.train(config, checked, on_progress=timer)
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
