"""Draw your own classes: how good is a model trained on ~20 drawings per class?

Synthesises hand-drawn shapes (circle, square, triangle; random size, position, pen width,
slant and wobble, as the canvas returns them: lib.data.synthdigits.shape_set), keeps 20 per class
as a drawn dataset exactly as the Data page does (lib.data.drawnclasses: MNIST-style
preprocessing, 20% of each class held out), trains the one-click recipe, and scores the
model on 10 NEW drawings per shape, preprocessed as the Draw page does. Repeated over
seeds; also with augmentation off, to show what it buys.

    MNIST_STUDIO_RUNS_DIR=/tmp/drawn-bench python bench/drawn_classes.py [--seeds 3] [--per-class 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.data import drawing, drawnclasses, synthdigits
from lib.execution import pipeline
from lib.models import inference
from lib.training import presets

SHAPES = ("circle", "square", "triangle")
NEW_PER_CLASS = 10


def run_once(seed: int, per_class: int, augment: bool, folder: Path) -> dict:
    images, labels = synthdigits.shape_set(SHAPES, per_class, seed=seed)
    draft = drawnclasses.new_draft(SHAPES)
    for image, label in zip(images, labels):
        drawnclasses.add_drawing(draft, SHAPES[label], image)
    name = f"shapes{seed}{'a' if augment else 'n'}"
    drawnclasses.save_draft(name, draft, folder=folder)
    config = presets.drawn_classes_config(name, augment=augment, seed=seed)
    started = time.perf_counter()
    run, result = pipeline.train_and_save(config, data_dir=folder, runs_dir=folder / "runs")
    seconds = time.perf_counter() - started
    new_images, new_labels = synthdigits.shape_set(SHAPES, NEW_PER_CLASS, seed=1000 + seed)
    processed = np.stack([drawing.preprocess_image(image, mode="digit") for image in new_images])
    probs = inference.predict_unit_images(result.model, processed, normalize=config.normalize)
    accuracy = float((probs.argmax(axis=1) == new_labels).mean())
    return {"seed": seed, "augment": augment, "held_out_accuracy": result.test_accuracy,
            "new_drawings_accuracy": accuracy, "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for augment in (True, False):
            for seed in range(args.seeds):
                row = run_once(seed, args.per_class, augment, Path(tmp))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{args.per_class} drawings per class of {', '.join(SHAPES)}; recipe {presets.DRAWN_CLASSES_RECIPE}")
    print(f"scored on {NEW_PER_CLASS} new drawings per class ({NEW_PER_CLASS * len(SHAPES)} in all), "
          f"{args.seeds} seeds:")
    for augment in (True, False):
        scores = [row["new_drawings_accuracy"] for row in rows if row["augment"] == augment]
        seconds = [row["seconds"] for row in rows if row["augment"] == augment]
        print(f"  augmentation {'on ' if augment else 'off'}: mean {np.mean(scores):.1%} "
              f"(min {min(scores):.1%}, max {max(scores):.1%}), {np.mean(seconds):.0f} s per training")


if __name__ == "__main__":
    main()
