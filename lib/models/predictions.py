"""Test-set predictions of a run: which images to show, how to caption them, what it scored.

Pure NumPy (tutorial lessons 1 and 10): `predict` gives a probability per class,
the prediction is the argmax, and a random sample of test images shows true
label, predicted label and its probability. The Predictions page draws these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lib.i18n import _
from lib.models import inference

GRID_SIZES = (10, 20, 30, 50)  # the tutorial shows ten; more make mistakes easier to spot
RIGHT_MARK, WRONG_MARK = "✓", "✗"  # the caption says right/wrong without relying on colour


@dataclass(frozen=True)
class TestPredictions:
    """Probabilities (N, K) for a test split and its true labels (N,)."""

    probs: np.ndarray
    y_true: np.ndarray

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of the predicted class, per image."""
        return self.probs.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.y_pred == self.y_true

    @property
    def num_classes(self) -> int:
        return self.probs.shape[1]

    def scores(self) -> dict:
        """Accuracy, loss, per-class accuracy and confusion matrix (as lib.inference scores them)."""
        return inference.score(self.probs, self.y_true, self.num_classes)


def from_probabilities(probs: np.ndarray, y_true: np.ndarray, num_classes: int | None = None) -> TestPredictions:
    """Check that probabilities, labels and (if given) the number of class names belong together; pair them."""
    probs = np.asarray(probs, dtype=np.float32)
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"Got probabilities of shape {probs.shape} for {len(y_true)} labels.")
    if num_classes is not None and probs.shape[1] != num_classes:
        raise ValueError(f"The model outputs {probs.shape[1]} classes but the run names {num_classes}.")
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= probs.shape[1]):
        raise ValueError(f"The labels go up to {y_true.max()} but the model has {probs.shape[1]} classes.")
    return TestPredictions(probs, y_true)


def candidate_indices(
    predictions: TestPredictions, *, true_class: int | None = None, only_wrong: bool = False
) -> np.ndarray:
    """Test-set indices that pass the filters: one true class (None: all) and/or misclassified only."""
    keep = np.ones(len(predictions.y_true), dtype=bool)
    if true_class is not None:
        keep &= predictions.y_true == int(true_class)
    if only_wrong:
        keep &= ~predictions.correct
    return np.flatnonzero(keep)


def sample_indices(
    predictions: TestPredictions,
    *,
    count: int,
    seed: int,
    true_class: int | None = None,
    only_wrong: bool = False,
) -> np.ndarray:
    """Up to `count` distinct random test indices passing the filters; the same seed gives the same sample."""
    pool = candidate_indices(predictions, true_class=true_class, only_wrong=only_wrong)
    if count <= 0 or not len(pool):
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=min(count, len(pool)), replace=False).astype(np.int64)


def grid_columns(count: int) -> int:
    """Columns of the image grid: rows of five for the tutorial's ten images, rows of ten beyond."""
    return 5 if count <= 10 else 10


def caption(position: int, true_name: str, predicted_name: str, confidence: float, *, correct: bool) -> str:
    """One grid caption, two lines: number, predicted class and its probability; right/wrong mark, true class."""
    mark = RIGHT_MARK if correct else WRONG_MARK
    return _("{position}. predicted {predicted} ({confidence:.1%})\n{mark} true {true}").format(
        position=position, predicted=predicted_name, confidence=confidence, mark=mark, true=true_name)


def captions(predictions: TestPredictions, indices: Sequence[int], class_names: Sequence[str]) -> list[str]:
    """Captions for the images at `indices`, numbered from 1 in the order shown."""
    names = [str(name) for name in class_names]
    return [
        caption(
            position,
            names[predictions.y_true[index]],
            names[predictions.y_pred[index]],
            float(predictions.confidence[index]),
            correct=bool(predictions.correct[index]),
        )
        for position, index in enumerate(indices, start=1)
    ]


def sample_note(shown: int, available: int, asked: int) -> str:
    """What the grid holds, and why it is smaller than asked when the filters leave fewer images."""
    if available == 0:
        return _("No test image matches these filters.")
    if shown < asked:
        return _("All {available} test images that match these filters.").format(available=available)
    return _("{shown} random test images of the {available:,} that match these filters.").format(
        shown=shown, available=available)
