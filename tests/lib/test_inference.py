"""lib.models.inference: the one "run + image -> probabilities" path of Draw, the CLI and Inside."""

import json

import numpy as np
from PIL import Image

from lib import cli
from lib.models import inference
from lib.store import runs


def stroke_image(side: int = 280) -> np.ndarray:
    """A white bar on black, like a '1' drawn on the canvas."""
    image = np.zeros((side, side), dtype=np.uint8)
    image[side // 5 : side * 4 // 5, side // 2 - 10 : side // 2 + 10] = 255
    return image


def fake_run(input_shape, kind="digit", normalize=True) -> runs.RunInfo:
    meta = {"config": {"normalize": normalize}, "dataset": {"input_shape": input_shape, "kind": kind,
                                                            "class_names": ["a", "b", "c"]}}
    return runs.RunInfo("fake", None, meta)


def test_prepare_image_fits_the_runs_input_size_and_kind():
    assert inference.prepare_image(fake_run([28, 28, 1]), stroke_image()).shape == (28, 28)
    assert inference.prepare_image(fake_run([32, 32, 1], kind="object"), stroke_image()).shape == (32, 32)
    assert inference.prepare_image(fake_run([28, 28, 1]), np.zeros((280, 280), np.uint8)) is None


def tiny_model(side: int):
    import keras

    inputs = keras.Input((side, side, 1))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs)


def test_predict_image_scales_for_runs_trained_on_raw_pixels():
    model = tiny_model(28)
    processed, unit = inference.predict_image(model, fake_run([28, 28, 1]), stroke_image())
    _, raw = inference.predict_image(model, fake_run([28, 28, 1], normalize=False), stroke_image())
    np.testing.assert_allclose(unit, inference.predict_unit_images(model, processed, normalize=True)[0], rtol=1e-6)
    np.testing.assert_allclose(raw, inference.predict_unit_images(model, processed * 255.0, normalize=True)[0],
                               rtol=1e-5)
    assert inference.predict_image(model, fake_run([28, 28, 1]), np.zeros((50, 50), np.uint8)) == (None, None)


def test_cli_predicts_with_a_bare_keras_file_at_its_own_input_size(tmp_path, capsys):
    """A .keras file from elsewhere (16x16 input, 3 classes) is fed 16x16 images, not MNIST's 28x28."""
    model_path = tmp_path / "elsewhere.keras"
    tiny_model(16).save(model_path)
    image_path = tmp_path / "one.png"
    Image.fromarray(stroke_image()).save(image_path)
    code = cli.main(["predict", "--model", str(model_path), str(image_path), "--json"])
    line = json.loads(capsys.readouterr().out.strip())
    assert code == 0
    assert len(line["probabilities"]) == 3 and line["class_name"] == str(line["label"])
