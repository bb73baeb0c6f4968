"""Inside the network: layer-by-layer activations, saliency, learned weights and the embedding.

Works on any model that is one chain of layers (keras.Sequential: every zoo model and
every run the app trains). One traced TensorFlow graph per model computes, in one call,
every layer's output, the class probabilities, gradient x input and (for CNNs) Grad-CAM
and their product, so the Inside page can follow a drawing stroke by stroke. TensorFlow is imported only
inside functions; everything returned is NumPy.

Saliency maps are (H, W) arrays over the model input, non-negative, where a larger value
means "this pixel pushed the model towards the class". Grad-CAM (CNNs) shows which regions
of a convolutional feature map mattered, blown up to the input size; gradient x input (any
model) shows which inked pixels pushed towards the class. CNNs lead with "Grad-CAM x input",
Grad-CAM times the input's pixels: Grad-CAM says which part of the digit, the pixels put it on
the strokes drawn there (Grad-CAM alone, 4-pixel cells blown up, often peaks beside the ink).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lib.i18n import N_, _
from lib.models import inference

SALIENCY_SHARE = 0.10  # the box bounds the pixels that hold this share of the saliency mass
# Grad-CAM's map keeps at least this share of the input's side (7x7 on 28x28); see grad_cam_index.
CAM_MIN_SCALE = 0.25
# Grad-CAM x input carries this much of gradient x input (both scaled to peak 1): nothing when
# Grad-CAM finds evidence on the ink, the pixels that pushed towards the class when it finds none
# (2 of 500 drawn digits on the bundled CNN), instead of an empty map.
GXI_TRACE = 0.01
GRAD_CAM = "Grad-CAM"
GRADIENT_X_INPUT = N_("gradient x input")  # method names: keys (HOW_TO_READ, --json) in English, shown through _()
GRAD_CAM_X_INPUT = N_("Grad-CAM x input")
MAP_POINTS = 2000  # test images in the embedding map
MAP_SEED = 0
FEATURE_BATCH = 256
PCA_DIMS_BEFORE_TSNE = 50  # t-SNE on 50 PCA components: the usual speed-up, same picture
TSNE_PERPLEXITY = 30.0
TSNE_ITERATIONS = 500  # the clusters settle well before scikit-learn's default 1000; half the wait
GALLERY_SIZE = 12
# Layers that sit between a convolution and the next pooling/flatten without changing the grid.
_CONV_FOLLOWERS = ("BatchNormalization", "Activation", "Dropout", "ReLU", "LeakyReLU", "SpatialDropout2D")
# Layers that keep the pixels where they are, so a Dense layer behind only these sees the image.
_PIXEL_PRESERVING = ("Flatten", "Dropout", "Rescaling", "Reshape", "InputLayer")
_CACHE_ATTR = "_studio_inside"


class NotIntrospectable(ValueError):
    """A model Inside cannot look into; the message names what is missing."""


@dataclass(frozen=True)
class LayerInfo:
    """One layer of the chain, as the Inside page titles it."""

    index: int  # 1-based, as in architectures.summarize
    name: str
    type: str  # Keras class name, e.g. "Conv2D"
    output_shape: tuple  # without the batch axis
    params: int

    @property
    def title(self) -> str:
        shape = " x ".join(str(n) for n in self.output_shape)
        return _("{index}. {type} · {shape} · {params:,} params").format(index=self.index, type=self.type, shape=shape,
                                                                       params=self.params)


@dataclass(frozen=True)
class Analysis:
    """Everything Inside shows for one input."""

    layers: list[LayerInfo]
    activations: list[np.ndarray]  # one per layer, output_shape without the batch axis
    probs: np.ndarray  # (K,)
    target: int  # the class the saliency explains
    gradient_x_input: np.ndarray  # (H, W), >= 0
    grad_cam: np.ndarray | None  # (H, W), >= 0, or None for models without a convolution
    grad_cam_layer: str | None  # the layer whose output Grad-CAM weighs (the block's last, e.g. its activation)
    grad_cam_conv: LayerInfo | None = None  # the Conv2D that block starts with: what Inside names
    grad_cam_x_input: np.ndarray | None = None  # (H, W), >= 0: Grad-CAM times the pixels (+ GXI_TRACE)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def saliency(self) -> np.ndarray:
        """The map Inside leads with: Grad-CAM x input for CNNs, gradient x input otherwise."""
        return self.grad_cam_x_input if self.grad_cam_x_input is not None else self.gradient_x_input

    @property
    def saliency_method(self) -> str:
        return GRAD_CAM_X_INPUT if self.grad_cam_x_input is not None else GRADIENT_X_INPUT

    @property
    def saliency_layer(self) -> str | None:
        """The convolution Grad-CAM is taken on; None when the map comes from the pixels alone."""
        return None if self.grad_cam_conv is None else self.grad_cam_conv.name

    @property
    def saliency_resolution(self) -> tuple[int, int]:
        """(rows, columns) of the map the saliency is located with: Grad-CAM's grid, or the input's."""
        if self.grad_cam_conv is not None:
            return tuple(self.grad_cam_conv.output_shape[:2])
        return tuple(self.gradient_x_input.shape)

    @property
    def saliency_source(self) -> str:
        """Where the map comes from, for a title: e.g. "Grad-CAM on conv2d_9 (7x7) x input (28x28)"."""
        if self.grad_cam_conv is None:
            return self.gradient_x_input_source
        return _("{grad_cam} x input ({size})").format(grad_cam=self.grad_cam_source,
                                                       size=_size_text(self.gradient_x_input.shape))

    @property
    def gradient_x_input_source(self) -> str:
        """e.g. "gradient x input (28x28)"."""
        return _("gradient x input ({size})").format(size=_size_text(self.gradient_x_input.shape))

    @property
    def grad_cam_source(self) -> str | None:
        """e.g. "Grad-CAM on conv2d_9 (7x7)"; None for models without a convolution."""
        if self.grad_cam_conv is None:
            return None
        return _("Grad-CAM on {layer} ({size})").format(layer=self.grad_cam_conv.name,
                                                        size=_size_text(self.saliency_resolution))


@dataclass(frozen=True)
class FirstLayerWeights:
    """What the first weighted layer learned, as small images."""

    kind: str  # "conv_filters" | "unit_weights" | "class_templates"
    layer_name: str
    images: np.ndarray  # (N, h, w) float32, signed
    titles: list[str]


@dataclass(frozen=True)
class EmbeddingMap:
    """Penultimate-layer features of test images, laid out in 2-D."""

    indices: np.ndarray  # (N,) indices into the test split
    coords: np.ndarray  # (N, 2)
    labels: np.ndarray  # (N,) true classes
    predicted: np.ndarray  # (N,)
    method: str  # "PCA" | "t-SNE"
    layer_name: str

    @property
    def wrong(self) -> np.ndarray:
        return self.labels != self.predicted


# ---------------------------------------------------------------- structure

# Why Inside cannot look into a model: English (the CLI), marked for the catalog and shown translated on the
# Inside page (lib.i18n.translate_filled). The model's own names and shapes stay as they are.
NOT_SEQUENTIAL = N_("This model is a {kind}, not a keras.Sequential stack of layers, so Inside cannot tell which layer "
                    "feeds which. Missing: a Sequential model (one chain of layers, one input, one output), as every "
                    "model trained in this app is.")
NO_LAYERS = N_("This model has no layers. Missing: at least one layer after its input.")
NO_INPUT_SHAPE = N_("This model was saved without an input shape. Missing: a known input shape (height, width[, "
                    "channels]).")
NOT_IMAGES = N_("This model takes inputs of shape {shape}. Missing: an image input of shape (height, width) or (height, "
                "width, channels).")
NO_OUTPUT_SHAPE = N_("Layer {index} ({name}) has no known output shape. Missing: a model built on a fixed input shape.")
SINGLE_LAYER = N_("This model has a single layer. Missing: a layer before the output layer.")


def layer_chain(model) -> list[LayerInfo]:
    """The model's layers in forward order; NotIntrospectable when it is not one chain of layers."""
    cached = _cache(model).get("layers")
    if cached is not None:
        return cached
    import keras

    kind = type(model).__name__
    if not isinstance(model, keras.Sequential):
        raise NotIntrospectable(NOT_SEQUENTIAL.format(kind=kind))
    if not model.layers:
        raise NotIntrospectable(NO_LAYERS)
    try:
        input_shape = tuple(model.input_shape)
    except (AttributeError, ValueError):
        raise NotIntrospectable(NO_INPUT_SHAPE) from None
    if len(input_shape) not in (3, 4) or any(n is None for n in input_shape[1:]):
        raise NotIntrospectable(NOT_IMAGES.format(shape=input_shape[1:]))
    infos = []
    for index, layer in enumerate(model.layers, start=1):
        try:
            shape = tuple(int(n) for n in layer.output.shape[1:])
        except (AttributeError, ValueError, TypeError):
            raise NotIntrospectable(NO_OUTPUT_SHAPE.format(index=index, name=layer.name)) from None
        infos.append(LayerInfo(index, layer.name, type(layer).__name__, shape, int(layer.count_params())))
    _cache(model)["layers"] = infos
    return infos


