"""Model files: every model the app makes passes the allow-list; anything else in a config is named and refused."""

import json
import zipfile

import numpy as np
import pytest

from lib.models import architectures, modelfiles


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("good")
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(folder / "good.keras")
    return folder / "good.keras"


def with_config(source, target, change):
    """A copy of the .keras file at `source` whose config.json is `change(config)`'s result (or text)."""
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = change(json.loads(files["config.json"]))
    files["config.json"] = config if isinstance(config, bytes) else json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return target


def layer(config, class_name):
    return next(item for item in config["config"]["layers"] if item["class_name"] == class_name)


def test_every_model_the_app_builds_and_imports_passes(tmp_path):
    """The zoo under each optimizer, schedule, label encoding and precision, and an import's wrapper model."""
    import keras

    from lib.store import bundles
    from lib.training import loop
    from lib.training.config import LABEL_ENCODINGS, LR_SCHEDULES, OPTIMIZERS, TrainConfig

    settings = [(optimizer, schedule, encoding, policy) for optimizer, schedule, encoding, policy in zip(
        OPTIMIZERS, LR_SCHEDULES, LABEL_ENCODINGS * 2, ("float32", "mixed_bfloat16", "mixed_float16"))]
    for index, (name, arch) in enumerate(architectures.ZOO.items()):
        optimizer, schedule, encoding, policy = settings[index % len(settings)]
        config = TrainConfig(arch=name, optimizer=optimizer, lr_schedule=schedule, label_encoding=encoding)
        model = architectures.build_model(arch.layer_list(), (28, 28, 1), 10, dtype_policy=policy)
        model.compile(optimizer=loop._optimizer(config, policy, 100), metrics=["accuracy"],
                      loss="sparse_categorical_crossentropy" if encoding == "sparse" else "categorical_crossentropy")
        model.save(tmp_path / f"{name}.keras")
        assert modelfiles.check_keras_file(tmp_path / f"{name}.keras")["class_name"] == "Sequential"
    every_layer = [{"type": "Conv2D", "filters": 2, "activation": "gelu"}, {"type": "AveragePooling2D"},
                   {"type": "BatchNormalization"}, {"type": "Activation", "activation": "selu"},
                   {"type": "Dropout", "rate": 0.1}, {"type": "GlobalAveragePooling2D"},
                   {"type": "Dense", "units": 10, "activation": "softmax"}]
    architectures.build_model(every_layer, (28, 28, 1), 10).save(tmp_path / "every.keras")
    modelfiles.check_keras_file(tmp_path / "every.keras")
    flat = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    wrapped, notes = bundles.adapt(flat, (28, 28, 1), np.zeros((8, 28, 28), np.uint8))
    assert len(notes) == 2  # reshaped and given a softmax: a Functional model holding a Sequential one
    wrapped.save(tmp_path / "wrapped.keras")
    assert modelfiles.check_keras_file(tmp_path / "wrapped.keras")["class_name"] == "Functional"


def test_a_tutorial_style_functional_model_passes(tmp_path):
    import keras

    inputs = keras.Input((28, 28))
    x = keras.layers.Reshape((28, 28, 1))(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.Conv2D(4, 3, kernel_initializer="he_normal", kernel_regularizer=keras.regularizers.L2(1e-4),
                            kernel_constraint=keras.constraints.MaxNorm(3))(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Softmax()(keras.layers.Dense(10)(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.9)),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=[keras.metrics.SparseCategoricalAccuracy()])
    model.save(tmp_path / "tutorial.keras")
    modelfiles.check_keras_file(tmp_path / "tutorial.keras")


def set_activation(value):
    def change(config):
        layer(config, "Dense")["config"]["activation"] = value
        return config
    return change


def bury_in_initializer(node):
    """`node` as the Dense layer's kernel initializer's seed: deep inside the layer's config."""
    def change(config):
        layer(config, "Dense")["config"]["kernel_initializer"]["config"]["seed"] = [{"wrapped": node}]
        return config
    return change


def rename_layer(class_name, module="keras.layers"):
    def change(config):
        conv = layer(config, "Conv2D")
        conv["class_name"], conv["module"] = class_name, module
        return config
    return change


def nested(levels):
    def change(config):
        deep = "bottom"
        for _ in range(levels):
            deep = [deep]
        layer(config, "Dense")["config"]["name"] = deep
        return config
    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (rename_layer("TextVectorization"), "the Keras class 'TextVectorization' from keras.layers"),
        (rename_layer("Dense", "keras.src.saving.saving_lib"), "the Keras class 'Dense' from keras.src.saving"),
        (bury_in_initializer({"module": "keras.utils", "class_name": "get_file", "config": {"origin": "http://x"},
                              "registered_name": None}), "the Keras class 'get_file' from keras.utils"),
        (set_activation({"module": "keras.config", "class_name": "function", "registered_name": "function",
                         "config": "enable_unsafe_deserialization"}), "the function 'enable_unsafe_deserialization'"),
        (set_activation("exec"), "the function 'exec'"),
        (bury_in_initializer({"class_name": "__typespec__", "spec_name": "TensorSpec", "module": "tensorflow",
                              "config": []}), r"custom Python code \(a custom class '__typespec__'\)"),
        (bury_in_initializer({"module": "os", "class_name": "system", "config": "id"}),
         r"custom Python code \(a custom class 'system'\)"),
        (rename_layer("Lambda"), r"custom Python code \(a Lambda layer\)"),
        (nested(100), "nested more than 64 levels deep"),
        (lambda config: b"[" * 200_000 + b"]" * 200_000, "nested more than 64 levels deep"),
    ],
)
def test_anything_off_the_allow_list_is_refused_by_name(good_file, tmp_path, change, message):
    bad = with_config(good_file, tmp_path / "bad.keras", change)
    with pytest.raises(modelfiles.UnusableModel, match=message) as refused:
        modelfiles.check_keras_file(bad)
    assert "rebuild it with built-in Keras layers" in str(refused.value) or "nested" in message


def test_the_good_file_itself_passes_and_loads(good_file):
    config = modelfiles.check_keras_file(good_file)
    assert modelfiles.config_problem(config) == ""
    assert modelfiles.load_keras_file(good_file).output_shape == (None, 10)
