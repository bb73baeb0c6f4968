"""Draw your own classes: the draft store, the dataset it becomes, and a model trained on it."""

import numpy as np
import pytest

from lib.data import catalog, datasets, drawing, drawnclasses, synthdigits
from lib.execution import pipeline
from lib.models import inference
from lib.training import presets

SHAPES = ("circle", "square", "triangle")


def shape(name, seed=0):
    return synthdigits.draw_shape(name, np.random.default_rng(seed))


def filled_draft(per_class, seed=0, shapes=SHAPES):
    images, labels = synthdigits.shape_set(shapes, per_class, seed=seed)
    draft = drawnclasses.new_draft(shapes)
    for image, label in zip(images, labels):
        drawnclasses.add_drawing(draft, shapes[label], image)
    return draft


@pytest.mark.parametrize(
    "names, message",
    [
        (["circle"], "at least 2 classes"),
        (["circle", "  ", ""], "at least 2 classes"),
        ([str(i) for i in range(11)], "At most 10 classes"),
        (["Circle", "circle ", "square"], "Circle, circle appears more than once"),
    ],
)
def test_class_names_are_checked(names, message):
    with pytest.raises(drawnclasses.InvalidDraft, match=message):
        drawnclasses.new_draft(names)


def test_add_preprocesses_like_draw_and_counts_and_thumbnails_follow():
    draft = drawnclasses.new_draft([" circle ", "square"])
    assert draft["classes"] == ["circle", "square"]
    canvas = shape("circle")
    added = drawnclasses.add_drawing(draft, "circle", canvas)
    expected = np.round(drawing.preprocess_image(canvas, mode="digit") * 255).astype(np.uint8)
    np.testing.assert_array_equal(added, expected)  # what Draw feeds the model
    drawnclasses.add_drawing(draft, "square", shape("square"))
    assert drawnclasses.counts(draft) == {"circle": 1, "square": 1}
    thumbs = drawnclasses.thumbnails(draft, "circle")
    assert len(thumbs) == 1 and thumbs[0].shape == (28, 28) and thumbs[0].dtype == np.uint8


def test_an_empty_canvas_or_unknown_class_is_refused():
    draft = drawnclasses.new_draft(["a", "b"])
    with pytest.raises(drawnclasses.InvalidDraft, match="canvas is empty"):
        drawnclasses.add_drawing(draft, "a", np.zeros((280, 280, 4), dtype=np.uint8))
    with pytest.raises(drawnclasses.InvalidDraft, match="no class 'c'"):
        drawnclasses.add_drawing(draft, "c", shape("circle"))
    assert drawnclasses.counts(draft) == {"a": 0, "b": 0}


def test_undo_last_and_delete_one():
    draft = drawnclasses.new_draft(["a", "b"])
    first_a = drawnclasses.add_drawing(draft, "a", shape("circle", 1))
    drawnclasses.add_drawing(draft, "b", shape("square", 2))
    second_a = drawnclasses.add_drawing(draft, "a", shape("triangle", 3))
    drawnclasses.delete_drawing(draft, "a", 0)
    np.testing.assert_array_equal(drawnclasses.thumbnails(draft, "a")[0], second_a)
    assert drawnclasses.undo_last(draft) == "a"  # the newest drawing, not the deleted one
    assert drawnclasses.counts(draft) == {"a": 0, "b": 1}
    assert drawnclasses.undo_last(draft) == "b"
    assert drawnclasses.undo_last(draft) is None
    with pytest.raises(drawnclasses.InvalidDraft, match="no drawing number 1"):
        drawnclasses.delete_drawing(draft, "a", 0)
    assert first_a.shape == (28, 28)


def test_renaming_keeps_the_drawings_of_kept_classes():
    draft = filled_draft(2)
    renamed = drawnclasses.rename_classes(draft, ["circle", "square", "star"])
    assert drawnclasses.counts(renamed) == {"circle": 2, "square": 2, "star": 0}
    assert len(renamed["order"]) == 4


def test_saving_needs_a_few_drawings_per_class(runs_dir):
    draft = filled_draft(2)
    with pytest.raises(drawnclasses.InvalidDraft, match="circle: 2 of at least 3 drawings"):
        drawnclasses.save_draft("mine", draft)
    assert not (runs_dir / datasets.UPLOADS_SUBDIR / "mine.npz").exists()


def test_saved_draft_is_a_digit_kind_dataset_with_a_small_test_share(runs_dir):
    info = drawnclasses.save_draft("my_shapes", filled_draft(20))
    assert info.kind == "digit"  # Draw preprocesses drawings MNIST-style for models trained on it
    assert info.class_names == SHAPES and info.input_shape == (28, 28, 1)
    dataset = catalog.load_dataset("my_shapes")
    assert np.bincount(dataset.y_test).tolist() == [4, 4, 4]
    assert np.bincount(dataset.y_train).tolist() == [16, 16, 16]
    assert catalog.available_datasets()["my_shapes"].kind == "digit"


def test_a_model_trained_on_a_few_drawings_recognises_new_ones(runs_dir, tmp_path):
    drawnclasses.save_draft("few_shapes", filled_draft(20), folder=tmp_path)
    config = presets.drawn_classes_config("few_shapes", epochs=30, augment=False)  # augmentation: see bench
    _, result = pipeline.train_and_save(config, data_dir=tmp_path, runs_dir=runs_dir)
    new, labels = synthdigits.shape_set(SHAPES, 6, seed=99)
    processed = np.stack([drawing.preprocess_image(image, mode="digit") for image in new])
    probs = inference.predict_unit_images(result.model, processed, normalize=True)
    assert (probs.argmax(axis=1) == labels).mean() >= 0.8  # chance is 1/3


def test_the_one_click_recipe_augments():
    config = presets.drawn_classes_config("x")
    assert config.augment and config.dataset == "x"
