"""lib.models.architectures: the zoo matches the tutorials, shape inference matches Keras, errors are plain."""

import json

import pytest

from lib.models.architectures import (
    ZOO,
    InvalidArchitecture,
    build_model,
    count_params,
    forward_macs_per_sample,
    get_architecture,
    layers_from_json,
    layers_to_json,
    normalize_layers,
    summarize,
    validate,
)
from tests.reference import REFERENCE_PARAMS

MNIST_SHAPE = (28, 28, 1)
FLATTEN = {"type": "Flatten"}
OUTPUT = {"type": "Dense", "units": "num_classes", "activation": "softmax"}


@pytest.fixture(scope="module")
def keras_zoo():
    """Every zoo model built once by Keras for MNIST."""
    import keras

    keras.backend.clear_session()
    return {name: build_model(arch.layers, MNIST_SHAPE, 10, name=name) for name, arch in ZOO.items()}


OUR_OWN = {"cnn-best", "cnn-fast"}


def test_zoo_holds_the_reference_architectures_and_our_own():
    assert set(ZOO) == set(REFERENCE_PARAMS) | OUR_OWN
    for name, arch in ZOO.items():
        assert arch.name == name
        assert arch.family in ("linear", "mlp", "cnn")
        assert arch.title and arch.description
        assert arch.layers[-1]["units"] == "num_classes"
        assert (arch.tutorial is None) == (name in OUR_OWN)


@pytest.mark.parametrize("name", REFERENCE_PARAMS)
def test_zoo_parameter_counts_equal_reference(name, keras_zoo):
    layers = ZOO[name].layers
    assert count_params(layers, MNIST_SHAPE, 10) == REFERENCE_PARAMS[name]
    assert keras_zoo[name].count_params() == REFERENCE_PARAMS[name]


@pytest.mark.parametrize("name", list(ZOO))
def test_shape_inference_matches_keras_layer_by_layer(name, keras_zoo):
    rows = summarize(ZOO[name].layers, MNIST_SHAPE, 10)
    keras_layers = keras_zoo[name].layers
    assert len(rows) == len(keras_layers)
    for row, layer in zip(rows, keras_layers):
        assert row.type == type(layer).__name__
        assert row.output_shape == tuple(layer.output.shape[1:])
        assert row.params == layer.count_params()


def test_shape_inference_matches_keras_for_every_layer_type_and_option():
    import keras

    layers = [
        {"type": "Conv2D", "filters": 6, "kernel_size": 5, "strides": 2, "padding": "same"},
        {"type": "BatchNormalization"},
        {"type": "Activation", "activation": "tanh"},
        {"type": "AveragePooling2D", "pool_size": 3, "strides": 1},
        {"type": "MaxPooling2D", "pool_size": 2, "padding": "same"},
        {"type": "Conv2D", "filters": 4, "kernel_size": 2, "strides": 3},
        {"type": "Flatten"},
        {"type": "Dense", "units": 7},
        {"type": "BatchNormalization"},
        {"type": "Dropout", "rate": 0},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    ]
    keras.backend.clear_session()
    model = build_model(layers, (31, 29, 2), 3)
    rows = summarize(layers, (31, 29, 2), 3)
    assert [row.output_shape for row in rows] == [tuple(layer.output.shape[1:]) for layer in model.layers]
    assert [row.params for row in rows] == [layer.count_params() for layer in model.layers]
    assert rows[0].label == "Conv2D(6, 5x5, stride 2, same)"
    assert rows[3].label == "AveragePooling2D(3x3, stride 1)"
    assert count_params(layers, (31, 29, 2), 3) == model.count_params()


def test_tutorial_settings_follow_the_reference():
    tf_tutorial = get_architecture("cnn-tf-tutorial").tutorial
    assert tf_tutorial["dataset"] == "mnist"
    assert tf_tutorial["optimizer"] == "adam"
    assert tf_tutorial["epochs"] == 5
    assert tf_tutorial["reported_accuracy"] == 0.9921
    softmax = get_architecture("softmax").tutorial
    assert (softmax["optimizer"], softmax["learning_rate"], softmax["batch_size"]) == ("rmsprop", 1e-4, 128)
    assert softmax["normalize"] is False and softmax["label_encoding"] == "one_hot"
    lenet = get_architecture("cnn-lenet-ish").tutorial
    assert (lenet["batch_size"], lenet["validation_split"]) == (64, 0.2)
    assert get_architecture("cnn-gap-deep").tutorial["dataset"] == "fashion_mnist"


