"""Model architectures as data: the zoo, shape inference, validation and a Keras builder.

A model is a list of plain layer-spec dicts, e.g.
`{"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"}`.
Everything except `build_model` is pure Python, so pages can show shapes, parameter
counts and plain-language errors without importing TensorFlow. Every model takes
(height, width, channels) images; Flatten (or GlobalAveragePooling2D) turns them into
the flat vector a Dense layer needs.
"""

import json
import math
import numbers
import re
from dataclasses import dataclass, replace

from lib.i18n import N_, _

# Safety caps: a learner's typo must not ask the CPU for a 10-billion-parameter model.
MAX_LAYERS = 40
MAX_UNITS = 4096
MAX_FILTERS = 1024
MAX_PARAMS = 20_000_000  # about 80 MB of float32 weights
MAX_FORWARD_MACS = 1_000_000_000  # per image; the tutorial CNN needs 2.8 million
# The string a Dense layer may use for "as many units as the dataset has classes".
NUM_CLASSES_TOKEN = "num_classes"
ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "silu", "linear")
PADDINGS = ("valid", "same")
# Builder JSON (pasted on the Train page) is refused before parsing past these: a model of MAX_LAYERS
# layers with every argument spelled out takes about 5,500 characters, and a layer list nests two
# levels ([{...}]); the third lets a value written as a list get its own message. Deeper nesting would
# otherwise escape json.loads as a RecursionError, and a huge text would take long to parse and check.
MAX_JSON_CHARS = 20_000
MAX_JSON_DEPTH = 3
SHOWN_CHARS = 40  # of a bad value quoted in a message

# Arguments each layer type accepts, with the value a new layer starts with.
# Arguments in REQUIRED_ARGS must still be written in every spec: a Dense layer
# without a size is a mistake worth pointing out, not something to guess.
LAYER_TYPES: dict[str, dict] = {
    "Conv2D": {"filters": 32, "kernel_size": 3, "strides": 1, "padding": "valid", "activation": None},
    "MaxPooling2D": {"pool_size": 2, "strides": None, "padding": "valid"},
    "AveragePooling2D": {"pool_size": 2, "strides": None, "padding": "valid"},
    "Flatten": {},
    "Dense": {"units": 128, "activation": None},
    "Dropout": {"rate": 0.5},
    "GlobalAveragePooling2D": {},
    # momentum: how slowly the running statistics used at test time follow each batch's. Keras'
    # 0.99 suits long runs; a one-epoch run needs 0.9 or its test-time statistics lag far behind.
    "BatchNormalization": {"momentum": 0.99},
    "Activation": {"activation": "relu"},
}
REQUIRED_ARGS = {"Conv2D": ("filters",), "Dense": ("units",), "Activation": ("activation",)}
# Layers that need (height, width, channels) input.
SPATIAL_TYPES = ("Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D")
POOLING_TYPES = ("MaxPooling2D", "AveragePooling2D")
# The tutorials that do not say otherwise are run with the app's held-out split.
DEFAULT_VALIDATION_SPLIT = 0.2


class InvalidArchitecture(ValueError):
    """A layer list that cannot become a working model; the message tells a learner what to fix."""


@dataclass(frozen=True)
class Architecture:
    """A named model in the zoo, with the tutorial settings that reproduce its reported score."""

    name: str  # zoo key, e.g. "cnn-tf-tutorial"
    title: str  # short human title
    family: str  # "linear" | "mlp" | "cnn"
    description: str  # what it is and which lesson it teaches
    layers: tuple  # layer-spec dicts, normalized; read-only: use layer_list() for copies
    tutorial: dict | None  # the tutorial's exact settings and reported result; None for our own

    def layer_list(self) -> list[dict]:
        """Fresh copies of the layer specs, safe to edit."""
        return [dict(spec) for spec in self.layers]


