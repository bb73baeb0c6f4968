"""Draw your own classes: drawings in progress, then a dataset Draw can predict.

A draft is plain data (a dict of lists and small uint8 arrays) so it can live in
Streamlit's session state: the class names, and per class the drawings already
turned into the 28x28 model input by `drawing.preprocess_image(mode="digit")`, the
same treatment the Draw page gives a drawing before asking a model. Training on
these therefore matches what Draw feeds the model. `save_draft` keeps the draft as
a dataset of kind "digit" with a small held-out test share; the one-click recipe that trains
on it is `lib.training.presets.drawn_classes_config`.
"""

from __future__ import annotations

import numpy as np

from lib.data import datasets, drawing
from lib.i18n import _

MIN_CLASSES, MAX_CLASSES = 2, 10
MAX_CLASS_NAME = 30
MIN_PER_CLASS = 3  # two to train on, one to test
MAX_PER_CLASS = 200
TEST_SHARE = 0.2  # small: with 20 drawings per class, 4 are kept for the test score
SIDE = 28



class InvalidDraft(ValueError):
    """Class names or drawings that cannot become a dataset; the message says what to do."""


def new_draft(class_names) -> dict:
    """An empty draft for 2-10 named classes."""
    names = check_class_names(class_names)
    return {"classes": names, "images": {name: [] for name in names}, "order": []}


def check_class_names(class_names) -> list[str]:
    """Trimmed, printable, unique (ignoring case), 2-10 of them; InvalidDraft otherwise."""
    names = ["".join(ch for ch in str(name) if ch.isprintable()).strip()[:MAX_CLASS_NAME] for name in class_names]
    names = [name for name in names if name]
    if len(names) < MIN_CLASSES:
        raise InvalidDraft(_("Name at least {count} classes (for example circle, square, triangle).").format(
            count=MIN_CLASSES))
    if len(names) > MAX_CLASSES:
        raise InvalidDraft(_("At most {limit} classes; you named {count}.").format(limit=MAX_CLASSES, count=len(names)))
    folded = [name.casefold() for name in names]
    twins = sorted({name for name, key in zip(names, folded) if folded.count(key) > 1})
    if twins:
        raise InvalidDraft(_("Each class needs its own name; {names} appears more than once.").format(
            names=", ".join(twins)))
    return names


def rename_classes(draft: dict, class_names) -> dict:
    """The draft with new class names: drawings of names kept stay, others are dropped."""
    names = check_class_names(class_names)
    images = {name: list(draft["images"].get(name, [])) for name in names}
    order = [name for name in draft["order"] if name in images]
    return {"classes": names, "images": images, "order": order}


def add_drawing(draft: dict, class_name: str, canvas: np.ndarray) -> np.ndarray:
    """Preprocess a canvas drawing (RGBA) as Draw does and add it to a class; returns the 28x28 uint8 input."""
    if class_name not in draft["images"]:
        raise InvalidDraft(_("There is no class {name!r}; pick one of {names}.").format(
            name=class_name, names=", ".join(draft["classes"])))
    if len(draft["images"][class_name]) >= MAX_PER_CLASS:
        raise InvalidDraft(_("{name} already has {count} drawings; that is plenty.").format(name=class_name,
                                                                                      count=MAX_PER_CLASS))
    processed = drawing.preprocess_image(canvas, mode="digit", size=SIDE)
    if processed is None:
        raise InvalidDraft(_("The canvas is empty: draw an example first, then add it."))
    image = np.round(processed * 255).astype(np.uint8)
    draft["images"][class_name].append(image)
    draft["order"].append(class_name)
    return image


def undo_last(draft: dict) -> str | None:
    """Remove the most recent drawing; returns its class (None if there was nothing to undo)."""
    if not draft["order"]:
        return None
    class_name = draft["order"].pop()
    draft["images"][class_name].pop()
    return class_name


def delete_drawing(draft: dict, class_name: str, index: int) -> None:
    """Remove one drawing of a class (by its position among that class's drawings)."""
    images = draft["images"].get(class_name, [])
    if not 0 <= index < len(images):
        raise InvalidDraft(_("{name} has no drawing number {number}.").format(name=class_name, number=index + 1))
    images.pop(index)
    # The class's drawings are in drawing order: its index-th entry in `order` is this drawing.
    positions = [i for i, name in enumerate(draft["order"]) if name == class_name]
    draft["order"].pop(positions[index])


def counts(draft: dict) -> dict[str, int]:
    return {name: len(draft["images"][name]) for name in draft["classes"]}


def thumbnails(draft: dict, class_name: str) -> list[np.ndarray]:
    """The class's drawings as the model will see them (28x28 uint8, light ink on black)."""
    return list(draft["images"].get(class_name, []))


def missing(draft: dict) -> list[str]:
    """What still has to be drawn before the draft can be saved, one line per class short of drawings."""
    return [
        _("{name}: {count} of at least {least} drawings").format(name=name, count=count, least=MIN_PER_CLASS)
        for name, count in counts(draft).items() if count < MIN_PER_CLASS
    ]


def to_arrays(draft: dict, *, test_share: float = TEST_SHARE, seed: int = 0) -> dict:
    """x/y train and test arrays: a seeded share of each class's drawings held out for testing."""
    short = missing(draft)
    if short:
        raise InvalidDraft(_("Draw a few more examples first: {missing}.").format(missing="; ".join(short)))
    rng = np.random.default_rng(seed)
    parts = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for label, name in enumerate(draft["classes"]):
        images = np.stack(draft["images"][name])
        order = rng.permutation(len(images))
        test_count = min(len(images) - 2, max(1, round(len(images) * test_share)))
        for split, picked in (("test", order[:test_count]), ("train", order[test_count:])):
            parts[f"x_{split}"].append(images[picked])
            parts[f"y_{split}"].append(np.full(len(picked), label, dtype=np.int64))
    return {key: np.concatenate(value) for key, value in parts.items()}


def save_draft(name: str, draft: dict, *, folder=None, seed: int = 0) -> datasets.DatasetInfo:
    """Keep the drawings as dataset `name` (kind "digit", so Draw preprocesses drawings MNIST-style)."""
    arrays = to_arrays(draft, seed=seed)
    return datasets.save_arrays(name, arrays, class_names=draft["classes"], kind="digit", folder=folder)