def test_a_zoo_model_builds_for_other_image_sizes_and_class_counts():
    import keras

    keras.backend.clear_session()
    for name in ("cnn-tf-tutorial", "cnn-best", "mlp-128"):
        model = build_model(ZOO[name].layers, (32, 32, 3), 5)
        assert model.output_shape == (None, 5)


def test_cnn_best_is_small_enough_for_a_cpu(tmp_path):
    import keras

    layers = ZOO["cnn-best"].layers
    assert count_params(layers, MNIST_SHAPE, 10) < 400_000
    assert forward_macs_per_sample(layers, MNIST_SHAPE, 10) < 8_000_000
    assert {"BatchNormalization", "Dropout", "MaxPooling2D"} <= {spec["type"] for spec in layers}
    keras.backend.clear_session()
    path = tmp_path / "best.keras"
    build_model(layers, MNIST_SHAPE, 10).save(path)
    assert path.stat().st_size < 5_000_000


def test_cnn_fast_needs_less_than_half_the_tutorial_cnns_math(keras_zoo):
    keras_zoo_fast = keras_zoo["cnn-fast"]
    layers = ZOO["cnn-fast"].layers
    by_hand = 24 * 24 * 5 * 5 * 1 * 24 + 10 * 10 * 3 * 3 * 24 * 32 + 800 * 256 + 256 * 10
    assert forward_macs_per_sample(layers, MNIST_SHAPE, 10) == by_hand == 1_244_160
    assert by_hand < forward_macs_per_sample(ZOO["cnn-tf-tutorial"].layers, MNIST_SHAPE, 10) / 2
    assert count_params(layers, MNIST_SHAPE, 10) == keras_zoo_fast.count_params() == 215_418
    # A one-epoch run needs BatchNormalization's test-time statistics to follow the batches quickly.
    momenta = [layer.momentum for layer in keras_zoo_fast.layers if type(layer).__name__ == "BatchNormalization"]
    assert momenta == [0.9, 0.9]
    rows = summarize(layers, MNIST_SHAPE, 10)
    assert rows[1].label == "BatchNormalization(momentum 0.9)"


def test_batch_normalization_momentum_defaults_to_keras_and_is_checked():
    assert normalize_layers([{"type": "BatchNormalization"}])[0]["momentum"] == 0.99
    with pytest.raises(InvalidArchitecture, match=r"Layer 1 \(BatchNormalization\): momentum is the share"):
        normalize_layers([{"type": "BatchNormalization", "momentum": 1.0}])
    assert summarize(ZOO["cnn-best"].layers, MNIST_SHAPE, 10)[1].label == "BatchNormalization"


def test_forward_macs_of_the_tensorflow_tutorial_cnn():
    by_hand = (
        26 * 26 * 3 * 3 * 1 * 32  # Conv2D(32): 28 -> 26, then pooling to 13
        + 11 * 11 * 3 * 3 * 32 * 64  # Conv2D(64): 13 -> 11, then pooling to 5
        + 3 * 3 * 3 * 3 * 64 * 64  # Conv2D(64): 5 -> 3, flattened to 576
        + 576 * 64
        + 64 * 10
    )
    assert by_hand == 2_794_240
    assert forward_macs_per_sample(ZOO["cnn-tf-tutorial"].layers, MNIST_SHAPE, 10) == by_hand


def test_formulas_count_parameters_as_the_tutorials_teach():
    rows = summarize(ZOO["cnn-tf-tutorial"].layers, MNIST_SHAPE, 10)
    assert rows[0].label == "Conv2D(32, 3x3, relu)"
    assert rows[0].formula == "(3*3*1 + 1) * 32 = 320"
    assert rows[1].formula == "0 (no weights)"
    assert rows[0].index == 1 and rows[0].output_shape == (26, 26, 32)
    softmax_rows = summarize(ZOO["softmax"].layers, MNIST_SHAPE, 10)
    assert softmax_rows[1].label == "Dense(10, softmax)"
    assert softmax_rows[1].formula == "(784 + 1) * 10 = 7,850"
    batch_norm = summarize(ZOO["cnn-best"].layers, MNIST_SHAPE, 10)[1]
    assert batch_norm.formula == "4 * 32 = 128 (64 trainable)"