@dataclass(frozen=True)
class LayerRow:
    """One line of a model summary, computed without Keras."""

    index: int  # 1-based, as in error messages ("Layer 3 (Dense) ...")
    type: str
    label: str  # e.g. "Conv2D(32, 3x3, relu)"
    output_shape: tuple  # without the batch axis, e.g. (26, 26, 32) or (128,)
    params: int
    formula: str  # how the tutorials count it, e.g. "(3*3*1 + 1) * 32 = 320"


# ---------------------------------------------------------------- normalization

# Why a layer list is refused: English (the CLI, the logs), marked for the catalog and shown translated on a
# page (lib.i18n.translate_filled; `where` is itself a marked text, translated too). Values quoted from the
# user (`value`, `name`) and JSON examples stay as they are.
LAYER = N_("Layer {index} ({type})")
NOT_WHOLE_NUMBER = N_("{where}: {name} must be a whole number from {low} to {high:,}; got {value}.")
BAD_UNITS = N_('{where}: units must be a whole number or "{token}"; got {value}.')
BAD_PADDING = N_('{where}: padding must be "valid" or "same"; got {value}.')
BAD_ACTIVATION = N_("{where}: activation must be one of {options}; got {value}.")
BAD_MOMENTUM = N_("{where}: momentum is the share of the running statistics kept at each batch and must be at least 0 "
                  "and below 1; got {value}.")
BAD_RATE = N_("{where}: rate is the fraction of values dropped and must be at least 0 and below 1; got {value}.")
UNKNOWN_TYPE = N_("Layer {index} has unknown type {value}. Known layer types: {known}.")
UNKNOWN_TYPE_HINT = N_("Layer {index} has unknown type {value}. Did you mean {match}? Known layer types: {known}.")
NOT_A_LIST = N_('A model must be a list of layers, e.g. [{"type": "Flatten"}, ...].')
NO_LAYERS = N_("The model has no layers. Add at least a Flatten and a Dense output layer.")
TOO_MANY_LAYERS = N_("The model has {count} layers; the limit is {limit}. Remove some layers.")
NOT_A_LAYER = N_('Layer {index} must be a dict with a "type", e.g. {example}; got {value}.')
NO_SUCH_ARGUMENT = N_("{where} has no argument {name}. Its arguments: {options}.")
NO_ARGUMENTS = N_("{where} has no argument {name}. Its arguments: none.")
NEEDS_ARGUMENT = N_("{where} needs {argument}, e.g. {name}={example}.")
WINDOW_TOO_BIG_KERNEL = N_('{where} has a {size}x{size} kernel, but its input is only {height}x{width}: the images '
                           'have shrunk too much by this point. Use a smaller size, padding="same" in earlier layers, '
                           'or fewer pooling layers.')
WINDOW_TOO_BIG_POOL = N_('{where} has a {size}x{size} pooling window, but its input is only {height}x{width}: the '
                         'images have shrunk too much by this point. Use a smaller size, padding="same" in earlier '
                         'layers, or fewer pooling layers.')
TOO_SLOW = N_("This model would need {macs:,} multiply-adds per image, far too slow to train here (the limit is "
              "{limit:,}). Use fewer filters or pool earlier.")
NOT_UTF8 = N_("This is not UTF-8 text; save the layer list as plain JSON text.")
JSON_TOO_LONG = N_("This JSON is {length:,} characters long; the limit is {limit:,} (a {layers}-layer model takes about "
                   "5,500). Paste only the layer list.")
JSON_TOO_DEEP = N_("This JSON nests brackets more than {depth} levels deep. A layer list is one list of layer objects "
                   "with plain values, e.g. {example}.")
NOT_JSON = N_("This is not valid JSON (line {line}, column {column}: {error}). Check for missing commas, quotes or "
              "brackets.")
NUMBER_TOO_LONG = N_("This JSON holds a number far too long to be a layer setting.")
JSON_NOT_A_LIST = N_("The JSON must be a list of layers, e.g. {example}.")
DEEP_EXAMPLE = '[{"type": "Flatten"}, {"type": "Dense", "units": 10}]'
LIST_EXAMPLE = '[{"type": "Flatten"}, {"type": "Dense", "units": "num_classes", "activation": "softmax"}]'


