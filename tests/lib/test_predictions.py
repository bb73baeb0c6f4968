"""lib.models.predictions: which test images the Predictions page shows, and how it captions them."""

import numpy as np
import pytest

from lib.models import predictions

NUM_CLASSES = 3


@pytest.fixture
def preds() -> predictions.TestPredictions:
    """60 images, 20 per class; every third image of each class is predicted as the next class."""
    y_true = np.repeat(np.arange(NUM_CLASSES), 20)
    y_pred = y_true.copy()
    wrong = np.arange(len(y_true)) % 3 == 0
    y_pred[wrong] = (y_true[wrong] + 1) % NUM_CLASSES
    probs = np.full((len(y_true), NUM_CLASSES), 0.1, dtype=np.float32)
    probs[np.arange(len(y_true)), y_pred] = 0.8
    return predictions.from_probabilities(probs, y_true)


def test_prediction_is_the_most_probable_class_and_confidence_its_probability():
    probs = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=np.float32)
    preds = predictions.from_probabilities(probs, np.array([1, 2, 2]))
    assert preds.y_pred.tolist() == [1, 0, 2]
    np.testing.assert_allclose(preds.confidence, [0.7, 0.5, 0.8])
    assert preds.correct.tolist() == [True, False, True]


def test_accuracy_counts_right_predictions(preds):
    assert preds.scores()["accuracy"] == pytest.approx(40 / 60)
    assert int((~preds.correct).sum()) == 20


def test_confusion_matrix_rows_are_true_classes(preds):
    confusion = np.array(preds.scores()["confusion"])
    assert confusion.sum() == 60
    assert confusion[0, 1] == 7 and confusion[0, 0] == 13  # images 0, 3, ..., 18 of class 0 went to class 1


def test_same_seed_gives_same_sample(preds):
    first = predictions.sample_indices(preds, count=10, seed=4)
    again = predictions.sample_indices(preds, count=10, seed=4)
    assert first.tolist() == again.tolist()
    assert len(set(first.tolist())) == 10


def test_another_seed_shuffles_the_sample(preds):
    first = predictions.sample_indices(preds, count=10, seed=0)
    shuffled = predictions.sample_indices(preds, count=10, seed=1)
    assert first.tolist() != shuffled.tolist()


def test_misclassified_filter_returns_only_wrong_images(preds):
    picked = predictions.sample_indices(preds, count=50, seed=0, only_wrong=True)
    assert len(picked) == 20
    assert not preds.correct[picked].any()


def test_true_class_filter_returns_only_that_class(preds):
    picked = predictions.sample_indices(preds, count=10, seed=0, true_class=2)
    assert len(picked) == 10
    assert set(preds.y_true[picked].tolist()) == {2}


def test_filters_combine(preds):
    picked = predictions.sample_indices(preds, count=50, seed=0, true_class=1, only_wrong=True)
    assert len(picked) == 7
    assert set(preds.y_true[picked].tolist()) == {1}
    assert not preds.correct[picked].any()


def test_no_match_gives_an_empty_sample():
    probs = np.eye(NUM_CLASSES, dtype=np.float32)
    perfect = predictions.from_probabilities(probs, np.arange(NUM_CLASSES))
    picked = predictions.sample_indices(perfect, count=10, seed=0, only_wrong=True)
    assert picked.size == 0
    assert predictions.sample_note(0, 0, 10) == "No test image matches these filters."


def test_caption_shows_number_predicted_probability_and_true_label():
    text = predictions.caption(3, "4", "9", 0.634, correct=False)
    assert text == "3. predicted 9 (63.4%)\n✗ true 4"
    assert predictions.caption(1, "7", "7", 0.99, correct=True).endswith("✓ true 7")


def test_captions_follow_the_sample_order(preds):
    picked = predictions.sample_indices(preds, count=5, seed=2)
    names = ["zero", "one", "two"]
    texts = predictions.captions(preds, picked, names)
    assert len(texts) == 5
    for position, (text, index) in enumerate(zip(texts, picked), start=1):
        assert text.startswith(f"{position}. predicted {names[preds.y_pred[index]]} (80.0%)")
        assert text.endswith(f"true {names[preds.y_true[index]]}")
        assert (predictions.WRONG_MARK in text) == (not preds.correct[index])


def test_sample_note_says_when_filters_leave_fewer_images():
    assert predictions.sample_note(10, 10_000, 10) == "10 random test images of the 10,000 that match these filters."
    assert predictions.sample_note(7, 7, 20) == "All 7 test images that match these filters."


def test_grid_has_rows_of_five_for_ten_images_and_ten_beyond():
    assert predictions.grid_columns(10) == 5
    assert predictions.grid_columns(50) == 10


def test_probabilities_and_labels_must_match():
    with pytest.raises(ValueError, match="labels"):
        predictions.from_probabilities(np.zeros((3, 10)), np.arange(4))
    with pytest.raises(ValueError, match="classes"):
        predictions.from_probabilities(np.zeros((2, 3)), np.array([0, 5]))
    with pytest.raises(ValueError, match="names 10"):
        predictions.from_probabilities(np.zeros((2, 3)), np.array([0, 1]), num_classes=10)