def test_mixed_precision_keeps_the_softmax_output_float32():
    import keras

    keras.backend.clear_session()
    model = build_model(ZOO["cnn-best"].layers, MNIST_SHAPE, 10, dtype_policy="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is untouched
    assert model.outputs[0].dtype == "float32"
    assert model.layers[-1].compute_dtype == "float32"
    assert {layer.compute_dtype for layer in model.layers[:-1]} == {"bfloat16"}
    assert model.layers[0].variable_dtype == "float32"


def _conv(filters=8, **args):
    return {"type": "Conv2D", "filters": filters, **args}


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        pytest.param(
            [{"type": "Dense", "units": 128, "activation": "relu"}, OUTPUT],
            "Layer 1 (Dense) gets 28x28x1 images, but Dense needs a flat vector. "
            "Add a Flatten (or GlobalAveragePooling2D) layer before it.",
            id="dense-without-flatten",
        ),
        pytest.param(
            [FLATTEN, {"type": "Dense", "units": 5, "activation": "softmax"}],
            "The last layer has 5 units, but this dataset has 10 classes: set its units to 10.",
            id="wrong-final-units",
        ),
        pytest.param(
            [FLATTEN, {"type": "Dense", "units": 10}],
            'The last layer has no activation, but it needs softmax so the model outputs one probability '
            'per class: set its activation to "softmax".',
            id="missing-softmax",
        ),
        pytest.param(
            [FLATTEN, {"type": "Dropout", "rate": 0.2}],
            "The last layer is Dropout, but the model must end with a Dense layer",
            id="last-not-dense",
        ),
        pytest.param(
            [FLATTEN, _conv(), OUTPUT],
            "Layer 2 (Conv2D) needs images (height x width x channels), but it gets a flat vector of 784 numbers.",
            id="conv-after-flatten",
        ),
        pytest.param(
            [_conv(), {"type": "MaxPooling2D"}] * 3 + [_conv(), FLATTEN, OUTPUT],
            "Layer 7 (Conv2D) has a 3x3 kernel, but its input is only 1x1",
            id="shrinks-to-nothing",
        ),
        pytest.param(
            [{"type": "conv2d", "filters": 8}, FLATTEN, OUTPUT],
            "Layer 1 has unknown type 'conv2d'. Did you mean 'Conv2D'?",
            id="unknown-type",
        ),
        pytest.param(
            [_conv(0), FLATTEN, OUTPUT],
            "Layer 1 (Conv2D): filters must be a whole number from 1 to 1,024; got 0.",
            id="zero-filters",
        ),
        pytest.param(
            [FLATTEN, {"type": "Dropout", "rate": 1.0}, OUTPUT],
            "Layer 2 (Dropout): rate is the fraction of values dropped and must be at least 0 and below 1",
            id="dropout-rate",
        ),
        pytest.param(
            [_conv(kernel_size=29), FLATTEN, OUTPUT],
            "Layer 1 (Conv2D) has a 29x29 kernel, but its input is only 28x28",
            id="kernel-bigger-than-input",
        ),
        pytest.param(
            [_conv(filter=8), FLATTEN, OUTPUT],
            "Layer 1 (Conv2D) has no argument 'filter'.",
            id="unknown-argument",
        ),
        pytest.param(
            [FLATTEN, {"type": "Dense", "activation": "relu"}, OUTPUT],
            "Layer 2 (Dense) needs 'units'",
            id="missing-units",
        ),
        pytest.param(
            [FLATTEN, {"type": "Dense", "units": 5000}, OUTPUT],
            "Layer 2 (Dense): units must be a whole number from 1 to 4,096; got 5000.",
            id="too-many-units",
        ),
        pytest.param([], "The model has no layers.", id="empty"),
        pytest.param([FLATTEN] * 41, "The model has 41 layers; the limit is 40.", id="too-many-layers"),
        pytest.param(
            [_conv(1024, padding="same"), FLATTEN, {"type": "Dense", "units": 4096}, OUTPUT],
            "This model would have 3,288,",
            id="too-many-parameters",
        ),
    ],
)
def test_invalid_architectures_get_their_own_plain_message(layers, message):
    with pytest.raises(InvalidArchitecture) as caught:
        validate(layers, MNIST_SHAPE, 10)
    assert str(caught.value).startswith(message)