def _shown(value) -> str:
    """repr of a value from the user, cut short: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}..."


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _whole_number(value, where, name, low, high):
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON and number widgets may write 32 as 32.0
    if not _is_int(value) or not low <= value <= high:
        raise InvalidArchitecture(NOT_WHOLE_NUMBER.format(where=where, name=name, low=low, high=high,
                                                          value=_shown(value)))
    return int(value)


def _check_arg(layer_type, name, value, where):
    """The argument's value in canonical form, or InvalidArchitecture saying what is wrong."""
    if name == "filters":
        return _whole_number(value, where, name, 1, MAX_FILTERS)
    if name == "units":
        if value == NUM_CLASSES_TOKEN:
            return value
        if isinstance(value, str):
            raise InvalidArchitecture(BAD_UNITS.format(where=where, token=NUM_CLASSES_TOKEN, value=_shown(value)))
        return _whole_number(value, where, name, 1, MAX_UNITS)
    if name in ("kernel_size", "pool_size"):
        return _whole_number(value, where, name, 1, 64)
    if name == "strides":
        if value is None and layer_type in POOLING_TYPES:
            return None  # Keras default: move by one whole window
        return _whole_number(value, where, name, 1, 64)
    if name == "padding":
        if value not in PADDINGS:
            raise InvalidArchitecture(BAD_PADDING.format(where=where, value=_shown(value)))
        return value
    if name == "activation":
        if value is None and layer_type != "Activation":
            return None
        if value not in ACTIVATIONS:
            raise InvalidArchitecture(BAD_ACTIVATION.format(where=where, options=", ".join(ACTIVATIONS),
                                                            value=_shown(value)))
        return value
    if name == "momentum":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
            raise InvalidArchitecture(BAD_MOMENTUM.format(where=where, value=_shown(value)))
        return float(value)
    if name == "rate":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
            raise InvalidArchitecture(BAD_RATE.format(where=where, value=_shown(value)))
        return float(value)
    raise AssertionError(f"no rule for argument {name!r}")  # LAYER_TYPES and this function disagree


def _unknown_type_message(index, layer_type):
    known = ", ".join(LAYER_TYPES)
    matches = [name for name in LAYER_TYPES if name.lower() == str(layer_type).lower()]
    if matches:
        return UNKNOWN_TYPE_HINT.format(index=index, value=_shown(layer_type), match=repr(matches[0]), known=known)
    return UNKNOWN_TYPE.format(index=index, value=_shown(layer_type), known=known)


def normalize_layers(layers) -> list[dict]:
    """Check type names and arguments and fill in defaults; return new dicts.

    Raises InvalidArchitecture naming the layer number and the problem.
    """
    if isinstance(layers, (str, bytes, dict)) or not hasattr(layers, "__iter__"):
        raise InvalidArchitecture(NOT_A_LIST)
    layers = list(layers)
    if not layers:
        raise InvalidArchitecture(NO_LAYERS)
    if len(layers) > MAX_LAYERS:
        raise InvalidArchitecture(TOO_MANY_LAYERS.format(count=len(layers), limit=MAX_LAYERS))
    normalized = []
    for index, spec in enumerate(layers, start=1):
        if not isinstance(spec, dict) or "type" not in spec:
            raise InvalidArchitecture(NOT_A_LAYER.format(index=index, example='{"type": "Dense", "units": 10}',
                                                         value=_shown(spec)))
        layer_type = spec["type"]
        if not isinstance(layer_type, str) or layer_type not in LAYER_TYPES:
            raise InvalidArchitecture(_unknown_type_message(index, layer_type))
        where = LAYER.format(index=index, type=layer_type)
        allowed = LAYER_TYPES[layer_type]
        for name in spec:
            if name != "type" and name not in allowed:
                raise InvalidArchitecture(NO_SUCH_ARGUMENT.format(where=where, name=_shown(name), options=", ".join(allowed))
                                          if allowed else NO_ARGUMENTS.format(where=where, name=_shown(name)))
        for name in REQUIRED_ARGS.get(layer_type, ()):
            if name not in spec:
                raise InvalidArchitecture(NEEDS_ARGUMENT.format(where=where, argument=repr(name), name=name,
                                                                example=repr(allowed[name])))
        clean = {"type": layer_type}
        for name, default in allowed.items():
            clean[name] = _check_arg(layer_type, name, spec.get(name, default), where)
        normalized.append(clean)
    return normalized