def image_shape(model) -> tuple[int, int]:
    """(height, width) of the model input."""
    layer_chain(model)
    return tuple(int(n) for n in model.input_shape[1:3])


def grad_cam_conv_index(layers: list[LayerInfo], image_hw: tuple[int, int]) -> int | None:
    """0-based index of the Conv2D Grad-CAM is taken on: the last one whose output keeps at least
    CAM_MIN_SCALE of the input's height and width (7x7 on 28x28), else the last one; None without one.

    Why: the deepest convolution is the most class-specific, but a 3x3 map (cnn-tf-tutorial's last)
    has cells of 9x9 pixels, a third of a digit. One layer earlier is not the fix: on the bundled
    CNN, Grad-CAM at 14x14 is all zero for drawn 0s and at 28x28 barely class-specific. So Grad-CAM
    stays on the deepest map that still has 4-pixel cells, and the input's pixels (see
    Analysis.saliency) bring it onto the strokes.
    """
    convs = [i for i, info in enumerate(layers) if info.type == "Conv2D"]
    if not convs:
        return None
    fine = [i for i in convs
            if all(side >= CAM_MIN_SCALE * full for side, full in zip(layers[i].output_shape[:2], image_hw))]
    return fine[-1] if fine else convs[-1]


def grad_cam_index(layers: list[LayerInfo], image_hw: tuple[int, int]) -> int | None:
    """0-based index of the layer whose output Grad-CAM weighs: the Conv2D of grad_cam_conv_index with
    the BatchNormalization/activation/dropout layers right after it; None without a Conv2D."""
    index = grad_cam_conv_index(layers, image_hw)
    if index is None:
        return None
    while index + 1 < len(layers) and layers[index + 1].type in _CONV_FOLLOWERS and len(layers[index + 1].output_shape) == 3:
        index += 1
    return index


