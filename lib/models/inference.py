"""Inference: batched probabilities for test sets, and a fast path for one drawing.

`model.predict` costs tens of milliseconds per call in setup alone; a direct
call of the model on a batch costs well under one, which is what the Draw page
needs to update while the user draws.
"""

from __future__ import annotations

import numpy as np

EVAL_BATCH = 256  # big enough to be throughput-bound, small enough that activations stay ~100 MB
EPSILON = 1e-7  # clip probabilities before the log, as Keras' crossentropy does


def model_input(images: np.ndarray, *, normalize: bool) -> np.ndarray:
    """uint8 (N,H,W[,C]) images -> float32 in the range the model was trained on."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    x = x.astype(np.float32)
    return x / 255.0 if normalize else x


def compiled_forward(model):
    """The model's inference pass traced once into a TensorFlow graph.

    An eager Keras call walks the layers in Python (tens of ms on a busy CPU);
    the traced graph runs them in one go. Cached on the model object.
    """
    forward = getattr(model, "_studio_forward", None)
    if forward is None:
        import tensorflow as tf

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        forward = tf.function(lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True)
        model._studio_forward = forward
    return forward


def predict_proba(model, images: np.ndarray, *, normalize: bool, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Class probabilities (N, K) for uint8 images, in large batches."""
    forward = compiled_forward(model)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = model_input(images[start : start + batch_size], normalize=normalize)
        chunks.append(np.asarray(forward(batch), dtype=np.float32))
    if not chunks:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    return np.concatenate(chunks)


def predict_unit_images(model, images01: np.ndarray, *, normalize: bool) -> np.ndarray:
    """Probabilities for images already in [0, 1] (drawings after preprocessing)."""
    x = np.asarray(images01, dtype=np.float32)
    if x.ndim == 2:
        x = x[np.newaxis]
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if not normalize:
        x = x * 255.0  # this run was trained on raw 0..255 pixels
    return np.asarray(compiled_forward(model)(x), dtype=np.float32)


def prepare_image(run, image: np.ndarray) -> np.ndarray | None:
    """A drawing or picture as `run`'s model sees it: (size, size) values in [0, 1], or None without ink.

    Digit datasets get MNIST's preprocessing (ink box fitted to 20x20, centred by
    mass); other datasets keep the object whole. The one image path of Draw, the
    CLI and Inside.
    """
    from lib.data import drawing

    mode = "digit" if run.dataset.get("kind", "digit") == "digit" else "object"
    size = (run.dataset.get("input_shape") or [28])[0]
    return drawing.preprocess_image(image, mode=mode, size=size)


def predict_image(model, run, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(model input, class probabilities) for one image and a run's model; (None, None) without ink."""
    processed = prepare_image(run, image)
    if processed is None:
        return None, None
    return processed, predict_unit_images(model, processed, normalize=run.normalize)[0]


def score(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Loss, accuracy, per-class accuracy and confusion matrix from probabilities."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = probs.argmax(axis=1)
    picked = np.clip(probs[np.arange(len(labels)), labels], EPSILON, 1.0)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    totals = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), totals, out=np.zeros(num_classes), where=totals > 0)
    return {
        "loss": float(-np.log(picked).mean()),
        "accuracy": float((predicted == labels).mean()),
        "per_class_accuracy": [float(v) for v in per_class],
        "confusion": confusion.tolist(),
    }


def top_k(probs: np.ndarray, class_names, k: int = 3) -> list[tuple[str, float]]:
    """The k most probable classes, best first, as (name, probability)."""
    order = np.argsort(probs)[::-1][:k]
    return [(str(class_names[i]), float(probs[i])) for i in order]