# ---------------------------------------------------------------- shape inference


def _check_problem(input_shape, num_classes):
    """input_shape and num_classes as plain ints, or InvalidArchitecture."""
    shape_ok = (
        isinstance(input_shape, (tuple, list))
        and len(input_shape) == 3
        and all(_is_int(n) and n >= 1 for n in input_shape)
    )
    if not shape_ok:
        raise InvalidArchitecture(f"input_shape must be (height, width, channels) of positive ints; got {input_shape!r}.")
    if not _is_int(num_classes) or num_classes < 2:
        raise InvalidArchitecture(f"num_classes must be a whole number of at least 2; got {num_classes!r}.")
    return tuple(int(n) for n in input_shape), int(num_classes)


def _shape_text(shape):
    return "x".join(str(n) for n in shape)


def _out_size(size, window, stride, padding):
    if padding == "same":
        return math.ceil(size / stride)
    return (size - window) // stride + 1


def _label(spec):
    layer_type = spec["type"]
    parts = []
    if layer_type == "Conv2D":
        parts = [str(spec["filters"]), f"{spec['kernel_size']}x{spec['kernel_size']}"]
    elif layer_type in POOLING_TYPES:
        parts = [f"{spec['pool_size']}x{spec['pool_size']}"]
    elif layer_type == "Dense":
        parts = [str(spec["units"])]
    elif layer_type == "Dropout":
        parts = [f"{spec['rate']:g}"]
    elif layer_type == "BatchNormalization" and spec["momentum"] != LAYER_TYPES[layer_type]["momentum"]:
        parts = [f"momentum {spec['momentum']:g}"]
    strides = spec.get("strides")
    if strides is not None and strides != spec.get("pool_size", 1):
        parts.append(f"stride {strides}")
    if spec.get("padding") == "same":
        parts.append("same")
    if spec.get("activation"):
        parts.append(spec["activation"])
    return f"{layer_type}({', '.join(parts)})" if parts else layer_type


