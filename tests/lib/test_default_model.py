"""The bundled default model reads drawn digits through the app's preprocessing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lib.data import drawing, synthdigits
from lib.models import inference
from lib.store import runs

PROJECT = Path(__file__).resolve().parents[2]


def test_default_model_is_bundled_small_and_read_only():
    run = runs.bundled_run()
    assert run is not None and run.read_only and run.run_id == "default"
    assert run.model_path.stat().st_size < 5 * 1024 * 1024
    assert run.meta["arch"] == "cnn-best" and run.meta["config"]["augment"] is True


def test_default_model_reads_rendered_and_drawn_digits():
    """Digits drawn as strokes or rendered from fonts, at random sizes, places, slants and pens."""
    model = runs.load_model(runs.bundled_run())
    images, labels = synthdigits.digit_set(20, seed=2024, canvas=280)
    processed = np.stack([drawing.preprocess_image(image) for image in images])
    predicted = inference.predict_unit_images(model, processed, normalize=True).argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    assert accuracy >= 0.90, f"default model read {accuracy:.1%} of 200 synthetic digits"


def test_cli_predict_with_the_default_model_uses_the_app_preprocessing(tmp_path):
    rng = np.random.default_rng(3)
    files = []
    for digit in (1, 7, 0):
        image = synthdigits.draw_digit(digit, rng, canvas=280, style="stroke")
        path = tmp_path / f"digit_{digit}.png"
        Image.fromarray(image).save(path)
        files.append((digit, path))
    done = subprocess.run([sys.executable, "-m", "lib", "predict", "--model", "default",
                           *(str(path) for _, path in files), "--json"],
                          capture_output=True, text=True, cwd=PROJECT, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    model = runs.load_model(runs.bundled_run())
    for (_digit, path), line in zip(files, lines, strict=True):
        processed = drawing.preprocess_image(drawing.load_image_file(path))
        expected = inference.predict_unit_images(model, processed, normalize=True)[0]
        assert line["label"] == int(expected.argmax())
        np.testing.assert_allclose(line["probabilities"], expected, atol=1e-5)
