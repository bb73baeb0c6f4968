"""Show as code: generated Keras scripts run on their own and build the app's exact models."""

import ast
import json
import os
import re
import runpy
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lib.data import catalog, datasets
from lib.models import architectures
from lib.training import codegen, presets
from lib.training.config import TrainConfig

CUSTOM_LAYERS = (
    {"type": "Conv2D", "filters": 8, "kernel_size": 5, "strides": 2, "padding": "same", "activation": "relu"},
    {"type": "BatchNormalization"},
    {"type": "AveragePooling2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dropout", "rate": 0.25},
    {"type": "Dense", "units": 24, "activation": "tanh"},
    {"type": "Dense", "units": "num_classes", "activation": "softmax"},
)
QUICK_ARGS = ["--epochs", "1", "--limit", "200"]
# Runs scripts one after another in one interpreter, each exactly as `python script.py ARGS`
# would (own globals, __name__ == "__main__", own argv): one TensorFlow start-up for all.
DRIVER = textwrap.dedent("""
    import runpy, sys
    for script, output in zip(sys.argv[1::2], sys.argv[2::2]):
        print("SCRIPT", script, flush=True)
        sys.argv = [script, *%r, "--output", output]
        runpy.run_path(script, run_name="__main__")
""")


def zoo_config(name: str) -> TrainConfig:
    """The tutorial recipe where there is one; the app's own cnn-best with augmentation otherwise."""
    if name in presets.PRESETS:
        return presets.get_preset(name).config()
    return TrainConfig(arch=name, augment=True, early_stopping_patience=2)


def results(stdout: str) -> dict:
    """{script path: RESULT dict} from a driver's or a script's output."""
    found, current = {}, None
    for line in stdout.splitlines():
        if line.startswith("SCRIPT "):
            current = line.split(" ", 1)[1]
        elif line.startswith(codegen.RESULT_PREFIX):
            found[current] = json.loads(line[len(codegen.RESULT_PREFIX):])
    return found