def _infer(layers, input_shape, num_classes):
    """Normalized specs (num_classes resolved), summary rows and forward MACs per sample."""
    input_shape, num_classes = _check_problem(input_shape, num_classes)
    specs = normalize_layers(layers)
    for spec in specs:
        if spec["type"] == "Dense" and spec["units"] == NUM_CLASSES_TOKEN:
            spec["units"] = num_classes

    shape = input_shape
    rows, total_macs = [], 0
    for index, spec in enumerate(specs, start=1):
        layer_type = spec["type"]
        where = _(LAYER).format(index=index, type=layer_type)
        params, macs, formula = 0, 0, _("0 (no weights)")
        if layer_type in SPATIAL_TYPES and len(shape) == 1:
            raise InvalidArchitecture(_(
                "{where} needs images (height x width x channels), but it gets a flat vector of {count:,} numbers. "
                "Move it before the Flatten layer: convolution and pooling layers come first, then Flatten, then Dense."
            ).format(where=where, count=shape[0]))
        if layer_type == "Dense" and len(shape) == 3:
            message = (_("{where} gets {shape} images, but Dense needs a flat vector. Add a Flatten (or "
                         "GlobalAveragePooling2D) layer before it.") if shape == input_shape else
                       _("{where} gets {shape} feature maps, but Dense needs a flat vector. Add a Flatten (or "
                         "GlobalAveragePooling2D) layer before it."))
            raise InvalidArchitecture(message.format(where=where, shape=_shape_text(shape)))

        if layer_type in ("Conv2D", *POOLING_TYPES):
            height, width, channels = shape
            if layer_type == "Conv2D":
                window, stride, too_big = spec["kernel_size"], spec["strides"], WINDOW_TOO_BIG_KERNEL
            else:
                window, too_big = spec["pool_size"], WINDOW_TOO_BIG_POOL
                stride = spec["strides"] or window
            if window > min(height, width):
                raise InvalidArchitecture(too_big.format(where=where, size=window, height=height, width=width))
            out_h = _out_size(height, window, stride, spec["padding"])
            out_w = _out_size(width, window, stride, spec["padding"])
            if layer_type == "Conv2D":
                filters = spec["filters"]
                shape = (out_h, out_w, filters)
                params = (window * window * channels + 1) * filters
                formula = f"({window}*{window}*{channels} + 1) * {filters} = {params:,}"
                macs = out_h * out_w * window * window * channels * filters
            else:
                shape = (out_h, out_w, channels)
        elif layer_type == "Flatten":
            shape = (math.prod(shape),)
        elif layer_type == "GlobalAveragePooling2D":
            shape = (shape[-1],)
        elif layer_type == "Dense":
            inputs, units = shape[0], spec["units"]
            shape = (units,)
            params = (inputs + 1) * units
            formula = f"({inputs:,} + 1) * {units:,} = {params:,}"
            macs = inputs * units
        elif layer_type == "BatchNormalization":
            channels = shape[-1]
            params = 4 * channels
            formula = _("4 * {channels:,} = {params:,} ({trainable:,} trainable)").format(
                channels=channels, params=params, trainable=2 * channels)
        total_macs += macs
        rows.append(LayerRow(index, layer_type, _label(spec), shape, params, formula))

    last = specs[-1]
    if last["type"] != "Dense":
        raise InvalidArchitecture(_(
            "The last layer is {type}, but the model must end with a Dense layer with {classes} units and softmax "
            "activation (one probability per class). Add a Dense({classes}, softmax) layer at the end."
        ).format(type=last["type"], classes=num_classes))
    if last["units"] != num_classes:
        raise InvalidArchitecture(_(
            "The last layer has {units} units, but this dataset has {classes} classes: set its units to {classes}."
        ).format(units=last["units"], classes=num_classes))
    if last["activation"] != "softmax":
        message = (_('The last layer has the {activation!r} activation, but it needs softmax so the model outputs '
                     'one probability per class: set its activation to "softmax".') if last["activation"] else
                   _('The last layer has no activation, but it needs softmax so the model outputs one probability '
                     'per class: set its activation to "softmax".'))
        raise InvalidArchitecture(message.format(activation=last["activation"]))
    total_params = sum(row.params for row in rows)
    if total_params > MAX_PARAMS:
        raise InvalidArchitecture(_(
            "This model would have {params:,} parameters; the limit is {limit:,}. Use fewer units or filters, or add "
            "pooling before Flatten."
        ).format(params=total_params, limit=MAX_PARAMS))
    if total_macs > MAX_FORWARD_MACS:
        raise InvalidArchitecture(TOO_SLOW.format(macs=total_macs, limit=MAX_FORWARD_MACS))
    return specs, rows, total_macs


def summarize(layers, input_shape, num_classes) -> list[LayerRow]:
    """One row per layer: label, output shape, parameters and how they are counted."""
    return _infer(layers, input_shape, num_classes)[1]


def validate(layers, input_shape, num_classes) -> None:
    """Raise InvalidArchitecture with a plain-language message if the model cannot work."""
    _infer(layers, input_shape, num_classes)


def count_params(layers, input_shape, num_classes) -> int:
    """Total parameters (weights, biases and BatchNormalization statistics), as Keras counts them."""
    return sum(row.params for row in summarize(layers, input_shape, num_classes))


def forward_macs_per_sample(layers, input_shape, num_classes) -> int:
    """Multiply-adds in one forward pass of one image (Conv2D and Dense layers only).

    Training costs about 3 * 2 * MACs floating-point operations per image.
    """
    return _infer(layers, input_shape, num_classes)[2]