def test_build_model_refuses_an_invalid_architecture_before_keras():
    with pytest.raises(InvalidArchitecture, match="needs a flat vector"):
        build_model([{"type": "Dense", "units": 10, "activation": "softmax"}], MNIST_SHAPE, 10)


def test_unknown_zoo_name():
    with pytest.raises(ValueError) as caught:
        get_architecture("nope")
    assert str(caught.value).startswith("Unknown architecture: 'nope'")


def test_normalize_fills_defaults_and_copies():
    arch = get_architecture("cnn-tf-tutorial")
    layers = arch.layer_list()
    layers[0]["filters"] = 1
    assert arch.layers[0]["filters"] == 32
    assert normalize_layers([{"type": "Conv2D", "filters": 4.0}])[0] == {
        "type": "Conv2D", "filters": 4, "kernel_size": 3, "strides": 1, "padding": "valid", "activation": None,
    }
    assert normalize_layers([{"type": "MaxPooling2D"}])[0]["strides"] is None


def test_json_round_trip():
    for arch in ZOO.values():
        text = layers_to_json(arch.layers)
        assert layers_from_json(text) == list(arch.layers)
    explicit = [FLATTEN, {"type": "Dense", "units": 10, "activation": "softmax"}]
    assert json.loads(layers_to_json(explicit))[1]["units"] == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"type": "Flatten"} {"type": "Dense"}]', "This is not valid JSON (line 1, column 22"),
        ('{"type": "Flatten"}', "The JSON must be a list of layers"),
        ('[{"type": "Denz", "units": 10}]', "Layer 1 has unknown type 'Denz'."),
        ('[{"type": "Dropout", "rate": "half"}]', "Layer 1 (Dropout): rate is the fraction"),
    ],
)
def test_bad_json_is_refused_with_a_clear_message(text, message):
    with pytest.raises(InvalidArchitecture) as caught:
        layers_from_json(text)
    assert str(caught.value).startswith(message)


UNITS = "Layer 2 (Dense): units must be a whole number from 1 to 4,096;"


