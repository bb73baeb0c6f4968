"""Training: one frozen config in, a trained model and its measurements out.

`train(config, data, on_progress, should_stop)` runs Keras `fit` on uint8
images scaled per batch, reports every batch and epoch through a plain
callable, stops cleanly when asked (keeping the weights so far), and scores the
result on the test set. TensorFlow is imported only when training starts.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from lib import architectures, datasets, hardware, inference, runs

OPTIMIZERS = ("adam", "sgd", "rmsprop")
# Each optimizer's starting learning rate: Adam's is the peak of the default one-cycle recipe
# (the tutorials' Keras default 1e-3 comes with their presets); SGD's Keras default; RMSprop's tutorials' 1e-4.
DEFAULT_LEARNING_RATES = {"adam": 1e-2, "sgd": 1e-3, "rmsprop": 1e-4}
LR_SCHEDULES = ("constant", "cosine", "one_cycle")
LABEL_ENCODINGS = ("sparse", "one_hot")
PRECISIONS = ("auto", "float32", "mixed")
TARGET_METRICS = ("accuracy", "val_accuracy", "loss", "val_loss")
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
# The fast recipe (one-cycle at a high rate) needs about this many optimizer steps: one epoch of
# MNIST at batch 128 is 469. On 1,000 images one epoch is 8 steps and gives 37% test accuracy;
# 50 epochs (400 steps) give 96.5% (3,000 images: 80% -> 98.1% with 17). See the README.
QUICK_MIN_STEPS = 400
MAX_EPOCHS = 500

ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; stored in meta.json and enough to rebuild it."""

    dataset: str = "mnist"  # a name from lib.datasets.available_datasets()
    # The defaults are the fastest recipe measured (bench/RESULTS.md): 99% MNIST test accuracy after
    # one epoch; the tutorial presets bring the tutorials' own settings.
    arch: str = "cnn-fast"  # a zoo name, or "custom" with `layers`
    layers: tuple = ()  # custom layer specs (dicts) when arch == "custom"
    epochs: int = 1  # one-cycle gets the fast CNN to 99% in one; the tutorials use 5 (CNN/MLP) to 50
    batch_size: int = 128  # 4x fewer steps than fit's 32 for the same accuracy with one-cycle
    optimizer: str = "adam"  # adam / sgd / rmsprop, as the tutorials use them
    learning_rate: float = DEFAULT_LEARNING_RATES["adam"]  # one-cycle's peak; the tutorials' Adam uses 1e-3
    lr_schedule: str = "one_cycle"  # warm up, then decay: 99.0% after 1 epoch (constant: 98.6%, issue 15)
    validation_split: float = 0.1  # held out of the training set; the test set stays for the final score
    normalize: bool = True  # pixels / 255; off reproduces the unnormalized tutorials
    label_encoding: str = "sparse"  # integer labels, or one-hot as the softmax tutorial encodes by hand
    seed: int = 0  # seeds the split, the shuffling and the initial weights
    target_metric: str = ""  # stop once this metric reaches target_value ("" = off): the callback lesson
    target_value: float = 0.0
    early_stopping_patience: int = 0  # epochs without val_loss improvement before stopping (0 = off)
    augment: bool = False  # random shifts, rotation, zoom and stroke width: closer to drawn digits
    precision: str = "auto"  # auto: mixed bfloat16 only where the hardware runs it natively
    limit: int | None = None  # stratified cap on training images, for quick runs
    name: str = ""  # display name; empty: derived from arch and dataset

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise ValueError(" ".join(problems))

    def problems(self) -> list[str]:
        """What is wrong with this config, in words a user can act on."""
        found = []
        if self.arch != "custom" and self.arch not in architectures.ZOO:
            found.append(f"Unknown architecture: {self.arch!r}.")
        if self.arch == "custom" and not self.layers:
            found.append("A custom architecture needs at least one layer.")
        if not 1 <= self.epochs <= MAX_EPOCHS:
            found.append(f"Epochs must be between 1 and {MAX_EPOCHS}.")
        if not 1 <= self.batch_size <= 4096:
            found.append("Batch size must be between 1 and 4096.")
        if self.optimizer not in OPTIMIZERS:
            found.append(f"Optimizer must be one of {', '.join(OPTIMIZERS)}.")
        if not 0 < self.learning_rate <= 10:
            found.append("Learning rate must be above 0 and at most 10.")
        if not 0 <= self.validation_split < 0.9:
            found.append("Validation split must be at least 0 and below 0.9.")
        if self.lr_schedule not in LR_SCHEDULES:
            found.append(f"Learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}.")
        if self.label_encoding not in LABEL_ENCODINGS:
            found.append(f"Label encoding must be one of {', '.join(LABEL_ENCODINGS)}.")
        if self.precision not in PRECISIONS:
            found.append(f"Precision must be one of {', '.join(PRECISIONS)}.")
        if self.target_metric and self.target_metric not in TARGET_METRICS:
            found.append(f"Target metric must be one of {', '.join(TARGET_METRICS)}.")
        if self.target_metric.startswith("val_") and self.validation_split == 0:
            found.append("A validation target needs a validation split above 0.")
        if self.early_stopping_patience < 0:
            found.append("Early-stopping patience cannot be negative.")
        if self.early_stopping_patience and self.validation_split == 0:
            found.append("Early stopping watches val_loss: set a validation split above 0.")
        if self.limit is not None and self.limit < 20:
            found.append("Limit must be at least 20 images (or none).")
        return found

    @property
    def layer_specs(self) -> list[dict]:
        if self.arch == "custom":
            return [dict(layer) for layer in self.layers]
        return [dict(layer) for layer in architectures.get_architecture(self.arch).layers]

    @property
    def display_name(self) -> str:
        return self.name or f"{self.arch} · {self.dataset}"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["layers"] = [dict(layer) for layer in self.layers]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["layers"] = tuple(values.get("layers") or ())
        return cls(**values)


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


