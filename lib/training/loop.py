"""Training: one frozen config in, a trained model and its measurements out.

`train(config, data, on_progress, should_stop)` runs Keras `fit` on uint8
images scaled per batch, reports every batch and epoch through a plain
callable, stops cleanly when asked (keeping the weights so far), and scores the
result on the test set. TensorFlow is imported only when training starts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from lib.i18n import N_
from lib.models import architectures, inference
from lib.training import hardware, reasons
from lib.training.config import TrainConfig, default_learning_rate

# Shuffle the whole training set each epoch; uint8 keeps even 60k images at 47 MB.
SHUFFLE_BUFFER = 60_000
# Keras runs this many batches per call into the compiled step: on a small CPU the
# per-call overhead (~10 ms) is as large as a batch's math. Progress, stop requests
# and the charts then move in groups of up to this many batches.
MAX_STEPS_PER_EXECUTION = 8
CLEAN_SHARE = 0.25  # with augmentation on, this share of each batch stays as it is
# one_cycle: climb linearly from 1/25 of the rate to the rate over this share of the steps,
# then glide down on a cosine to 1% of it: large steps early, fine ones at the end.
WARMUP_SHARE = 0.2
WARMUP_START = 1 / 25
FINAL_SHARE = 0.01  # cosine and one_cycle end at this share of the rate


ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]


@dataclass
class TrainResult:
    model: object  # keras.Model
    status: str  # finished / stopped / diverged
    stop_reason: str
    history: list[dict]  # one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, seconds
    # (a stopped run's last, partial epoch is numbered by how far it got: 3.4 = 40% into epoch 4)
    seconds: float
    samples_per_s: float
    precision: str  # the dtype policy actually used
    params: int
    test_loss: float | None = None
    test_accuracy: float | None = None
    per_class_accuracy: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    @property
    def epochs_trained(self) -> float:
        """Epochs actually trained: whole epochs, plus the fraction of a stopped one."""
        return self.history[-1]["epoch"] if self.history else 0


def resolve_precision(precision: str, *, cpuinfo: str | None = None, gpus: list | None = None) -> str:
    """The Keras dtype policy for a precision setting: detect, never guess.

    bfloat16 is only fast where the CPU has native bf16 instructions; elsewhere
    it is emulated and slower than float32. `cpuinfo` (the text of /proc/cpuinfo)
    and `gpus` (TensorFlow's GPU devices) are read from the machine unless given.
    """
    if precision == "float32":
        return "float32"
    if gpus is None:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return "mixed_float16"
    if hardware.cpu_has_native_bf16(cpuinfo):
        return "mixed_bfloat16"
    # Asked for mixed on a CPU that would emulate it: still honour the request.
    return "mixed_bfloat16" if precision == "mixed" else "float32"


# What a training does before its first batch, as its progress events name it ({"kind": "phase", ...}).
# Marked for the catalog: the page shows them in the visitor's language (lib.execution.jobs.describe_state).
LOADING_DATA, LOADING_TENSORFLOW = N_("loading the data"), N_("loading TensorFlow")
BUILDING, COMPILING = N_("building the model"), N_("compiling the model on the first batches")


def report_phase(on_progress: ProgressFn | None, phase: str) -> None:
    """Tell the caller what the training starts doing now (before its first batch, which takes seconds)."""
    if on_progress:
        on_progress({"kind": "phase", "phase": phase, "time": time.time()})


def train(
    config: TrainConfig,
    data,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> TrainResult:
    """Train `config` on prepared data (lib.datasets.PreparedData)."""
    report_phase(on_progress, LOADING_TENSORFLOW)  # configure_threads imports it
    hardware.configure_threads()  # before Keras starts TensorFlow's runtime
    import keras

    from lib.training import callbacks as studio_callbacks  # imports Keras: only once a training starts

    keras.utils.set_random_seed(config.seed)
    layers = config.layer_specs
    policy = resolve_precision(config.precision)
    report_phase(on_progress, BUILDING)
    model = architectures.build_model(  # validates first: a broken spec never reaches Keras
        layers, data.input_shape, data.num_classes, dtype_policy=policy, name=_model_name(config)
    )
    steps_per_epoch = math.ceil(len(data.y_train) / config.batch_size)
    model.compile(
        steps_per_execution=steps_per_execution(steps_per_epoch),
        optimizer=_optimizer(config, policy, total_steps=config.epochs * steps_per_epoch),
        loss="sparse_categorical_crossentropy" if config.label_encoding == "sparse" else "categorical_crossentropy",
        metrics=["accuracy"],
    )
    train_ds = make_dataset(data.x_train, data.y_train, config, training=True, num_classes=data.num_classes)
    val_ds = None
    if len(data.y_val):
        val_ds = make_dataset(data.x_val, data.y_val, config, training=False, num_classes=data.num_classes)

    reporter = studio_callbacks.ProgressReporter(
        on_progress, should_stop, epochs=config.epochs,
        steps=steps_per_epoch, batch_size=config.batch_size,
        samples=len(data.y_train), num_classes=data.num_classes,
        expected_start=math.log(data.num_classes) if config.normalize else None,
    )
    callbacks = [reporter]
    if config.target_metric:
        callbacks.append(studio_callbacks.TargetReached(config.target_metric, config.target_value))
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
            )
        )
    report_phase(on_progress, COMPILING)
    started = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, verbose=0, shuffle=False)
    seconds = time.perf_counter() - started

    status, reason = "finished", (reasons.COMPLETED_ONE if config.epochs == 1 else reasons.COMPLETED).format(epochs=config.epochs)
    if reporter.diverged:
        status, reason = "diverged", divergence_reason(config, reporter.diverged)
    elif reporter.stop_requested:
        status, reason = "stopped", reasons.STOPPED_BY_REQUEST.format(images=reporter.samples_seen)
    else:
        for callback in callbacks[1:]:
            if getattr(callback, "stopped_epoch", 0) or getattr(callback, "reached", False):
                reason = getattr(callback, "reason", None) or reasons.EARLY_STOPPED.format(
                    patience=config.early_stopping_patience)
    result = TrainResult(
        model=model,
        status=status,
        stop_reason=reason,
        history=reporter.epoch_rows,
        seconds=seconds,
        samples_per_s=reporter.samples_seen / max(reporter.train_seconds, 1e-9),
        precision=policy,
        params=int(model.count_params()),
    )
    if not reporter.nan_seen:  # NaN weights predict nothing worth scoring
        score_on_test(result, data, config)
    if on_progress:
        on_progress({"kind": "end", "status": status, "reason": reason, "test_accuracy": result.test_accuracy})
    return result


def divergence_reason(config: TrainConfig, what: str) -> str:
    """Why a run diverged and how to fix it, in words a learner can act on."""
    usual = default_learning_rate(config.optimizer)
    fix = (reasons.FIX_USUAL.format(usual=f"{usual:g}", optimizer=config.optimizer) if config.learning_rate > usual
           else reasons.FIX_LOWER.format(lower=f"{config.learning_rate / 10:g}"))
    template = reasons.DIVERGED if config.normalize else reasons.DIVERGED_RAW  # raw pixels: normalizing helps too
    return template.format(what=what, optimizer=config.optimizer, learning_rate=f"{config.learning_rate:g}", fix=fix)


def steps_per_execution(steps_per_epoch: int) -> int:
    """Batch groups for speed, but at least ~20 progress points per epoch on short runs."""
    return max(1, min(MAX_STEPS_PER_EXECUTION, steps_per_epoch // 20))


def score_on_test(result: TrainResult, data, config: TrainConfig) -> None:
    """Test loss, accuracy, per-class accuracy and confusion matrix in one batched pass."""
    probs = inference.predict_proba(result.model, data.x_test, normalize=config.normalize)
    metrics = inference.score(probs, data.y_test, data.num_classes)
    result.test_loss = metrics["loss"]
    result.test_accuracy = metrics["accuracy"]
    result.per_class_accuracy = metrics["per_class_accuracy"]
    result.confusion = metrics["confusion"]


def make_dataset(x, y, config: TrainConfig, *, training: bool, num_classes: int):
    """A tf.data pipeline over uint8 arrays: shuffle, batch, then scale per batch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(min(len(y), SHUFFLE_BUFFER), seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size)
    scale = 1.0 / 255.0 if config.normalize else 1.0
    augmenter = make_augmenter(config.seed) if training and config.augment else None

    def to_model_input(images, labels):
        images = tf.cast(images, tf.float32)
        if augmenter is not None:
            images = augmenter(images)
        images = images * scale
        if config.label_encoding == "one_hot":
            labels = tf.one_hot(labels, num_classes)
        return images, labels

    return ds.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_augmenter(seed: int):
    """Mild shifts, rotation, zoom and stroke-width changes that mimic how people draw.

    Drawings reach the model already fitted to 20x20 and centred by mass (lib.drawing),
    so the variation left to learn is slant, size and pen width; a share of clean images
    keeps the model sharp on real MNIST.
    """
    import keras
    import tensorflow as tf

    geometric = keras.Sequential(
        [
            keras.layers.RandomRotation(0.03, fill_mode="constant", seed=seed),  # about ±11°
            keras.layers.RandomZoom((-0.1, 0.1), fill_mode="constant", seed=seed + 1),
            keras.layers.RandomTranslation(0.07, 0.07, fill_mode="constant", seed=seed + 2),  # ±2 px
        ]
    )

    def augment(images):
        count = tf.shape(images)[0]
        moved = geometric(images, training=True)
        # Thicker or thinner strokes: grey dilation / erosion on a sixth of the images each.
        thicker = tf.nn.max_pool2d(moved, ksize=2, strides=1, padding="SAME")
        thinner = -tf.nn.max_pool2d(-moved, ksize=2, strides=1, padding="SAME")
        pen = tf.random.uniform((count, 1, 1, 1), 0, 6, dtype=tf.int32)
        moved = tf.where(pen == 0, thicker, tf.where(pen == 1, thinner, moved))
        keep_clean = tf.random.uniform((count, 1, 1, 1)) < CLEAN_SHARE
        return tf.where(keep_clean, images, moved)

    return augment


def _optimizer(config: TrainConfig, policy: str, total_steps: int):
    import keras

    classes = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, total_steps, alpha=FINAL_SHARE)
    elif config.lr_schedule == "one_cycle":
        learning_rate = one_cycle_schedule(config.learning_rate, total_steps)
    optimizer = classes[config.optimizer](learning_rate=learning_rate)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def one_cycle_schedule(peak: float, total_steps: int):
    """Linear warm-up to `peak` over WARMUP_SHARE of the steps, then cosine decay to FINAL_SHARE of it."""
    import keras

    warmup_steps = max(1, round(total_steps * WARMUP_SHARE))
    return keras.optimizers.schedules.CosineDecay(
        peak * WARMUP_START, max(1, total_steps - warmup_steps), alpha=FINAL_SHARE,
        warmup_target=peak, warmup_steps=warmup_steps,
    )


def _model_name(config: TrainConfig) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in config.arch)
