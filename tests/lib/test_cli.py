"""The command line: exit codes, one-line errors and JSON shapes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib import cli
from tests.reference import REFERENCE_PARAMS

PROJECT = Path(__file__).resolve().parents[2]


def run_cli(*args, env_extra=None):
    """`python -m lib ARGS` as a program: one per entry path (each starts TensorFlow anew, seconds on CI)."""
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lib", *args], capture_output=True, text=True, cwd=PROJECT,
                          env=env, timeout=300)


def run_main(capsys, *args) -> subprocess.CompletedProcess:
    """The same command through `cli.main` in this process: its exit code, stdout and stderr as run_cli gives them."""
    code = cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["python", "-m", "lib", *args], code, out, err)


def test_zoo_json_lists_reference_parameter_counts():
    done = run_cli("zoo", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    for name, params in REFERENCE_PARAMS.items():
        assert rows[name]["params"] == params
        assert rows[name]["layers"][-1]["type"] == "Dense"
    assert "cnn-best" in rows


@pytest.mark.parametrize(
    "args, message, exit_code",
    [
        (["train", "--arch", "nope"], "Unknown architecture: 'nope'", cli.EXIT_USAGE),
        (["train", "--dataset", "nope"], "Unknown dataset: 'nope'", cli.EXIT_USAGE),
        (["train", "--epochs", "many"], "invalid int value", cli.EXIT_USAGE),
        (["train", "--optimizer", "adagrad"], "invalid choice: 'adagrad'", cli.EXIT_USAGE),
        (["evaluate", "not-a-run"], "No run 'not-a-run'", cli.EXIT_FAILED),
    ],
)
def test_bad_arguments_give_one_line_errors_and_non_zero_exit(capsys, args, message, exit_code, tmp_path):
    code = cli.main([*args, "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == exit_code
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("args, help_command", [(["bogus"], "python -m lib --help"),
                                                (["train", "--epochs", "many"], "python -m lib train --help")])
def test_a_usage_error_points_at_the_help_of_the_command_used(capsys, args, help_command):
    assert cli.main(args) == cli.EXIT_USAGE
    assert f"(see `{help_command}`)" in capsys.readouterr().err


def test_missing_data_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from lib.data import catalog

    monkeypatch.setattr(catalog, "_keras_load", lambda name: (_ for _ in ()).throw(OSError("offline")))
    code = cli.main(["train", "--dataset", "fashion_mnist", "--data-dir", str(tmp_path), "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert "fashion_mnist.npz" in err and len(err.strip().splitlines()) == 1


def test_train_runs_evaluate_and_predict_json(tiny_data_dir, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    done = run_cli("train", "--dataset", "mnist", "--arch", "mlp-128", "--epochs", "1", "--limit", "300",
                   "--data-dir", str(tiny_data_dir), "--runs-dir", str(runs_dir), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"run_id", "test_accuracy", "test_loss", "seconds", "params"} <= set(summary)
    assert summary["params"] == 101_770

    listed = json.loads(run_main(capsys, "runs", "--runs-dir", str(runs_dir), "--json").stdout)
    assert [row["run_id"] for row in listed if not row["read_only"]] == [summary["run_id"]]

    evaluated = json.loads(run_main(capsys, "evaluate", summary["run_id"], "--data-dir", str(tiny_data_dir),
                                   "--runs-dir", str(runs_dir), "--json").stdout)
    assert evaluated["test_accuracy"] == pytest.approx(summary["test_accuracy"])

    digit = np.zeros((100, 100), dtype=np.uint8)
    digit[20:80, 45:55] = 255
    png = tmp_path / "one.png"
    Image.fromarray(digit).save(png)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    done = run_main(capsys, "predict", "--model", summary["run_id"], str(png), str(text), "--runs-dir", str(runs_dir), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert lines[0]["file"] == str(png) and isinstance(lines[0]["label"], int) and "warning" not in lines[0]
    assert len(lines[0]["probabilities"]) == 10 and sum(lines[0]["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert lines[1]["file"] == str(text) and "error" in lines[1]
    # A run folder path works as well as an id.
    by_path = run_main(capsys, "predict", "--model", summary["path"], str(png), "--json")
    assert json.loads(by_path.stdout.splitlines()[0])["label"] == lines[0]["label"]


def test_train_help_lists_the_training_modules_choices_and_defaults(capsys):
    from lib.training.config import LR_SCHEDULES, OPTIMIZERS, PRECISIONS, config_defaults

    with pytest.raises(SystemExit) as exited:  # argparse prints the help and exits 0
        cli.main(["train", "--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for option, choices in (("--optimizer", OPTIMIZERS), ("--lr-schedule", LR_SCHEDULES),
                            ("--precision", PRECISIONS)):
        assert f"{option} {{{','.join(choices)}}}" in help_text
    parser_defaults = cli._build_parser().parse_args(["train"])
    config = config_defaults()
    assert (parser_defaults.arch, parser_defaults.epochs, parser_defaults.batch_size, parser_defaults.lr_schedule) == (
        config["arch"], config["epochs"], config["batch_size"], config["lr_schedule"])


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_train_learning_rate_defaults_by_optimizer(optimizer, monkeypatch, tmp_path):
    """The CLI's learning rate for each optimizer is the one rule the Train page uses too (RMSprop 1e-4)."""
    from lib.execution import pipeline

    seen = {}

    def fake_train_and_save(config, **kwargs):
        seen["config"] = config
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipeline, "train_and_save", fake_train_and_save)
    cli.main(["train", "--optimizer", optimizer, "--runs-dir", str(tmp_path), "--data-dir", str(tmp_path)])
    assert seen["config"].learning_rate == {"adam": 1e-2, "sgd": 1e-3, "rmsprop": 1e-4}[optimizer]