# ---------------------------------------------------------------- Keras


def _keras_name(layer_type, index):
    return f"{re.sub(r'(?<=[a-z])(?=[A-Z])', '_', layer_type).lower()}_{index}"


def build_model(layers, input_shape, num_classes, *, dtype_policy: str | None = None, name: str = "model"):
    """A fresh keras.Sequential for these layers; validates first.

    Every layer uses `dtype_policy` (e.g. "mixed_bfloat16") except the last, which stays
    float32 so the softmax probabilities are float32. The global policy is left alone.
    `model.layers[i]` is row i + 1 of `summarize`; a Sequential model has `outputs`, not `output`.
    """
    specs, _, _ = _infer(layers, input_shape, num_classes)
    import keras

    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(input_shape)))
    for index, spec in enumerate(specs, start=1):
        kwargs = {key: value for key, value in spec.items() if key != "type"}
        dtype = "float32" if index == len(specs) else dtype_policy
        layer_class = getattr(keras.layers, spec["type"])
        model.add(layer_class(**kwargs, dtype=dtype, name=_keras_name(spec["type"], index)))
    return model


# ---------------------------------------------------------------- JSON


def _json_depth(text: str, limit: int) -> int:
    """How deeply [ and { nest in JSON text (inside strings they do not count); stops counting past `limit`."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def layers_to_json(layers) -> str:
    """The layers, checked and with every argument spelled out, as indented JSON."""
    return json.dumps(normalize_layers(layers), indent=2)


def layers_from_json(text: str) -> list[dict]:
    """Layers from JSON text (a list of layer dicts), checked; InvalidArchitecture if not usable.

    Size (MAX_JSON_CHARS) and nesting (MAX_JSON_DEPTH) are checked before the text is parsed.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArchitecture(NOT_UTF8) from None
    if not isinstance(text, str):
        raise InvalidArchitecture(f"Expected JSON text; got {type(text).__name__}.")
    if len(text) > MAX_JSON_CHARS:
        raise InvalidArchitecture(JSON_TOO_LONG.format(length=len(text), limit=MAX_JSON_CHARS, layers=MAX_LAYERS))
    if _json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise InvalidArchitecture(JSON_TOO_DEEP.format(depth=MAX_JSON_DEPTH, example=DEEP_EXAMPLE))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArchitecture(NOT_JSON.format(line=error.lineno, column=error.colno, error=error.msg)) from None
    except ValueError:  # a number of thousands of digits (Python's int conversion limit)
        raise InvalidArchitecture(NUMBER_TOO_LONG) from None
    if not isinstance(data, list):
        raise InvalidArchitecture(JSON_NOT_A_LIST.format(example=LIST_EXAMPLE))
    return normalize_layers(data)


# ---------------------------------------------------------------- the zoo


def _conv(filters, padding="valid", activation="relu"):
    return {"type": "Conv2D", "filters": filters, "kernel_size": 3, "padding": padding, "activation": activation}


def _dense(units, activation="relu"):
    return {"type": "Dense", "units": units, "activation": activation}


def _dropout(rate):
    return {"type": "Dropout", "rate": rate}


_FLATTEN = {"type": "Flatten"}
_MAX_POOL = {"type": "MaxPooling2D", "pool_size": 2}
_GLOBAL_POOL = {"type": "GlobalAveragePooling2D"}
_OUTPUT = _dense(NUM_CLASSES_TOKEN, "softmax")


def _conv_bn_relu(filters, kernel_size=3, padding="same", momentum=0.99):
    # The convolution stays linear: BatchNormalization works on its raw output, then ReLU.
    conv = {**_conv(filters, padding, None), "kernel_size": kernel_size}
    return [conv, {"type": "BatchNormalization", "momentum": momentum}, {"type": "Activation", "activation": "relu"}]