def model_batch(model, images01: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """Images in [0, 1] ((H, W), (N, H, W) or with channels) -> the float32 batch the model takes."""
    layer_chain(model)
    x = np.asarray(images01, dtype=np.float32)
    input_shape = tuple(model.input_shape[1:])
    if x.shape == input_shape or x.shape == input_shape[:2]:
        x = x[np.newaxis]
    x = x.reshape((len(x), *input_shape))
    return x if normalize else x * 255.0  # runs trained on raw 0..255 pixels


# ---------------------------------------------------------------- one input


def analyze(model, image01: np.ndarray, *, normalize: bool = True, target: int | None = None) -> Analysis:
    """Every layer's output, the probabilities and the saliency maps for one image in [0, 1].

    `target` is the class to explain; None explains the predicted class.
    """
    return analyze_batch(model, image01[np.newaxis] if np.ndim(image01) == 2 else image01, normalize=normalize,
                         targets=None if target is None else [target])[0]


def analyze_batch(model, images01: np.ndarray, *, normalize: bool = True, targets=None) -> list[Analysis]:
    """`analyze` for a batch of images (N, H, W) in one graph call."""
    layers = layer_chain(model)
    x = model_batch(model, images01, normalize=normalize)
    num_classes = layers[-1].output_shape[-1]
    wanted = np.full(len(x), -1, dtype=np.int32) if targets is None else np.asarray(targets, dtype=np.int32)
    if len(wanted) != len(x):
        raise ValueError(f"Got {len(wanted)} target classes for {len(x)} images.")
    if wanted.size and wanted.max() >= num_classes:
        raise ValueError(f"Class {int(wanted.max())} does not exist: the model has {num_classes} classes.")
    outputs, probs, chosen, gxi, cam, cam_x_input = _analysis_graph(model)(x, wanted)
    outputs = [np.asarray(o, dtype=np.float32) for o in outputs]
    probs, chosen, gxi, cam, cam_x_input = (np.asarray(v, dtype=np.float32)
                                            for v in (probs, chosen, gxi, cam, cam_x_input))
    cam_index = grad_cam_index(layers, image_shape(model))
    conv_index = grad_cam_conv_index(layers, image_shape(model))
    results = []
    for i in range(len(x)):
        results.append(Analysis(
            layers=layers,
            activations=[o[i] for o in outputs],
            probs=probs[i],
            target=int(chosen[i]),
            gradient_x_input=gxi[i],
            grad_cam=None if cam_index is None else cam[i],
            grad_cam_layer=None if cam_index is None else layers[cam_index].name,
            grad_cam_conv=None if conv_index is None else layers[conv_index],
            grad_cam_x_input=None if cam_index is None else cam_x_input[i],
        ))
    return results


def _analysis_graph(model):
    """One traced function per model: (x, targets) -> (layer outputs, probs, targets, gxi, cam, cam x gxi)."""
    cache = _cache(model)
    if "graph" in cache:
        return cache["graph"]
    import tensorflow as tf

    layers = layer_chain(model)
    cam_index = grad_cam_index(layers, image_shape(model))
    keras_layers = list(model.layers)
    last = keras_layers[-1]
    # Saliency explains the score before softmax (the logit), as Grad-CAM's paper does.
    logits_from_last = type(last).__name__ == "Dense" and getattr(last.activation, "__name__", "") == "softmax"
    height, width = image_shape(model)
    spec_x = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    spec_t = tf.TensorSpec((None,), tf.int32)

    def run(x, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            h, outputs, feature_map, before_last = x, [], None, x
            for i, layer in enumerate(keras_layers):
                before_last = h
                h = layer(h, training=False)
                outputs.append(h)
                if i == cam_index:
                    feature_map = h
            probs = tf.cast(h, tf.float32)
            if logits_from_last:
                scores = tf.matmul(tf.cast(before_last, tf.float32), tf.cast(last.kernel, tf.float32))
                scores = scores + tf.cast(last.bias, tf.float32) if last.use_bias else scores
            else:
                scores = probs
            predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
            chosen = tf.where(targets < 0, predicted, targets)
            picked = tf.reduce_sum(tf.gather(scores, chosen, axis=1, batch_dims=1))
        sources = [x] if feature_map is None else [x, feature_map]
        grads = tape.gradient(picked, sources)
        pixel_grad = grads[0] if grads[0] is not None else tf.zeros_like(x)
        gxi = tf.nn.relu(tf.reshape(pixel_grad * x, (-1, height, width, _channels(model))))
        gxi = tf.reduce_sum(gxi, axis=-1)
        if feature_map is None:
            cam = tf.zeros_like(gxi)
            cam_x_input = gxi
        else:
            fmap = tf.cast(feature_map, tf.float32)
            fgrad = tf.cast(grads[1], tf.float32) if grads[1] is not None else tf.zeros_like(fmap)
            weights = tf.reduce_mean(fgrad, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1, keepdims=True))
            cam = tf.image.resize(cam, (height, width), method="bilinear")[..., 0]
            # Grad-CAM times the pixels: zero off the ink, Grad-CAM's region on the strokes drawn there.
            pixels = tf.reduce_mean(tf.reshape(x, (-1, height, width, _channels(model))), axis=-1)
            cam_x_input = _to_peak_one(tf, cam * pixels) + GXI_TRACE * _to_peak_one(tf, gxi)
        return [tf.cast(o, tf.float32) for o in outputs], probs, chosen, gxi, cam, cam_x_input

    graph = tf.function(run, input_signature=[spec_x, spec_t], reduce_retracing=True)
    cache["graph"] = graph
    return graph


def _to_peak_one(tf, maps):
    """(N, H, W) maps >= 0 scaled so each peaks at 1 (all-zero maps stay zero)."""
    return tf.math.divide_no_nan(maps, tf.reduce_max(maps, axis=(1, 2), keepdims=True))


def _size_text(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def _channels(model) -> int:
    shape = model.input_shape[1:]
    return int(shape[2]) if len(shape) == 3 else 1


def saliency_box(saliency: np.ndarray, share: float = SALIENCY_SHARE) -> list[int] | None:
    """[top, left, bottom, right] (inclusive pixel rows/columns) bounding the fewest most salient
    pixels that hold `share` of the total saliency mass; None for an all-zero map."""
    values = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    if values.ndim != 2:
        raise ValueError(f"A saliency map is 2-D (height, width); got shape {values.shape}.")
    total = values.sum()
    if not total > 0 or not math.isfinite(total):
        return None
    flat = values.ravel()
    order = np.argsort(-flat, kind="stable")
    cumulative = np.cumsum(flat[order])
    count = int(np.searchsorted(cumulative, share * total)) + 1
    rows, cols = np.unravel_index(order[:count], values.shape)
    return [int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())]


def normalized(saliency: np.ndarray) -> np.ndarray:
    """A saliency map scaled to [0, 1] for display (all zeros stay zeros)."""
    values = np.clip(np.asarray(saliency, dtype=np.float32), 0, None)
    peak = float(values.max()) if values.size else 0.0
    return values / peak if peak > 0 else values


# ---------------------------------------------------------------- learned weights


def is_softmax_regression(model) -> bool:
    """True for Flatten -> Dense(softmax) models: their weights are one template per class."""
    layers = layer_chain(model)
    weighted = [info for info in layers if info.params > 0]
    return len(weighted) == 1 and weighted[0] is layers[-1] and all(
        info.type in _PIXEL_PRESERVING for info in layers[:-1])


def first_layer_weights(model, class_names=None, max_images: int = 64) -> FirstLayerWeights | None:
    """First-layer conv filters, or (Dense-first models) each unit's weights as an input-sized
    image; for softmax regression, the 10 class templates. None if neither applies."""
    layers = layer_chain(model)
    keras_layers = list(model.layers)
    for info, layer in zip(layers, keras_layers):
        if info.type == "Conv2D":
            kernel = np.asarray(layer.kernel, dtype=np.float32)  # (kh, kw, in, filters)
            images = kernel.mean(axis=2).transpose(2, 0, 1)[:max_images]
            return FirstLayerWeights("conv_filters", info.name, images, [_("filter {i}").format(i=i) for i in range(len(images))])
        if info.type == "Dense":
            if not all(earlier.type in _PIXEL_PRESERVING for earlier in layers[: info.index - 1]):
                return None
            height, width = image_shape(model)
            kernel = np.asarray(layer.kernel, dtype=np.float32)  # (inputs, units)
            channels = kernel.shape[0] // (height * width)
            if channels * height * width != kernel.shape[0]:
                return None
            images = kernel.T.reshape(-1, height, width, channels).mean(axis=-1)[:max_images]
            if is_softmax_regression(model):
                names = list(class_names) if class_names is not None else [str(i) for i in range(len(images))]
                return FirstLayerWeights("class_templates", info.name, images, [_("class {name}").format(name=n) for n in names])
            return FirstLayerWeights("unit_weights", info.name, images, [_("unit {i}").format(i=i) for i in range(len(images))])
        if info.params > 0:
            return None
    return None


# ---------------------------------------------------------------- the embedding


def penultimate_features(model, images: np.ndarray, *, normalize: bool,
                         on_progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) output of the layer before the last, and the (N, K) probabilities, for uint8
    test images, in batches: one forward pass gives both."""
    layers = layer_chain(model)
    if len(layers) < 2:
        raise NotIntrospectable(SINGLE_LAYER)
    forward = _feature_graph(model)
    features, probs = [], []
    for start in range(0, len(images), FEATURE_BATCH):
        batch = inference.model_input(images[start : start + FEATURE_BATCH], normalize=normalize)
        batch = batch.reshape((len(batch), *model.input_shape[1:]))
        feature_batch, prob_batch = forward(batch)
        features.append(np.asarray(feature_batch, dtype=np.float32).reshape(len(batch), -1))
        probs.append(np.asarray(prob_batch, dtype=np.float32))
        if on_progress is not None:
            on_progress(min(1.0, (start + len(batch)) / max(1, len(images))))
    if not features:
        return (np.zeros((0, math.prod(layers[-2].output_shape)), dtype=np.float32),
                np.zeros((0, layers[-1].output_shape[-1]), dtype=np.float32))
    return np.concatenate(features), np.concatenate(probs)


def _feature_graph(model):
    cache = _cache(model)
    if "features" not in cache:
        import tensorflow as tf

        *body, last = list(model.layers)

        def run(x):
            h = x
            for layer in body:
                h = layer(h, training=False)
            return tf.cast(h, tf.float32), tf.cast(last(h, training=False), tf.float32)

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        cache["features"] = tf.function(run, input_signature=[spec], reduce_retracing=True)
    return cache["features"]


def pca_2d(features: np.ndarray) -> np.ndarray:
    """The first two principal components (N, 2), signs fixed so the result is deterministic."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"PCA needs at least 2 feature rows; got shape {x.shape}.")
    x = x - x.mean(axis=0)
    # Eigenvectors of the smaller of the two Gram matrices: a dense SVD of 2,000 rows is
    # seconds on a busy CPU, a 128 x 128 (or 784 x 784) eigenproblem milliseconds.
    if x.shape[1] <= x.shape[0]:
        _, vectors = np.linalg.eigh(x.T @ x)
        components = vectors[:, ::-1][:, :2].T
    else:
        _, vectors = np.linalg.eigh(x @ x.T)
        components = (x.T @ vectors[:, ::-1][:, :2]).T
        components /= np.maximum(np.linalg.norm(components, axis=1, keepdims=True), 1e-12)
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    coords = x @ (components * signs[:, None]).T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords.astype(np.float32)


def tsne_2d(features: np.ndarray, *, seed: int = MAP_SEED, perplexity: float = TSNE_PERPLEXITY) -> np.ndarray:
    """t-SNE map (N, 2) of the features, deterministic for a seed (scikit-learn, Barnes-Hut)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) < 5:
        raise ValueError(f"t-SNE needs at least 5 feature rows; got shape {x.shape}.")
    # One BLAS/OpenMP thread: 5x faster on a busy 2-core machine (threads spin waiting for each
    # other), and the same map whatever the core count.
    with threadpool_limits(limits=1):
        if x.shape[1] > PCA_DIMS_BEFORE_TSNE and len(x) > PCA_DIMS_BEFORE_TSNE:
            x = PCA(n_components=PCA_DIMS_BEFORE_TSNE, random_state=seed).fit_transform(x)
        perplexity = min(perplexity, (len(x) - 1) / 3)
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                    max_iter=TSNE_ITERATIONS, random_state=seed, n_jobs=1)
        return tsne.fit_transform(x).astype(np.float32)


def sample_indices(num_images: int, count: int = MAP_POINTS, seed: int = MAP_SEED) -> np.ndarray:
    """A sorted random sample of test indices, the same for a seed."""
    count = min(count, num_images)
    return np.sort(np.random.default_rng(seed).choice(num_images, size=count, replace=False))


def embedding_map(model, images: np.ndarray, labels: np.ndarray, *, normalize: bool, method: str = "pca",
                  count: int = MAP_POINTS, seed: int = MAP_SEED,
                  on_progress: Callable[[float], None] | None = None) -> EmbeddingMap:
    """A 2-D map of `count` test images from the penultimate layer: "pca" or "tsne"."""
    if method not in ("pca", "tsne"):
        raise ValueError(f"Unknown map method {method!r}: use 'pca' or 'tsne'.")
    indices = sample_indices(len(images), count, seed)
    share = 0.5 if method == "tsne" else 0.9  # t-SNE itself takes most of the time
    progress = (lambda f: on_progress(share * f)) if on_progress else None
    features, probs = penultimate_features(model, images[indices], normalize=normalize, on_progress=progress)
    coords = tsne_2d(features, seed=seed) if method == "tsne" else pca_2d(features)
    if on_progress is not None:
        on_progress(1.0)
    return EmbeddingMap(indices, coords, np.asarray(labels)[indices].astype(np.int64), probs.argmax(axis=1),
                        "t-SNE" if method == "tsne" else "PCA", layer_chain(model)[-2].name)


# ---------------------------------------------------------------- misclassified gallery


@dataclass(frozen=True)
class GalleryItem:
    index: int  # into the test split
    label: int
    predicted: int
    top3: list[tuple[int, float]]
    saliency: np.ndarray  # (H, W) for the predicted class, >= 0


def misclassified(model, images: np.ndarray, labels: np.ndarray, *, normalize: bool, probs: np.ndarray | None = None,
                  limit: int = GALLERY_SIZE) -> list[GalleryItem]:
    """The first `limit` test images the model gets wrong, each with its saliency and top-3."""
    if probs is None:
        probs = inference.predict_proba(model, images, normalize=normalize)
    labels = np.asarray(labels, dtype=np.int64)
    wrong = np.flatnonzero(probs.argmax(axis=1) != labels)[:limit]
    if not len(wrong):
        return []
    unit = np.asarray(images[wrong], dtype=np.float32) / 255.0
    analyses = analyze_batch(model, unit, normalize=normalize)
    items = []
    for index, analysis in zip(wrong, analyses):
        order = np.argsort(probs[index])[::-1][:3]
        items.append(GalleryItem(int(index), int(labels[index]), int(order[0]),
                                 [(int(k), float(probs[index][k])) for k in order], analysis.saliency))
    return items


# ---------------------------------------------------------------- helpers


def _cache(model) -> dict:
    """Per-model state (traced graphs, layer list), kept on the model object like inference's forward."""
    cache = getattr(model, _CACHE_ATTR, None)
    if cache is None:
        cache = {}
        setattr(model, _CACHE_ATTR, cache)
    return cache