def default_learning_rate(optimizer: str) -> float:
    """The learning rate an optimizer starts from unless the user picks one (CLI and Train page)."""
    return DEFAULT_LEARNING_RATES.get(optimizer, TrainConfig.learning_rate)


def epochs_for_steps(train_images: int, batch_size: int, *, epochs: int = 1, min_steps: int = QUICK_MIN_STEPS) -> int:
    """At least `epochs`, and enough epochs over `train_images` for `min_steps` optimizer steps."""
    steps_per_epoch = max(math.ceil(train_images / max(batch_size, 1)), 1)
    return max(epochs, min(MAX_EPOCHS, math.ceil(min_steps / steps_per_epoch)))


def config_defaults() -> dict:
    """TrainConfig's field defaults by name: the one source the CLI and the Train page start from."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}


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


def train(
    config: TrainConfig,
    data,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> TrainResult:
    """Train `config` on prepared data (lib.datasets.PreparedData)."""
    hardware.configure_threads()  # before Keras starts TensorFlow's runtime
    import keras

    from lib import callbacks as studio_callbacks  # imports Keras: only once a training starts

    keras.utils.set_random_seed(config.seed)
    layers = config.layer_specs
    policy = resolve_precision(config.precision)
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
    started = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, verbose=0, shuffle=False)
    seconds = time.perf_counter() - started

    status, reason = "finished", f"Completed {config.epochs} epoch{'s' if config.epochs != 1 else ''}."
    if reporter.diverged:
        status, reason = "diverged", divergence_reason(config, reporter.diverged)
    elif reporter.stop_requested:
        status, reason = "stopped", f"Stopped by request after {reporter.samples_seen:,} images; weights so far kept."
    else:
        for callback in callbacks[1:]:
            if getattr(callback, "stopped_epoch", 0) or getattr(callback, "reached", False):
                reason = getattr(callback, "reason", None) or (
                    f"Early stopping: val_loss did not improve for {config.early_stopping_patience} epochs; best weights restored."
                )
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


def train_and_save(
    config: TrainConfig,
    *,
    data_dir=None,
    runs_dir=None,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
):
    """Load and split the dataset, train, and save the run: the path every front end uses.

    Returns (RunInfo, TrainResult). A failed (NaN) run is saved too, with its
    status, so the user can see what happened.
    """
    # A dataset the user uploaded or drew lives beside their runs (their workspace on a shared server).
    dataset = datasets.load_dataset(config.dataset, data_dir, datasets.uploads_dir(runs_dir))
    data = datasets.prepare(
        dataset, validation_split=config.validation_split, limit=config.limit, seed=config.seed
    )
    result = train(config, data, on_progress, should_stop)
    run = runs.save_run(result, config, data.info, runs_dir)
    return run, result


def divergence_reason(config: TrainConfig, what: str) -> str:
    """Why a run diverged and how to fix it, in words a learner can act on."""
    usual = default_learning_rate(config.optimizer)
    fix = (f"try {usual:g}, the usual start for {config.optimizer}" if config.learning_rate > usual
           else f"try ten times lower, {config.learning_rate / 10:g}")
    reason = (
        f"Training diverged: {what}, so it was stopped. The likely cause is a learning rate too high "
        f"for {config.optimizer} ({config.learning_rate:g}): each step overshoots and the loss explodes. "
        f"Lower the learning rate ({fix}) and train again."
    )
    if not config.normalize:
        reason += " Turning normalization on helps too: raw 0-255 pixels make every step 255 times larger."
    return reason


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