def _tutorial(dataset, epochs, normalize, reported, reported_accuracy, *, optimizer="adam",
              learning_rate=0.001, batch_size=32, label_encoding="sparse",
              validation_split=DEFAULT_VALIDATION_SPLIT):
    # Defaults are what the tutorials leave unsaid: Adam's default rate, fit()'s default batch size.
    return {
        "dataset": dataset,
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "epochs": epochs,
        "normalize": normalize,
        "label_encoding": label_encoding,
        "validation_split": validation_split,
        "reported": reported,
        "reported_accuracy": reported_accuracy,
    }


# The softmax/MLP tutorial: slow RMSprop on raw pixels with hand-made one-hot labels.
_RMSPROP_RAW_ONE_HOT = {
    "optimizer": "rmsprop", "learning_rate": 1e-4, "batch_size": 128, "label_encoding": "one_hot",
}

_ZOO_SPECS = [
    Architecture(
        "softmax", N_("Softmax regression"), "linear",
        N_("One Dense layer maps the 784 pixels straight to 10 class probabilities: the baseline every "
        "other model must beat. Its tutorial feeds raw 0-255 pixels."),
        (_FLATTEN, _OUTPUT),
        _tutorial("mnist", epochs=50, normalize=False, **_RMSPROP_RAW_ONE_HOT,
                  reported=N_("88.5% test accuracy"), reported_accuracy=0.885),
    ),
    Architecture(
        "mlp-500x2", N_("MLP 500-500"), "mlp",
        N_("Two hidden layers of 500 ReLU neurons with the same slow RMSprop settings as softmax "
        "regression: hidden layers alone lift accuracy from 88.5% to 97.7%."),
        (_FLATTEN, _dense(500), _dense(500), _OUTPUT),
        _tutorial("mnist", epochs=50, normalize=False, **_RMSPROP_RAW_ONE_HOT,
                  reported=N_("97.7% test accuracy"), reported_accuracy=0.977),
    ),
    Architecture(
        "mlp-128", N_("MLP 128"), "mlp",
        N_("The classic first neural network: one hidden layer of 128 ReLU neurons, trained for five epochs."),
        (_FLATTEN, _dense(128), _OUTPUT),
        _tutorial("fashion_mnist", epochs=5, normalize=True,
                  reported=N_("82.6% test accuracy on Fashion-MNIST (first run shown)"), reported_accuracy=0.826),
    ),
    Architecture(
        "mlp-512", N_("MLP 512"), "mlp",
        N_("One hidden layer of 512 neurons: more neurons train slower and are usually a little more accurate."),
        (_FLATTEN, _dense(512), _OUTPUT),
        _tutorial("fashion_mnist", epochs=5, normalize=True,
                  reported=N_("training loss 0.36 after 2 epochs"), reported_accuracy=None),
    ),
    Architecture(
        "mlp-1024", N_("MLP 1024"), "mlp",
        N_("One hidden layer of 1024 neurons: twice the width of MLP 512, for a small gain at twice the cost."),
        (_FLATTEN, _dense(1024), _OUTPUT),
        _tutorial("mnist", epochs=5, normalize=True,
                  reported=N_("test loss 0.071"), reported_accuracy=None),
    ),
    Architecture(
        "mlp-512-256", N_("MLP 512-256"), "mlp",
        N_("Adds a second hidden layer of 256 neurons to MLP 512: on simple data like MNIST an extra "
        "layer changes little."),
        (_FLATTEN, _dense(512), _dense(256), _OUTPUT),
        _tutorial("mnist", epochs=5, normalize=True,
                  reported=N_("test loss 0.076"), reported_accuracy=None),
    ),
    Architecture(
        "cnn-lenet-ish", N_("LeNet-style CNN"), "cnn",
        N_("Two same-padded convolutions with max pooling feed a Dense(128) classifier. Convolutions look "
        "at local strokes, so it beats every MLP."),
        (_conv(16, "same"), _MAX_POOL, _conv(32, "same"), _MAX_POOL, _FLATTEN, _dense(128), _OUTPUT),
        _tutorial("mnist", epochs=5, normalize=True, batch_size=64,
                  reported=N_("98.11% test accuracy"), reported_accuracy=0.9811),
    ),
    Architecture(
        "cnn-tf-tutorial", N_("TensorFlow tutorial CNN"), "cnn",
        N_("Three convolutions and two poolings feed a small Dense head: 99.21% accuracy on MNIST with fewer "
        "than 100,000 parameters."),
        (_conv(32), _MAX_POOL, _conv(64), _MAX_POOL, _conv(64), _FLATTEN, _dense(64), _OUTPUT),
        _tutorial("mnist", epochs=5, normalize=True,
                  reported=N_("99.21% test accuracy"), reported_accuracy=0.9921),
    ),
    Architecture(
        "cnn-gap-small", N_("Small CNN with global pooling"), "cnn",
        N_("Two convolutions, then global average pooling instead of Flatten: only 19,466 parameters. "
        "Its tutorial feeds raw 0-255 Fashion-MNIST pixels."),
        (_conv(32), _MAX_POOL, _conv(64), _GLOBAL_POOL, _OUTPUT),
        _tutorial("fashion_mnist", epochs=20, normalize=False,
                  reported=N_("88.34% test accuracy on Fashion-MNIST"), reported_accuracy=0.8834),
    ),
    Architecture(
        "cnn-gap-deep", N_("Deeper CNN with dropout"), "cnn",
        N_("Four wider convolutions with Dropout(0.5) after each stage and global average pooling: dropout "
        "fights overfitting, so validation accuracy stays above training accuracy."),
        (
            _conv(64, "same"), _conv(64, "same"), _dropout(0.5), _MAX_POOL,
            _conv(128, "same"), _dropout(0.5), _MAX_POOL,
            _conv(256), _dropout(0.5), _GLOBAL_POOL, _OUTPUT,
        ),
        _tutorial("fashion_mnist", epochs=20, normalize=False,
                  reported=N_("92.39% test accuracy on Fashion-MNIST"), reported_accuracy=0.9239),
    ),
    Architecture(
        "cnn-best", N_("MNIST Studio best CNN"), "cnn",
        N_("Our own: three Conv-BatchNorm-ReLU stages with max pooling and dropout, small enough for a "
        "2-core CPU. With augmentation and a cosine learning rate it reached 99.66% accuracy on the MNIST test "
        "set in 15 epochs (the bundled default model), past the tutorials' 99.21%."),
        (
            *_conv_bn_relu(32), _MAX_POOL,
            *_conv_bn_relu(64), _MAX_POOL,
            *_conv_bn_relu(128), _MAX_POOL,
            _FLATTEN, _dropout(0.4), _dense(128), _dropout(0.4), _OUTPUT,
        ),
        None,
    ),
    Architecture(
        "cnn-fast", N_("Fast CNN: 99% after one epoch"), "cnn",
        N_("Our own, built for time to accuracy on a small CPU: a 5x5 and a 3x3 convolution without padding, "
        "each with BatchNormalization and max pooling, and a Dense(256) head. It needs 1.2 million "
        "multiply-adds per image (the tutorial CNN 2.8 million) and passes 99% test accuracy after one "
        "epoch with a one-cycle learning rate peaking at 0.01 (batch 128). Its BatchNormalization "
        "momentum is 0.9 so the test-time statistics keep up in such a short run."),
        (
            *_conv_bn_relu(24, 5, "valid", momentum=0.9), _MAX_POOL,
            *_conv_bn_relu(32, 3, "valid", momentum=0.9), _MAX_POOL,
            _FLATTEN, _dense(256), _OUTPUT,
        ),
        None,
    ),
]

# Stored with every argument spelled out, which also checks the zoo when the module loads.
ZOO: dict[str, Architecture] = {
    arch.name: replace(arch, layers=tuple(normalize_layers(arch.layers))) for arch in _ZOO_SPECS
}


def get_architecture(name: str) -> Architecture:
    """The zoo entry called `name`; ValueError if there is none."""
    if name not in ZOO:
        raise ValueError(f"Unknown architecture: {name!r}. Known: {', '.join(ZOO)}.")
    return ZOO[name]
