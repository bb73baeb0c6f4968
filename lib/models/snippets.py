"""Short, runnable Python that classifies a picture with an exported model, one per export format.

Each snippet stands alone (numpy, Pillow and the format's runtime: TensorFlow, ai-edge-litert or
onnxruntime) and spells out the preprocessing the run's model needs, the same steps as
lib.data.drawing: for digits MNIST's convention (ink light on black, cropped, scaled to fit 20x20,
centred by mass in 28x28), for other grayscale models the ink fitted to the whole field, for colour
models the picture padded to a square; then the value range the model was trained on. Tests run
every snippet on a test image and compare its answer with the app's.
"""

from __future__ import annotations

from lib.models.exports import FORMATS, ModelFacts

RUNTIME_PACKAGES = {"savedmodel": "tensorflow", "tflite": "ai-edge-litert", "tflite-quant": "ai-edge-litert",
                    "onnx": "onnxruntime"}

HEADER = '''"""Classify a picture with "{name}" exported as {title} (made by MNIST Studio).

    pip install {package} numpy pillow
    python {script} {file_name} picture.png
"""

import sys

import numpy as np
from PIL import Image{image_ops}
{runtime_import}
CLASS_NAMES = {class_names}
SIZE = {size}  # the model takes {shape} images
'''

INK = '''

def border(values):
    return np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])


def load_ink(path):
    """The picture as ink strength in [0, 1]: 0 for the background, whatever its colour."""
    image = Image.open(path)
    if "A" in image.getbands() or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"), dtype=np.float32)[..., 3] / 255
        if np.median(border(alpha)) < 0.5:  # drawn on a transparent canvas: the alpha channel is the ink
            return alpha
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255
    background = np.median(border(gray))
    if background - gray.min() >= gray.max() - background:  # dark ink on light paper, as most drawings
        return np.clip(background - gray, 0, 1)
    return np.clip(gray - background, 0, 1)  # light ink on black, as in {dataset}


def preprocess(path):
    """The picture as the model saw its training images,
    {steps}"""
    ink = load_ink(path)
    peak = ink.max()
    if peak < 0.1:
        sys.exit("No ink found: the picture is blank.")
    ink = np.clip((ink - 0.1 * peak) / (0.9 * peak), 0, 1)  # faint grain and noise -> 0, the strongest ink -> 1
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0), np.flatnonzero(ink.max(axis=0) > 0)
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # crop to the ink
    scale = {box} / max(ink.shape)  # {box_why}
    width, height = max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.LANCZOS  # antialiased
    ink = np.clip(np.asarray(Image.fromarray(ink).resize((width, height), resample)), 0, 1)
    ink = ink / ink.max()
{place}    field = np.zeros((SIZE, SIZE), dtype=np.float32)
    field[top : top + height, left : left + width] = ink
    return field[np.newaxis, :, :, np.newaxis]{scale_back}  # a batch of one: (1, SIZE, SIZE, 1)
'''

PLACE_BY_MASS = '''    # MNIST put each digit's centre of mass at the centre of the field (whole pixels).
    centre_row = ink.sum(axis=1) @ np.arange(height) / ink.sum()
    centre_col = ink.sum(axis=0) @ np.arange(width) / ink.sum()
    top = min(max(round(SIZE / 2 - centre_row), 0), SIZE - height)
    left = min(max(round(SIZE / 2 - centre_col), 0), SIZE - width)
'''

PLACE_CENTRED = '''    top, left = (SIZE - height) // 2, (SIZE - width) // 2  # the ink's box centred in the field
'''

COLOUR = '''

def preprocess(path):
    """The picture as the model saw its training images: RGB, the longer side scaled to SIZE with the
    aspect kept (padded with the colour of its corner), {range_text}, shape (1, SIZE, SIZE, 3)."""
    image = Image.open(path).convert("RGB")
    image = ImageOps.pad(image, (SIZE, SIZE), color=image.getpixel((0, 0)))
    return np.asarray(image, dtype=np.float32)[np.newaxis]{scale_down}
'''

RUNTIMES = {
    "savedmodel": ('import zipfile\nimport tensorflow as tf\n', '''

def predict(model_file, x):
    folder = model_file.removesuffix(".zip")
    with zipfile.ZipFile(model_file) as archive:
        archive.extractall(folder)  # holds savedmodel/: saved_model.pb and variables/
    model = tf.saved_model.load(folder + "/savedmodel")
    return model.serve(tf.constant(x)).numpy()[0]
'''),
    "tflite": ('from ai_edge_litert.interpreter import Interpreter\n', '''

def predict(model_file, x):
    interpreter = Interpreter(model_path=model_file)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
'''),
    "onnx": ('import onnxruntime\n', '''

def predict(model_file, x):
    session = onnxruntime.InferenceSession(model_file, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0][0]
'''),
}
RUNTIMES["tflite-quant"] = RUNTIMES["tflite"]

MAIN = '''

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: python {sys.argv[0]} MODEL_FILE PICTURE")
    probabilities = predict(sys.argv[1], preprocess(sys.argv[2]).astype(np.float32))
    for k in np.argsort(probabilities)[::-1][:3]:
        print(f"{CLASS_NAMES[k]}\\t{probabilities[k]:.2%}")
'''


def script_name(fmt: str) -> str:
    return f"classify_{fmt.replace('-', '_')}.py"


def snippet(fmt: str, facts: ModelFacts, *, name: str = "model", file_name: str | None = None) -> str:
    """A runnable script that classifies one picture with the `fmt` export of a model described by `facts`."""
    if fmt not in RUNTIMES:
        raise ValueError(f"Unknown export format: {fmt!r}. Known: {', '.join(RUNTIMES)}.")
    spec = FORMATS[fmt]
    height, width, channels = facts.input_shape
    runtime_import, predict = RUNTIMES[fmt]
    colour = channels == 3
    text = HEADER.format(name=name.replace('"', "'"), title=spec.title, package=RUNTIME_PACKAGES[fmt],
                         script=script_name(fmt), file_name=file_name or spec.file_name,
                         image_ops=", ImageOps" if colour else "", runtime_import=runtime_import,
                         class_names=repr(list(facts.class_names)), size=height, shape=f"{height}x{width}x{channels}")
    range_text = "values in [0, 1] (pixels / 255)" if facts.normalize else "raw pixel values 0..255"
    if colour:
        text += COLOUR.format(range_text=range_text, scale_down=" / 255" if facts.normalize else "")
    else:
        digit = facts.kind == "digit"
        box = "round(SIZE * 20 / 28)" if digit else "SIZE"
        lines = (["MNIST's convention: light ink on black, cropped to the ink, the longer side scaled",
                  "to 20 px (of 28), the ink's centre of mass put at the centre of the field,"] if digit else
                 ["light ink on black, cropped to the ink, the longer side scaled to the whole field,",
                  "the ink's box centred,"])
        lines += [f"{range_text}.", "(The app also evens out stroke widths and drops specks; a clean picture needs",
                  "neither.)", ""]
        steps = "\n    ".join(lines)
        text += INK.format(dataset=facts.dataset_title or facts.dataset or "the dataset", steps=steps, box=box,
                           box_why="digits fit a 20x20 box in the 28x28 field" if digit else "objects fill the field",
                           place=PLACE_BY_MASS if digit else PLACE_CENTRED,
                           scale_back="" if facts.normalize else " * 255.0")
    return text + predict + MAIN
