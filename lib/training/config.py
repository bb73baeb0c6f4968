"""TrainConfig: everything that defines a run, and the settings it may take.

A module of its own with no heavy imports (no TensorFlow, no data): the run store, the
presets, the CLI and the pages all read and build configs without loading a trainer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from lib.i18n import N_
from lib.models import architectures

OPTIMIZERS = ("adam", "sgd", "rmsprop")
# Each optimizer's starting learning rate: Adam's is the peak of the default one-cycle recipe
# (the tutorials' Keras default 1e-3 comes with their presets); SGD's Keras default; RMSprop's tutorials' 1e-4.
DEFAULT_LEARNING_RATES = {"adam": 1e-2, "sgd": 1e-3, "rmsprop": 1e-4}
LR_SCHEDULES = ("constant", "cosine", "one_cycle")
LABEL_ENCODINGS = ("sparse", "one_hot")
PRECISIONS = ("auto", "float32", "mixed")
TARGET_METRICS = ("accuracy", "val_accuracy", "loss", "val_loss")
# The fast recipe (one-cycle at a high rate) needs about this many optimizer steps: one epoch of
# MNIST at batch 128 is 469. On 1,000 images one epoch is 8 steps and gives 37% test accuracy;
# 50 epochs (400 steps) give 96.5% (3,000 images: 80% -> 98.1% with 17). See the README.
QUICK_MIN_STEPS = 400
MAX_EPOCHS = 500


# The type each TrainConfig field must have, and how to say it.
FIELD_TYPES = {
    "dataset": (str,), "arch": (str,), "layers": (tuple, list), "epochs": (int,), "batch_size": (int,),
    "optimizer": (str,), "learning_rate": (int, float), "lr_schedule": (str,), "validation_split": (int, float),
    "normalize": (bool,), "label_encoding": (str,), "seed": (int,), "target_metric": (str,),
    "target_value": (int, float), "early_stopping_patience": (int,), "augment": (bool,), "precision": (str,),
    "limit": (int, type(None)), "name": (str,),
}
FIELD_TYPE_WORDS = {name: {(str,): N_("text"), (tuple, list): N_("a list of layers"), (int,): N_("a whole number"),
                           (int, float): N_("a number"), (bool,): N_("true or false"),
                           (int, type(None)): N_("a whole number or none")}[kinds] for name, kinds in FIELD_TYPES.items()}

# What is wrong with a config: English (the CLI, the logs), marked for the catalog and shown translated on the
# Train page one by one (InvalidConfig.problems; lib.i18n.translate_filled). Setting names and values stay as they are.
UNKNOWN_ARCH = N_("Unknown architecture: {name}.")
NO_CUSTOM_LAYERS = N_("A custom architecture needs at least one layer.")
BAD_EPOCHS = N_("Epochs must be between 1 and {limit}.")
BAD_BATCH_SIZE = N_("Batch size must be between 1 and 4096.")
BAD_OPTIMIZER = N_("Optimizer must be one of {options}.")
BAD_LEARNING_RATE = N_("Learning rate must be above 0 and at most 10.")
BAD_VALIDATION_SPLIT = N_("Validation split must be at least 0 and below 0.9.")
BAD_SCHEDULE = N_("Learning-rate schedule must be one of {options}.")
BAD_LABEL_ENCODING = N_("Label encoding must be one of {options}.")
BAD_PRECISION = N_("Precision must be one of {options}.")
BAD_TARGET_METRIC = N_("Target metric must be one of {options}.")
TARGET_NEEDS_SPLIT = N_("A validation target needs a validation split above 0.")
NEGATIVE_PATIENCE = N_("Early-stopping patience cannot be negative.")
PATIENCE_NEEDS_SPLIT = N_("Early stopping watches val_loss: set a validation split above 0.")
BAD_LIMIT = N_("Limit must be at least 20 images (or none).")
WRONG_TYPE = N_("Setting {name} must be {wanted}, not {type}.")
NOT_A_MAPPING = N_("A run's settings must be a mapping, not {type}.")


class InvalidConfig(ValueError):
    """A TrainConfig that cannot be used; the message is its problems joined, `problems` each one."""

    def __init__(self, problems: list[str]):
        super().__init__(" ".join(problems))
        self.problems = list(problems)


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
            raise InvalidConfig(problems)

    def problems(self) -> list[str]:
        """What is wrong with this config, in words a user can act on (types first: a config read from
        a stored or uploaded run may hold anything)."""
        found = self._type_problems()
        if found:
            return found
        if self.arch != "custom" and self.arch not in architectures.ZOO:
            found.append(UNKNOWN_ARCH.format(name=repr(self.arch)))
        if self.arch == "custom" and not self.layers:
            found.append(NO_CUSTOM_LAYERS)
        if not 1 <= self.epochs <= MAX_EPOCHS:
            found.append(BAD_EPOCHS.format(limit=MAX_EPOCHS))
        if not 1 <= self.batch_size <= 4096:
            found.append(BAD_BATCH_SIZE)
        if self.optimizer not in OPTIMIZERS:
            found.append(BAD_OPTIMIZER.format(options=", ".join(OPTIMIZERS)))
        if not 0 < self.learning_rate <= 10:
            found.append(BAD_LEARNING_RATE)
        if not 0 <= self.validation_split < 0.9:
            found.append(BAD_VALIDATION_SPLIT)
        if self.lr_schedule not in LR_SCHEDULES:
            found.append(BAD_SCHEDULE.format(options=", ".join(LR_SCHEDULES)))
        if self.label_encoding not in LABEL_ENCODINGS:
            found.append(BAD_LABEL_ENCODING.format(options=", ".join(LABEL_ENCODINGS)))
        if self.precision not in PRECISIONS:
            found.append(BAD_PRECISION.format(options=", ".join(PRECISIONS)))
        if self.target_metric and self.target_metric not in TARGET_METRICS:
            found.append(BAD_TARGET_METRIC.format(options=", ".join(TARGET_METRICS)))
        if self.target_metric.startswith("val_") and self.validation_split == 0:
            found.append(TARGET_NEEDS_SPLIT)
        if self.early_stopping_patience < 0:
            found.append(NEGATIVE_PATIENCE)
        if self.early_stopping_patience and self.validation_split == 0:
            found.append(PATIENCE_NEEDS_SPLIT)
        if self.limit is not None and self.limit < 20:
            found.append(BAD_LIMIT)
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

    def _type_problems(self) -> list[str]:
        found = []
        for field in dataclasses.fields(self):
            value, kinds = getattr(self, field.name), FIELD_TYPES[field.name]
            # bool is an int to Python, never to a user: True epochs or a 0/1 flag given as a number are wrong.
            wrong_bool = isinstance(value, bool) and bool not in kinds
            if wrong_bool or not isinstance(value, kinds) or (field.name == "layers" and not all(
                    isinstance(layer, dict) for layer in value)):
                found.append(WRONG_TYPE.format(name=repr(field.name), wanted=FIELD_TYPE_WORDS[field.name],
                                               type=type(value).__name__))
        return found

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """A config from stored data (meta.json, a bundle); ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise InvalidConfig([NOT_A_MAPPING.format(type=type(data).__name__)])
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        layers = values.get("layers") or ()
        values["layers"] = tuple(layers) if isinstance(layers, (list, tuple)) else layers
        return cls(**values)


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