def test_presets_json_lists_every_recipe_with_its_lesson_settings_and_reported_result(capsys):
    from lib.training import presets

    assert cli.main(["presets", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(presets.PRESETS)
    softmax = rows["softmax"]
    assert softmax["arch"] == "softmax" and softmax["settings"]["optimizer"] == "rmsprop"
    assert softmax["settings"]["learning_rate"] == 1e-4 and softmax["settings"]["normalize"] is False
    assert softmax["reported"] == {"text": "88.5% test accuracy", "metric": "test_accuracy", "value": 0.885, "epoch": None}
    assert rows["mlp-512-raw"]["lessons"] == ["6"] and rows["sgd-lr-10"]["lessons"] == ["lr"]


def test_code_prints_the_same_script_as_the_app_for_a_preset_or_settings(capsys):
    from lib.training import codegen, presets
    from lib.training.config import TrainConfig

    assert cli.main(["code", "--preset", "mlp-512-raw", "--epochs", "5"]) == 0
    assert capsys.readouterr().out == codegen.script_for(presets.get_preset("mlp-512-raw").config(epochs=5))
    assert cli.main(["code", "--arch", "mlp-128", "--optimizer", "sgd", "--lr", "0.1", "--no-normalize"]) == 0
    text = capsys.readouterr().out
    assert text == codegen.script_for(TrainConfig(arch="mlp-128", optimizer="sgd", learning_rate=0.1, normalize=False))
    compile(text, "mlp_128.py", "exec")


def test_a_preset_refuses_settings_it_fixes_in_one_line(capsys):
    assert cli.main(["code", "--preset", "softmax", "--lr", "0.1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --preset softmax sets --lr itself; only --limit, --epochs, --seed and --name change a preset")
    assert cli.main(["code", "--preset", "nope"]) == 1
    assert "Unknown preset: 'nope'" in capsys.readouterr().err


def test_train_preset_uses_the_tutorial_recipe_and_a_diverging_one_says_so(tiny_data_dir, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    common = ("--limit", "300", "--data-dir", str(tiny_data_dir), "--runs-dir", str(runs_dir), "--json")
    done = run_main(capsys, "train", "--preset", "mlp-512-stop-at-95", "--epochs", "2", *common)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["params"] == 407_050
    meta = json.loads((Path(summary["path"]) / "meta.json").read_text())
    assert meta["config"]["name"] == "mlp-512-stop-at-95" and meta["config"]["epochs"] == 2
    assert (meta["config"]["target_metric"], meta["config"]["lr_schedule"]) == ("accuracy", "constant")

    done = run_main(capsys, "train", "--preset", "sgd-lr-10", "--epochs", "3", *common)
    assert done.returncode == 1  # no usable model
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "diverged" and summary["epochs_completed"] < 3
    assert "Training diverged" in summary["reason"] and "Lower the learning rate" in summary["reason"]


def test_inside_json_gives_layers_label_and_saliency_box_for_the_default_model(tmp_path, capsys):
    digit = np.zeros((100, 100), dtype=np.uint8)
    digit[15:85, 46:56] = 255  # a "1": one vertical stroke
    png = tmp_path / "one.png"
    Image.fromarray(digit).save(png)
    done = run_main(capsys, "inside", "--model", "default", str(png), "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["label"] == 1 and report["class_name"] == "1"
    assert [layer["name"] for layer in report["layers"]][:2] == ["conv2d_1", "batch_normalization_2"]
    assert report["layers"][0]["shape"] == [28, 28, 32] and report["layers"][-1]["shape"] == [10]
    assert len(report["layers"]) == 17 and report["saliency_method"] == "Grad-CAM x input"
    top, left, bottom, right = report["saliency_box"]
    assert 0 <= top <= bottom <= 27 and 0 <= left <= right <= 27
    assert (bottom - top + 1) * (right - left + 1) < 28 * 28 / 2  # 10% of the mass sits in a small part


def test_inside_errors_are_one_line(tmp_path, capsys):
    import keras

    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(blank)
    done = run_cli("inside", "--model", "default", str(blank), "--json")  # the program: TF's start-up stays silent
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [f"error: {blank}: the image is blank: no ink found"]

    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    merged = keras.layers.Concatenate()([keras.layers.Dense(4)(flat), keras.layers.Dense(4)(flat)])
    branchy = tmp_path / "branchy.keras"
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(merged)).save(branchy)
    digit = tmp_path / "digit.png"
    Image.fromarray(np.pad(np.full((20, 6), 255, dtype=np.uint8), 10)).save(digit)
    done = run_main(capsys, "inside", "--model", str(branchy), str(digit))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "Missing: a Sequential model" in done.stderr


def test_export_then_import_makes_a_new_run_and_a_bare_model_needs_a_dataset(tiny_data_dir, tmp_path, capsys):
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    run, _ = train_and_save(TrainConfig(arch="softmax", epochs=1, limit=200), data_dir=tiny_data_dir,
                            runs_dir=source_dir)
    done = run_main(capsys, "export", run.run_id, str(tmp_path), "--runs-dir", str(source_dir))
    assert done.returncode == 0, done.stderr
    bundle = tmp_path / f"{run.run_id}.studio.zip"
    assert bundle.is_file() and str(bundle) in done.stdout

    assert cli.main(["import", str(bundle), "--data-dir", str(tiny_data_dir), "--runs-dir", str(target_dir),
                     "--json"]) == 0
    row = json.loads(capsys.readouterr().out)  # re-scored on the same test set: the same accuracy, measured
    assert row["run_id"] != run.run_id and row["test_accuracy"] == pytest.approx(run.meta["test_accuracy"], abs=1e-9)

    assert cli.main(["import", str(run.model_path), "--runs-dir", str(target_dir)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "--dataset mnist" in err and len(err.strip().splitlines()) == 1

    assert cli.main(["import", str(run.model_path), "--dataset", "mnist", "--data-dir", str(tiny_data_dir),
                     "--runs-dir", str(target_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "imported"
    assert cli.main(["runs", "--runs-dir", str(target_dir), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len([r for r in listed if not r["read_only"]]) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "20260101-000000-aaaaaa", "out.zip"], "No run '20260101-000000-aaaaaa'"),
        (["import", "missing.studio.zip"], "There is no file at missing.studio.zip"),
        (["import", "notes.txt"], "notes.txt is neither a run bundle (.studio.zip) nor a Keras model (.keras)."),
    ],
)
def test_export_and_import_errors_are_one_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    code = cli.main([*args, "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED and message in err and len(err.strip().splitlines()) == 1


def test_importing_a_lambda_model_names_the_problem(capsys, tmp_path, tiny_data_dir):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x + 1),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "lambda.keras")
    code = cli.main(["import", str(tmp_path / "lambda.keras"), "--dataset", "mnist", "--data-dir", str(tiny_data_dir),
                     "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED and "a Lambda layer" in err and "will not run for safety" in err
    assert not any((tmp_path / "runs").glob("2*"))


def test_predict_with_a_diverged_run_says_so_on_every_answer(tiny_data_dir, tmp_path, capsys):
    """A run whose loss exploded still answers: every --json line carries the warning with the cause and the
    fix, the plain output says so on each line and on stderr; with NaN weights it answers nothing."""
    from lib.execution.pipeline import train_and_save
    from lib.store import runs
    from lib.training.config import TrainConfig

    runs_dir = tmp_path / "runs"
    config = TrainConfig(dataset="mnist", arch="mlp-128", epochs=1, limit=300, batch_size=32, optimizer="sgd",
                         learning_rate=10.0, lr_schedule="constant")
    run, result = train_and_save(config, data_dir=tiny_data_dir, runs_dir=runs_dir)
    assert result.status == "diverged"
    digit = np.zeros((100, 100), dtype=np.uint8)
    digit[20:80, 45:55] = 255
    png = tmp_path / "one.png"
    Image.fromarray(digit).save(png)
    predict = ["predict", "--model", run.run_id, str(png), str(png), "--runs-dir", str(runs_dir)]

    assert cli.main([*predict, "--json"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert len(lines) == 2 and all(isinstance(line["label"], int) for line in lines)
    for line in lines:
        assert line["warning"] == f"diverged: its answers mean nothing. {result.stop_reason}"
    assert "Lower the learning rate" in result.stop_reason
    assert err.startswith(f"warning: run {run.display_name!r} diverged: its answers mean nothing.")

    assert cli.main(predict) == 0
    out, err = capsys.readouterr()
    assert all(line.endswith("meaningless: the run diverged") for line in out.strip().splitlines())
    assert "diverged: its answers mean nothing" in err and result.stop_reason in err

    model = runs.load_model(run)
    model.set_weights([np.full_like(weights, np.nan) for weights in model.get_weights()])
    model.save(run.model_path)
    assert cli.main([*predict, "--json"]) == cli.EXIT_FAILED
    out, _ = capsys.readouterr()
    lines = [json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON")) for line in
             out.strip().splitlines()]
    assert all(line["error"] == cli.NAN_ANSWER and line["warning"].startswith("diverged") for line in lines)


def test_export_formats_write_checked_files_and_the_bundle_stays_the_default(tiny_data_dir, tmp_path, capsys):
    """`export RUN PATH --format F`: each format's file, checked against Keras (said on stdout), named
    <run id><suffix> in a folder; cached in the run's exports folder; no --format still writes the bundle."""
    from lib.execution.pipeline import train_and_save
    from lib.models import exports
    from lib.training.config import TrainConfig

    runs_dir, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    run, _ = train_and_save(TrainConfig(arch="cnn-gap-small", epochs=1, limit=200), data_dir=tiny_data_dir,
                            runs_dir=runs_dir)
    dirs = ["--runs-dir", str(runs_dir), "--data-dir", str(tiny_data_dir)]
    written = {}
    done = run_cli("export", run.run_id, str(out), "--format", "onnx", *dirs)  # the real entry point, once
    assert done.returncode == 0 and done.stderr == "", done.stderr
    for fmt in ("onnx", "tflite", "tflite-quant", "savedmodel", "keras"):
        if fmt != "onnx":
            assert cli.main(["export", run.run_id, str(out), "--format", fmt, *dirs]) == 0
            done = subprocess.CompletedProcess([], 0, capsys.readouterr().out, "")
        written[fmt] = out / f"{run.run_id}{cli.EXPORT_SUFFIXES[fmt]}"
        assert written[fmt].is_file() and str(written[fmt]) in done.stdout
        if fmt != "keras":
            assert "same class on 100/100" in done.stdout
            assert written[fmt].read_bytes() == (exports.export_dir(run.path) / exports.FORMATS[fmt].file_name).read_bytes()
    assert written["keras"].read_bytes() == run.model_path.read_bytes()
    assert exports.load_runtime("onnx", written["onnx"])(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 10)

    done = run_main(capsys, "export", run.run_id, str(tmp_path / "named.onnx"), "--format", "onnx", *dirs)
    assert done.returncode == 0 and (tmp_path / "named.onnx").read_bytes() == written["onnx"].read_bytes()
    done = run_main(capsys, "export", run.run_id, str(out), "--runs-dir", str(runs_dir))
    assert done.returncode == 0 and (out / f"{run.run_id}.studio.zip").is_file()


def test_an_export_that_fails_its_check_is_not_written_and_says_why(tiny_data_dir, tmp_path, capsys):
    from lib.execution.pipeline import train_and_save
    from lib.store import runs
    from lib.training.config import TrainConfig

    runs_dir = tmp_path / "runs"
    run, _ = train_and_save(TrainConfig(arch="softmax", epochs=1, limit=200), data_dir=tiny_data_dir,
                            runs_dir=runs_dir)
    model = runs.load_model(run)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    model.save(run.model_path)
    target = tmp_path / "model.tflite"
    code = cli.main(["export", run.run_id, str(target), "--format", "tflite", "--runs-dir", str(runs_dir),
                     "--data-dir", str(tiny_data_dir)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED and len(err.strip().splitlines()) == 1
    assert "TFLite (float32) export of run" in err and "answers NaN" in err
    assert not target.exists()
    assert cli.main(["export", run.run_id, str(tmp_path / "nowhere" / "m.onnx"), "--format", "onnx",
                     "--runs-dir", str(runs_dir)]) == cli.EXIT_USAGE
    assert "There is no folder" in capsys.readouterr().err