def run_python(args, data_dir, cwd):
    env = {**os.environ, "MNIST_STUDIO_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


def test_every_zoo_script_trains_and_counts_the_apps_parameters(tiny_data_dir, tmp_path):
    paths = {}
    for name in architectures.ZOO:
        path = tmp_path / codegen.script_name(zoo_config(name))
        path.write_text(codegen.script_for(zoo_config(name)), encoding="utf-8")
        paths[name] = path
    argv = [str(part) for name, path in paths.items() for part in (path, tmp_path / f"{name}.keras")]
    done = run_python(["-c", DRIVER % (QUICK_ARGS,), *argv], tiny_data_dir, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    found = results(done.stdout)
    for name, path in paths.items():
        config = zoo_config(name)
        shape = catalog.get_info(config.dataset, tiny_data_dir).input_shape
        assert found[str(path)]["params"] == architectures.count_params(config.layer_specs, shape, 10), name
        assert 0 <= found[str(path)]["test_accuracy"] <= 1 and found[str(path)]["epochs"] == 1
        assert (tmp_path / f"{name}.keras").is_file() and (tmp_path / f"{name}-history.csv").is_file()


def test_a_builder_model_script_runs_as_python_script_py(tiny_data_dir, tmp_path):
    """A custom model with stop-at-target and early stopping, run the way a learner would run it."""
    config = TrainConfig(arch="custom", layers=CUSTOM_LAYERS, target_metric="val_accuracy", target_value=0.99,
                         early_stopping_patience=1, lr_schedule="cosine", optimizer="sgd", learning_rate=0.05,
                         name="my model")
    script = tmp_path / codegen.script_name(config)
    script.write_text(codegen.script_for(config), encoding="utf-8")
    assert script.name == "my_model.py"
    done = run_python([script.name, "--epochs", "2", "--limit", "200"], tiny_data_dir, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = results(done.stdout)[None]
    assert result["params"] == architectures.count_params(CUSTOM_LAYERS, (28, 28, 1), 10)
    assert 1 <= result["epochs"] <= 2
    assert (tmp_path / "my_model.keras").is_file()
    history = (tmp_path / "my_model-history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and "val_accuracy" in history[0]


def test_the_script_holds_out_the_same_validation_images_as_the_app(tiny_data_dir, tmp_path):
    config = TrainConfig(arch="mlp-128", validation_split=0.2, limit=300, seed=7)
    script = tmp_path / "split_check.py"
    script.write_text(codegen.script_for(config), encoding="utf-8")
    namespace = runpy.run_path(str(script), run_name="split_check")  # definitions only, main() not run
    dataset = catalog.load_dataset("mnist", tiny_data_dir)
    app = datasets.prepare(dataset, validation_split=0.2, limit=300, seed=7)
    (x_train, y_train), (x_val, y_val) = namespace["split"](dataset.x_train, dataset.y_train, 300, 0.2, 7)
    np.testing.assert_array_equal(x_train, app.x_train)
    np.testing.assert_array_equal(y_val, app.y_val)
    np.testing.assert_array_equal(x_val, app.x_val)


@pytest.mark.parametrize("spec, code", [
    ({"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"}, 'layers.Conv2D(32, 3, activation="relu")'),
    ({"type": "Conv2D", "filters": 64, "kernel_size": 3, "padding": "same", "strides": 2},
     'layers.Conv2D(64, 3, strides=2, padding="same")'),
    ({"type": "MaxPooling2D", "pool_size": 2}, "layers.MaxPooling2D(2)"),
    ({"type": "Dense", "units": "num_classes", "activation": "softmax"}, 'layers.Dense(NUM_CLASSES, activation="softmax")'),
    ({"type": "Dropout", "rate": 0.5}, "layers.Dropout(0.5)"),
    ({"type": "Flatten"}, "layers.Flatten()"),
    ({"type": "Activation", "activation": "relu"}, 'layers.Activation("relu")'),
])
def test_layers_read_like_the_tutorials(spec, code):
    assert codegen.layer_code(spec) == code


def test_scripts_carry_the_recipe_and_compile_for_every_preset():
    for preset in presets.PRESETS.values():
        text = codegen.script_for(preset.config())
        compile(text, preset.name, "exec")
        config = preset.config()
        assert f"EPOCHS = {config.epochs}\n" in text and f"BATCH_SIZE = {config.batch_size}\n" in text
        assert f"NORMALIZE = {config.normalize}" in text and f'OPTIMIZER = "{config.optimizer}"' in text
    softmax = codegen.script_for(presets.get_preset("softmax").config())
    assert 'LABEL_ENCODING = "one_hot"' in softmax and "LEARNING_RATE = 0.0001" in softmax
    assert "keras.datasets" in softmax and "make_augmenter" not in softmax
    target = codegen.script_for(presets.get_preset("mlp-512-stop-at-95").config())
    assert 'TARGET_METRIC = "accuracy"' in target and "class TargetReached" in target


def test_a_broken_layer_list_is_refused_before_any_script_is_written():
    config = TrainConfig(arch="custom", layers=({"type": "Dense", "units": 10, "activation": "softmax", "oops": 1},))
    with pytest.raises(architectures.InvalidArchitecture, match="no argument 'oops'"):
        codegen.script_for(config)


# ---------------------------------------------------------------- hostile text stays data

PAYLOAD = '"""; open("pwned", "w").write("x"); """'
HOSTILE_TEXTS = [
    '"""', "'''", '"', "'", 'say "hi"', "it's", "\"'\"'", "C:\\xyz", "C:\\new\\table\\u0041\\N{BULLET}",
    "ends with a backslash\\", "\\", "two\nlines", "carriage\rreturn", "crlf\r\n", "tab\there", "nul\x00byte",
    "Zahl für 数字 🙂", "\u202eyp.live", "bidi \u200e\u200f\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u061c",
    "lone \ud800 surrogate", "{braces} {0} %s # not a comment", PAYLOAD, "'''; open('pwned', 'w').write('x'); '''",
    '"; open("pwned", "w").write("x"); "', '\\"""; open("pwned", "w").write("x"); """\\',
    'x\n""" + open("pwned", "w").write("x") + """', "\n# comment\nimport os\n",
]
# Many of the above at once, the name run for real: pasted into the docstring as before, it wrote ./pwned.
HOSTILE_NAME = PAYLOAD + " '''\n\r\u202e 数字 \"' D:\\data tail\\"


def code_shape(text: str) -> str:
    """The script's syntax tree with every string constant blanked: equal shapes mean text only became data."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = "..."
    return ast.dump(tree)


def assigned(text: str, name: str):
    """The value a top-level `NAME = <literal>` assigns, read back with ast.literal_eval."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} = ... in the script")


def assert_plain_source(text: str):
    """Encodable as UTF-8, and no control or bidi character that could hide code from a reader."""
    text.encode("utf-8")
    assert all(char == "\n" or char.isprintable() for char in text), "unprintable character in the source"


@pytest.mark.parametrize("name", HOSTILE_TEXTS)
def test_a_hostile_run_name_becomes_data_never_code(name):
    config = TrainConfig(arch="mlp-128", name=name)
    text = codegen.script_for(config)
    compile(text, "hostile.py", "exec")
    assert_plain_source(text)
    assert code_shape(text) == code_shape(codegen.script_for(TrainConfig(arch="mlp-128", name="plain")))
    assert assigned(text, "RUN_NAME") == name
    docstring = ast.get_docstring(ast.parse(text), clean=False)
    assert docstring.startswith(f"{name}: an MNIST Studio run as a plain Keras 3 script.\n")
    assert re.fullmatch(r"[a-z0-9_]+\.py", codegen.script_name(config))


@pytest.mark.parametrize("dataset", HOSTILE_TEXTS)
def test_a_hostile_dataset_name_becomes_data_never_code(dataset):
    text = codegen.script_for(TrainConfig(dataset=dataset))
    compile(text, "hostile.py", "exec")
    assert_plain_source(text)
    assert code_shape(text) == code_shape(codegen.script_for(TrainConfig(dataset="no_such_data")))
    assert assigned(text, "DATASET") == dataset
    assert assigned(text, "RUN_NAME") == f"cnn-fast · {dataset}"
    assert f"Architecture cnn-fast on {dataset}, with" in ast.get_docstring(ast.parse(text), clean=False)


def test_a_hostile_name_round_trips_through_a_real_run(tiny_data_dir, tmp_path, monkeypatch, capsys):
    """The payload in a name is printed back as the name; it never runs, and the script trains to the end.

    Run in this process as `python script.py ARGS` would run it (__main__, its argv, its folder): the
    builder test above runs a script as a program; a second TensorFlow start-up adds nothing here."""
    config = TrainConfig(arch="custom", layers=CUSTOM_LAYERS, name=HOSTILE_NAME)
    script = tmp_path / codegen.script_name(config)
    script.write_text(codegen.script_for(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_STUDIO_DATA_DIR", str(tiny_data_dir))
    monkeypatch.setattr(sys, "argv", [script.name, *QUICK_ARGS])
    runpy.run_path(script.name, run_name="__main__")  # a failing script raises here
    assert not (tmp_path / "pwned").exists()
    result = results(capsys.readouterr().out)[None]
    assert result["name"] == HOSTILE_NAME and result["epochs"] == 1
    assert (tmp_path / script.name.replace(".py", ".keras")).is_file()


class _SlyText(str):
    """A string whose repr is code: a literal must be built from the value, not from its repr."""

    def __repr__(self):
        return 'open("pwned", "w")'

    __str__ = __repr__


class _SlyNumber(int):
    def __repr__(self):
        return 'open("pwned", "w")'

    __str__ = __repr__


def test_values_whose_repr_is_code_still_become_their_value():
    layers = ({"type": "Conv2D", "filters": _SlyNumber(8), "padding": _SlyText("same")}, {"type": "Flatten"},
              {"type": "Dense", "units": "num_classes", "activation": "softmax"})
    config = TrainConfig(arch="custom", layers=layers, seed=_SlyNumber(3), name=_SlyText("sly"),
                         dataset=_SlyText("mnist"))
    text = codegen.script_for(config)
    assert "pwned" not in text
    assert 'layers.Conv2D(8, 3, padding="same")' in text
    assert assigned(text, "SEED") == 3 and assigned(text, "RUN_NAME") == "sly" and assigned(text, "DATASET") == "mnist"


@pytest.mark.parametrize("field, value", [
    ("seed", "0\nopen('pwned', 'w')"),
    ("seed", 1.5),
    ("normalize", "True; open('pwned', 'w')"),
    ("augment", "yes"),
    ("name", ["not", "text"]),
    ("dataset", {"not": "text"}),
    ("target_value", "0.9; open('pwned', 'w')"),
    ("learning_rate", True),
])
def test_settings_of_the_wrong_kind_are_refused_not_written(field, value):
    """TrainConfig refuses them; a config that slipped past it (fields set behind its back) is still
    refused by the code generator, never written."""
    with pytest.raises(ValueError, match="must be"):
        TrainConfig(**{field: value})
    config = TrainConfig()
    object.__setattr__(config, field, value)
    with pytest.raises(ValueError, match="cannot be written as code"):
        codegen.script_for(config)


@pytest.mark.parametrize("layer", [
    {"type": "Conv2D", "filters": 8, "padding": 'same"); open("pwned", "w"); ("'},
    {"type": "Dense", "units": 10, "activation": 'relu")\nopen("pwned", "w")\n#'},
    {"type": "Dense", "units": '10); open("pwned", "w"); ('},
    {"type": 'Flatten(); open("pwned", "w"); layers.Flatten'},
    {"type": "Dropout", "rate": float("nan")},
])
def test_hostile_layer_values_are_refused_before_any_script_is_written(layer):
    config = TrainConfig(arch="custom", layers=(layer, {"type": "Dense", "units": 10, "activation": "softmax"}))
    with pytest.raises(architectures.InvalidArchitecture):
        codegen.script_for(config)


def test_a_name_without_letters_or_digits_still_gets_a_script_file_name():
    assert codegen.script_name(TrainConfig(arch="mlp-128", name="数字 ✓")) == "mlp_128_mnist.py"
    assert codegen.script_name(TrainConfig(arch="mlp-128", name='"""')) == "mlp_128_mnist.py"



def test_an_infinite_target_is_written_as_a_float_not_a_name():
    text = codegen.script_for(TrainConfig(target_value=float("inf")))
    assert '\nTARGET_VALUE = float("inf")\n' in text  # a bare `inf` is a NameError when the script runs
