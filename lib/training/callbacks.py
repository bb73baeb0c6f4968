"""Keras callbacks of the training loop: progress reports and stop-at-target.

The one lib module that imports Keras at the top: `lib.training.loop` imports it only
when a training starts, so pages that never train stay free of TensorFlow.
"""

from __future__ import annotations

import math
import time

import keras

from lib.training import reasons

# A healthy classifier's crossentropy starts near ln(classes) (about 100 on raw pixels);
# a running loss beyond this has diverged and would end in NaN or garbage weights.
DIVERGED_LOSS = 1e6
# An epoch at about chance accuracy whose mean loss ends this many times above the start, or
# whose running loss peaked this many times above it, has diverged too (SGD at learning rate
# 10: a start of 2.3, a peak of 2,000 in the first batches, then 10% accuracy).
DIVERGED_RATIO = 2.0
DIVERGED_PEAK_RATIO = 10.0
CHANCE_MARGIN = 2.0  # "about chance": accuracy below twice 1 / number of classes


class ProgressReporter(keras.callbacks.Callback):
    """Turns Keras batch/epoch ends into plain `on_progress(dict)` calls; honours stop requests."""

    def __init__(self, on_progress, should_stop, *, epochs, steps, batch_size, samples, num_classes=10,
                 expected_start=None):
        super().__init__()
        self.on_progress, self.should_stop = on_progress, should_stop
        self.epochs, self.steps, self.batch_size, self.samples = epochs, steps, batch_size, samples
        self.num_classes = num_classes
        self.epoch_rows: list[dict] = []
        self.samples_seen = 0
        self.train_seconds = 0.0
        self.stop_requested = False
        self.nan_seen = False  # the weights are garbage: not worth scoring
        # Where the loss should start: ln(classes) on normalized pixels; else the first loss seen
        # (raw 0-255 pixels start far higher, and that is not divergence).
        self.start_loss = expected_start
        self.peak_loss = 0.0
        self.diverged = ""  # what was seen, when training diverged

    def _stop_diverged(self, what: str) -> None:
        self.diverged = self.diverged or what
        self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self._emit({"kind": "start", "epochs": self.epochs, "steps": self.steps})

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_started = time.perf_counter()
        self.epoch_samples = 0

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        step = batch + 1
        seen = min(step * self.batch_size, self.samples)
        self.samples_seen += seen - self.epoch_samples
        self.epoch_samples = seen
        loss = float(logs.get("loss", math.nan))
        if math.isfinite(loss):
            self.start_loss = self.start_loss or loss
            self.peak_loss = max(self.peak_loss, loss)
        if not math.isfinite(loss) or loss > DIVERGED_LOSS:
            self.nan_seen = True
            self._stop_diverged(reasons.LOSS_BECAME.format(loss=f"{loss:.3g}", epoch=self.epoch + 1) if math.isfinite(loss)
                                else reasons.LOSS_NOT_A_NUMBER.format(loss=loss, epoch=self.epoch + 1))
        elapsed_epoch = time.perf_counter() - self.epoch_started
        rate = self.epoch_samples / max(elapsed_epoch, 1e-9)
        remaining = (self.epochs - self.epoch - 1) * self.samples + (self.samples - seen)
        self._emit(
            {
                "kind": "batch",
                "epoch": self.epoch + 1,
                "epochs": self.epochs,
                "step": step,
                "steps": self.steps,
                "epoch_float": self.epoch + step / self.steps,
                "loss": loss,
                "accuracy": float(logs.get("accuracy", math.nan)),
                "samples_per_s": rate,
                "elapsed": time.perf_counter() - self.started,
                "eta": remaining / rate if rate > 0 else None,
            }
        )
        if self.should_stop is not None and self.should_stop():
            self.stop_requested = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self.epoch_started
        self.train_seconds += seconds
        partial = self.epoch_samples < self.samples
        row = {
            # A stopped epoch is not a whole one: Compare and the charts must not count it as such.
            "epoch": round(epoch + self.epoch_samples / self.samples, 3) if partial else epoch + 1,
            "loss": float_or_none(logs.get("loss")),
            "accuracy": float_or_none(logs.get("accuracy")),
            "val_loss": float_or_none(logs.get("val_loss")),
            "val_accuracy": float_or_none(logs.get("val_accuracy")),
            "seconds": seconds,
            "images": self.epoch_samples,
        }
        self.epoch_rows.append(row)
        self._check_divergence(epoch, row)
        elapsed = time.perf_counter() - self.started
        done = self.samples_seen / max(self.epochs * self.samples, 1)
        self._emit(
            {
                "kind": "epoch",
                **row,
                "epochs": self.epochs,
                "epoch_float": float(row["epoch"]),
                "samples_per_s": self.epoch_samples / max(seconds, 1e-9),
                "elapsed": elapsed,
                "eta": elapsed * (1 - done) / done if done > 0 else None,
            }
        )

    def _check_divergence(self, epoch, row):
        """At about chance accuracy after blowing up, or ending far above the start: steps too large."""
        loss, accuracy, start = row["loss"], row["accuracy"], self.start_loss
        if loss is None or accuracy is None or not start or accuracy >= CHANCE_MARGIN / self.num_classes:
            return
        values = {"accuracy": f"{accuracy:.0%}", "chance": f"{1 / self.num_classes:.0%}", "start": f"{start:.3g}",
                  "epoch": epoch + 1}
        if loss > DIVERGED_RATIO * start:
            self._stop_diverged(reasons.LOSS_ROSE.format(loss=f"{loss:.3g}", **values))
        elif self.peak_loss > DIVERGED_PEAK_RATIO * start:
            self._stop_diverged(reasons.LOSS_SHOT_UP.format(loss=f"{self.peak_loss:.3g}", **values))

    def _emit(self, event):
        if self.on_progress is not None:
            self.on_progress(event)


class TargetReached(keras.callbacks.Callback):
    """Stops training once a metric reaches a target (the tutorials' callback lesson)."""

    def __init__(self, metric, value):
        super().__init__()
        self.metric, self.value = metric, value
        self.reached = False
        self.reason = ""

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.metric)
        if current is None:
            return
        lower_is_better = self.metric.endswith("loss")
        hit = current <= self.value if lower_is_better else current >= self.value
        if hit:
            self.reached = True
            sign = "≤" if lower_is_better else "≥"
            self.reason = reasons.TARGET_REACHED.format(epoch=epoch + 1, metric=self.metric, value=f"{float(current):.4f}",
                                                      sign=sign, target=self.value)
            self.model.stop_training = True


def float_or_none(value):
    """A finite float, or None (NaN and inf are not numbers a table or JSON can hold)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