def _dense(units):
    return '[{"type": "Flatten"}, {"type": "Dense", "units": %s}]' % units


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[" * 5000 + "]" * 5000, "This JSON nests brackets more than 3 levels deep.",
                     id="deep-list"),
        pytest.param('[{"type": "Dense", "units": ' + "[" * 5000 + "]" * 5000 + "}]",
                     "This JSON nests brackets more than 3 levels deep.", id="deep-value"),
        pytest.param('[{"type": "Dense", "units": {"a": {"b": 1}}}]', "This JSON nests brackets more than 3",
                     id="nested-objects"),
        pytest.param(_dense("[10]"), "Layer 2 (Dense): units must be a whole number from 1 to 4,096; got [10].",
                     id="units-list"),
        pytest.param('[{"type": "Flatten", "x": "' + "[" * 100 + '"}]', "Layer 1 (Flatten) has no argument 'x'.",
                     id="brackets-in-strings-do-not-count"),
        pytest.param(json.dumps([FLATTEN] * 2000), "This JSON is 42,000 characters long; the limit is 20,000",
                     id="too-long"),
        pytest.param(_dense("1" + "0" * 5000), "This JSON holds a number far too long", id="5000-digit-number"),
        pytest.param(_dense("1" + "0" * 4000), "Layer 2 (Dense): units must be a whole number from 1 to 4,096; "
                     "got 1000000000000000000000000000000000000000...", id="4000-digit-number"),
        pytest.param(_dense('"ten"'), 'Layer 2 (Dense): units must be a whole number or "num_classes"; got \'ten\'.',
                     id="units-text"),
        pytest.param(_dense("3.5"), "Layer 2 (Dense): units must be a whole number from 1 to 4,096; got 3.5.",
                     id="units-fraction"),
        pytest.param(_dense("true"), f"{UNITS} got True.", id="units-bool"),
        pytest.param(_dense("null"), f"{UNITS} got None.", id="units-null"),
        pytest.param(_dense("1e400"), f"{UNITS} got inf.", id="units-infinite"),
        pytest.param('[{"type": "Conv2D", "filters": "32"}]', "Layer 1 (Conv2D): filters must be a whole number",
                     id="filters-text"),
        pytest.param('[{"type": "Conv2D", "filters": 8, "kernel_size": [3, 3]}]',
                     "Layer 1 (Conv2D): kernel_size must be a whole number from 1 to 64; got [3, 3].", id="kernel-pair"),
        pytest.param('[{"type": "MaxPooling2D", "pool_size": 0}]', "Layer 1 (MaxPooling2D): pool_size must be a whole number from 1 to 64; got 0.",
                     id="pool-zero"),
        pytest.param('[{"type": "Conv2D", "filters": 8, "strides": 65}]', "Layer 1 (Conv2D): strides must be a whole number from 1 to 64; got 65.",
                     id="strides-too-big"),
        pytest.param('[{"type": "Conv2D", "filters": 8, "padding": 1}]', 'Layer 1 (Conv2D): padding must be "valid" or "same"; got 1.',
                     id="padding-number"),
        pytest.param('[{"type": "Activation", "activation": "Relu"}]', "Layer 1 (Activation): activation must be one of relu, sigmoid",
                     id="activation-case"),
        pytest.param('[{"type": "Activation", "activation": ["relu"]}]', "Layer 1 (Activation): activation must be one of",
                     id="activation-list"),
        pytest.param('[{"type": "Dropout", "rate": NaN}]', "Layer 1 (Dropout): rate is the fraction of values dropped",
                     id="rate-nan"),
        pytest.param('[{"type": "BatchNormalization", "momentum": true}]', "Layer 1 (BatchNormalization): momentum is the share",
                     id="momentum-bool"),
        pytest.param('[{"type": 5}]', "Layer 1 has unknown type 5.", id="type-number"),
        pytest.param('[{"type": "' + "D" * 5000 + '"}]', "Layer 1 has unknown type 'DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD...",
                     id="type-long"),
        pytest.param('["Flatten"]', "Layer 1 must be a dict with a \"type\"", id="layer-text"),
        pytest.param('[{"units": 10}]', "Layer 1 must be a dict with a \"type\"", id="layer-without-type"),
        pytest.param(b'[{"type": "Flatten\xff"}]', "This is not UTF-8 text", id="not-utf8"),
        pytest.param("", "This is not valid JSON", id="empty"),
    ],
)
def test_builder_json_is_bounded_and_every_field_type_checked(text, message):
    """Depth and size are refused before parsing (no RecursionError escapes); every field gets a plain message."""
    with pytest.raises(InvalidArchitecture) as caught:
        layers_from_json(text)
    assert str(caught.value).startswith(message)
    assert len(str(caught.value)) < 300


def test_the_largest_model_fits_the_json_limits_with_room_to_spare():
    from lib.models.architectures import MAX_JSON_CHARS, MAX_LAYERS

    layers = [{"type": "Conv2D", "filters": 8, "padding": "same", "activation": "relu"}] * (MAX_LAYERS - 2)
    text = json.dumps(normalize_layers([*layers, FLATTEN, OUTPUT]), indent=4)
    assert len(text) < MAX_JSON_CHARS / 2
    assert len(layers_from_json(text)) == MAX_LAYERS


def test_a_huge_builder_json_is_refused_at_once():
    """Ten megabytes of layers: refused by its length, not parsed and checked layer by layer."""
    import time

    text = json.dumps([FLATTEN] * 500_000)
    started = time.perf_counter()
    with pytest.raises(InvalidArchitecture, match="characters long"):
        layers_from_json(text)
    assert time.perf_counter() - started < 0.05
