"""Exports: a zoo CNN and an MLP as SavedModel, TFLite (float32 and quantized) and ONNX, each reloaded
with its own runtime and compared with Keras on 100 test images; the snippets run on a test image;
a failing or disagreeing export is not offered; the cache, the child process and the queue."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.data import drawing
from lib.execution import exporting
from lib.models import exports, inference, snippets
from lib.store import profile, runs, workspaces

PROJECT = Path(__file__).resolve().parents[2]
MODELS = ("cnn-gap-small", "mlp-128")


def _train(data_dir, runs_dir, arch, **settings):
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    run, _ = train_and_save(TrainConfig(dataset="mnist", arch=arch, epochs=1, limit=300, **settings),
                            data_dir=data_dir, runs_dir=runs_dir)
    return run


@pytest.fixture(scope="module")
def exported(tiny_data_dir, tmp_path_factory):
    """Each model trained for one epoch on 300 images and exported to every format once. In float32 on
    every CPU: precision auto trains in bfloat16 where the CPU has it natively, and that run's exports are
    held to the lossy tolerance (test_a_mixed_precision_run_exports_in_float32), not to float32's 1e-4."""
    runs_dir = tmp_path_factory.mktemp("export_runs")
    made = {}
    for arch in MODELS:
        run = _train(tiny_data_dir, runs_dir, arch, precision="float32")
        checks = exports.make_exports(run.model_path, exports.export_dir(run.path), exports.ModelFacts.of(run),
                                      data_dir=tiny_data_dir)
        made[arch] = (run, checks)
    return made


@pytest.fixture(scope="module")
def test_images(tiny_data_dir):
    with np.load(tiny_data_dir / "mnist.npz") as npz:
        return npz["x_test"][:100]


@pytest.mark.parametrize("fmt", list(exports.FORMATS))
@pytest.mark.parametrize("arch", MODELS)
def test_each_export_reloads_in_its_runtime_and_agrees_with_keras(exported, test_images, arch, fmt):
    run, checks = exported[arch]
    check = checks[fmt]
    assert check.ok, check.reason
    path = exports.export_dir(run.path) / exports.FORMATS[fmt].file_name
    assert path.stat().st_size == check.bytes > 1000
    assert check.images == check.agree + check.near_ties == 100
    assert check.image_source == "100 test images of MNIST handwritten digits"
    assert check.max_prob_diff <= check.tolerance

    keras_probs = inference.predict_proba(runs.load_model(run), test_images, normalize=True)
    runtime_probs = exports.load_runtime(fmt, path)(inference.model_input(test_images, normalize=True))
    assert runtime_probs.shape == keras_probs.shape == (100, 10)
    if fmt != "tflite-quant":
        np.testing.assert_array_equal(runtime_probs.argmax(axis=1), keras_probs.argmax(axis=1))
    np.testing.assert_allclose(runtime_probs, keras_probs, atol=exports.LOSSY_TOLERANCE if "quant" in fmt else 1e-4)


def test_a_quantized_export_may_differ_only_where_keras_is_torn():
    """Float exports must pick Keras' class on every image; a quantized one may differ only where Keras'
    top two are within NEAR_TIE (it cannot tell them apart either), and the check says how many."""
    reference = np.array([[0.9, 0.1], [0.51, 0.49], [0.8, 0.2]], dtype=np.float32)
    flipped_tie = np.array([[0.9, 0.1], [0.49, 0.51], [0.8, 0.2]], dtype=np.float32)
    measured = exports.compare(flipped_tie, reference, lossy=True)
    assert measured == {"max_prob_diff": pytest.approx(0.02), "agree": 2, "images": 3, "near_ties": 1}
    assert exports.disagreement(measured, exports.LOSSY_TOLERANCE, lossy=True) == ""
    float_measured = exports.compare(flipped_tie, reference, lossy=False)
    assert exports.disagreement(float_measured, exports.FLOAT_TOLERANCE, lossy=False) == (
        "it predicts another class than Keras on 1 of 3 check images")
    flipped_sure = np.array([[0.3, 0.7], [0.51, 0.49], [0.8, 0.2]], dtype=np.float32)
    assert exports.disagreement(exports.compare(flipped_sure, reference, lossy=True), 1.0, lossy=True) == (
        "it predicts another class than Keras on 1 of 3 check images, 1 of them where Keras is sure")
    drifted = reference + np.float32(0.06) * np.array([[1, -1]] * 3, dtype=np.float32)
    assert "differ from Keras' by up to 0.06" in exports.disagreement(
        exports.compare(drifted, reference, lossy=True), exports.LOSSY_TOLERANCE, lossy=True)
    check = exports.ExportCheck("tflite-quant", True, bytes=2048, max_prob_diff=0.02, agree=99, images=100,
                                near_ties=1, image_source="100 test images of MNIST")
    assert check.summary.endswith("same class on 99/100 (the other 1: Keras' top two classes within 0.05 of each other)")


def test_quantized_tflite_is_smaller_than_float32(exported):
    for _run, checks in exported.values():
        assert checks["tflite-quant"].bytes < 0.5 * checks["tflite"].bytes


@pytest.fixture(scope="module")
def drawing_png(test_images, tmp_path_factory):
    """A test digit as a person draws it: dark ink on white paper, 112x112."""
    path = tmp_path_factory.mktemp("picture") / "digit.png"
    Image.fromarray(255 - np.kron(test_images[0], np.ones((4, 4), dtype=np.uint8))).save(path)
    return path


@pytest.mark.parametrize("fmt", list(exports.FORMATS))
@pytest.mark.parametrize("arch", MODELS)
def test_the_snippet_runs_on_a_test_image_and_answers_as_the_app(exported, drawing_png, tmp_path, arch, fmt):
    run, _ = exported[arch]
    download = tmp_path / f"{run.run_id}-{exports.FORMATS[fmt].file_name}"
    download.write_bytes((exports.export_dir(run.path) / exports.FORMATS[fmt].file_name).read_bytes())
    script = tmp_path / snippets.script_name(fmt)
    script.write_text(snippets.snippet(fmt, exports.ModelFacts.of(run), name=run.display_name,
                                       file_name=download.name))
    done = subprocess.run([sys.executable, script.name, download.name, str(drawing_png)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    top = done.stdout.splitlines()[0].split("\t")
    _, app_probs = inference.predict_image(runs.load_model(run), run, drawing.load_image_file(drawing_png))
    assert top[0] == run.class_names[int(app_probs.argmax())]
    assert abs(float(top[1].rstrip("%")) / 100 - float(app_probs.max())) < 0.15  # the app also evens out strokes
    assert f"python {script.name} {download.name} picture.png" in script.read_text()


def test_snippets_spell_out_the_preprocessing_of_each_kind_of_model():
    digit = exports.ModelFacts((28, 28, 1), tuple("0123456789"), True, "digit", "mnist", "MNIST")
    raw_object = exports.ModelFacts((28, 28, 1), ("shirt", "shoe"), False, "object", "fashion", "Fashion")
    colour = exports.ModelFacts((32, 32, 3), ("cat", "dog"), True, "object", "pets", "Pets")
    text = snippets.snippet("onnx", digit)
    assert "centre of mass" in text and "round(SIZE * 20 / 28)" in text and "* 255.0" not in text
    text = snippets.snippet("tflite", raw_object)
    assert "centred" in text and "raw pixel values 0..255" in text and "* 255.0" in text
    assert "CLASS_NAMES = ['shirt', 'shoe']" in text
    text = snippets.snippet("savedmodel", colour)
    assert 'convert("RGB")' in text and "ImageOps.pad" in text and "(1, SIZE, SIZE, 3)" in text
    for fmt in exports.FORMATS:
        compile(snippets.snippet(fmt, colour), fmt, "exec")
    with pytest.raises(ValueError, match="Unknown export format"):
        snippets.snippet("pdf", digit)


def test_the_cache_holds_only_for_the_same_model_and_intact_files(exported, tmp_path):
    run, checks = exported["mlp-128"]
    out_dir = exports.export_dir(run.path)
    assert exports.read_checks(out_dir, run.model_path) == checks
    other = tmp_path / "other.keras"
    other.write_bytes(run.model_path.read_bytes() + b"\0")  # another model file: none of the checks is its
    assert exports.read_checks(out_dir, other) == {}
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "model.onnx").write_bytes(b"cut off")
    assert set(exports.read_checks(copy, run.model_path)) == set(exports.FORMATS) - {"onnx"}
    stored = json.loads((copy / "tflite.json").read_text())
    (copy / "tflite.json").write_text(json.dumps({**stored, "versions": {**stored["versions"], "keras": "3.0.0"}}))
    assert "tflite" not in exports.read_checks(copy, run.model_path)  # made by other libraries: made again
    assert not list(out_dir.glob(".tmp-*"))


def test_an_export_that_disagrees_with_keras_is_not_offered(exported, tiny_data_dir, tmp_path, monkeypatch):
    """A converter that writes a wrong model (here: the weights shuffled) is caught by the check; the
    file is not offered, and an older good file of the same format is removed rather than offered unchecked."""
    run, _ = exported["mlp-128"]
    out_dir = tmp_path / "exports"
    exports.make_exports(run.model_path, out_dir, exports.ModelFacts.of(run), ["onnx"], data_dir=tiny_data_dir)
    assert (out_dir / "model.onnx").is_file()
    real_write = exports.write_format

    def wrong_weights(model, name, path):
        import keras

        broken = keras.models.clone_model(model)
        broken.set_weights([np.random.default_rng(1).permutation(w.ravel()).reshape(w.shape)
                            for w in model.get_weights()])
        broken(np.zeros((1, 28, 28, 1), dtype=np.float32))
        real_write(broken, name, path)

    monkeypatch.setattr(exports, "write_format", wrong_weights)
    check = exports.make_exports(run.model_path, out_dir, exports.ModelFacts.of(run), ["onnx"],
                                 data_dir=tiny_data_dir)["onnx"]
    assert not check.ok and "another class than Keras" in check.reason and check.agree < 100
    assert not (out_dir / "model.onnx").exists()
    assert exports.read_checks(out_dir, run.model_path)["onnx"] == check


def test_a_failed_conversion_is_reported_not_raised(exported, tiny_data_dir, tmp_path, monkeypatch):
    run, _ = exported["mlp-128"]

    def fails(model, name, path):
        raise RuntimeError("op not supported: Foo\nmore detail")

    monkeypatch.setattr(exports, "write_format", fails)
    check = exports.make_exports(run.model_path, tmp_path, exports.ModelFacts.of(run), ["tflite"],
                                 data_dir=tiny_data_dir)["tflite"]
    assert not check.ok and check.reason == "TFLite (float32) conversion failed (RuntimeError: op not supported: Foo)"
    assert "not offered: TFLite (float32) conversion failed" in check.summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tflite.json"]


def test_a_model_answering_nan_is_not_exported(exported, tiny_data_dir, tmp_path):
    run, _ = exported["mlp-128"]
    model = runs.load_model(run)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    broken = tmp_path / "model.keras"
    model.save(broken)
    checks = exports.make_exports(broken, tmp_path / "exports", exports.ModelFacts.of(run), data_dir=tiny_data_dir)
    assert all(not check.ok and "answers NaN" in check.reason for check in checks.values())
    assert sorted(p.suffix for p in (tmp_path / "exports").iterdir()) == [".json"] * 4


def test_a_mixed_precision_run_exports_in_float32(tiny_data_dir, tmp_path):
    run = _train(tiny_data_dir, tmp_path, "mlp-128", precision="mixed")
    assert run.meta["precision"].startswith("mixed")
    facts = exports.ModelFacts.of(run)
    assert facts.mixed_precision
    checks = exports.make_exports(run.model_path, tmp_path / "exports", facts, ["onnx", "tflite"],
                                  data_dir=tiny_data_dir)
    for check in checks.values():
        assert check.ok and check.agree == 100 and check.tolerance == exports.LOSSY_TOLERANCE, check.reason


def test_without_its_dataset_an_export_is_checked_on_generated_images(exported, tmp_path):
    run, _ = exported["mlp-128"]
    facts = exports.ModelFacts.of(run)
    images, source = exports.check_images(exports.ModelFacts(**{**facts.__dict__, "dataset": "gone"}), tmp_path)
    assert images.shape == (100, 28, 28, 1) and images.dtype == np.uint8
    assert source == "100 generated images (its dataset is not available here)"


def test_the_child_process_makes_them_and_says_what_went_wrong_in_one_line(exported, tiny_data_dir, tmp_path):
    run, _ = exported["cnn-gap-small"]
    facts = exports.ModelFacts.of(run)
    exporting.run_child(exports.request_json(run.model_path, tmp_path, facts, ["tflite-quant"],
                                             data_dir=tiny_data_dir))
    assert exports.read_checks(tmp_path, run.model_path)["tflite-quant"].ok
    with pytest.raises(exports.ExportFailed, match="There is no model file at"):
        exporting.run_child(exports.request_json(tmp_path / "missing.keras", tmp_path, facts, ["onnx"]))
    done = subprocess.run([sys.executable, "-m", "lib.models.exports", "{not json"], cwd=PROJECT,
                          capture_output=True, text=True)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: ")


def test_engine_loads_no_runtime_until_an_export_is_made():
    """Pages that do not export never import the runtimes or converters: their modules are lazy."""
    code = ("import sys, lib.execution.exporting, lib.models.snippets, lib.cli, lib.ui.exports; "
            f"print(sorted(set({list(exports.PACKAGES)!r}) & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_manager_makes_one_request_per_visitor_and_run(exported, tiny_data_dir, tmp_path):
    run, _ = exported["mlp-128"]
    calls = []
    manager = exporting.ExportManager(data_dir=tiny_data_dir, runner=lambda request: calls.append(json.loads(request)))
    workspace = workspaces.Workspace(run.path.parent)
    key = manager.request(run, workspace, "visitor-a")
    assert key == str(exports.export_dir(run.path))
    assert manager.wait(key).state == exporting.DONE
    assert calls[0]["out"] == key and calls[0]["formats"] == list(exports.FORMATS)

    blocked = exporting.ExportManager(runner=lambda request: __import__("time").sleep(1))
    blocked.request(run, workspace, "visitor-a")
    other = workspaces.Workspace(tmp_path / "elsewhere")
    readonly = runs.RunInfo(run.run_id, run.path, run.meta, read_only=True)
    with pytest.raises(exporting.ExportRefused, match="one at a time"):
        blocked.request(readonly, other, "visitor-a")
    assert blocked.request(run, workspace, "visitor-b") == key  # the same run under way: no second task
    ended = blocked.wait(key)
    assert ended.state == exporting.DONE


def test_a_read_only_run_exports_into_the_visitors_workspace(exported, tmp_path):
    run, _ = exported["mlp-128"]
    readonly = runs.RunInfo(run.run_id, run.path, run.meta, read_only=True)
    workspace = workspaces.Workspace(tmp_path / "visitor")
    folder = exporting.cache_dir(readonly, workspace)
    assert folder.parent == workspace.folder / exporting.READ_ONLY_EXPORTS
    assert folder.name == exports.model_digest(run.model_path)[:32]


def test_exports_past_the_workspace_quota_are_taken_back(exported, tiny_data_dir, tmp_path, monkeypatch):
    """Public profile: what the child wrote counts in the visitor's quota; over it, it is deleted and said so."""
    run, _ = exported["cnn-gap-small"]
    monkeypatch.setenv(profile.PROFILE_ENV, "public")
    root = tmp_path / "root"
    workspace = workspaces.open_workspace(workspaces.new_key(), root=root)
    readonly = runs.RunInfo(run.run_id, run.path, run.meta, read_only=True)

    def big_child(request):
        out = Path(json.loads(request)["out"])
        out.mkdir(parents=True)
        (out / "model.onnx").write_bytes(b"\0" * 3 * profile.MB)

    monkeypatch.setenv("MNIST_STUDIO_WORKSPACE_QUOTA_MB", "2")
    with pytest.raises(workspaces.QuotaExceeded, match="It was not kept"):
        exporting.export_run(readonly, workspace, data_dir=tiny_data_dir, runner=big_child)
    assert not exporting.cache_dir(readonly, workspace).exists()


def test_a_run_deleted_meanwhile_is_not_brought_back_as_a_damaged_folder(exported, tiny_data_dir, tmp_path):
    run, _ = exported["mlp-128"]
    gone = tmp_path / "20260101-000000-abcdef"
    with pytest.raises(exports.ExportFailed, match="is gone"):
        exports.make_exports(run.model_path, exports.export_dir(gone), exports.ModelFacts.of(run), ["onnx"],
                             data_dir=tiny_data_dir)
    assert not gone.exists()


def test_the_browser_page_holds_the_model_and_the_runs_preprocessing_and_no_markup_from_class_names():
    from lib.models import webpage

    model = b"\x08\x07onnx bytes"
    digit = exports.ModelFacts((28, 28, 1), tuple("0123456789"), True, "digit", "mnist", "MNIST")
    page = webpage.page_for(digit, model, name="My <b>CNN</b>")
    assert base64_of(model) in page and webpage.ORT_WEB_DIST + webpage.ORT_WEB_SCRIPT in page
    assert "const BY_MASS = true;" in page and "const SCALE = 1;" in page and "Math.round(SIZE * 20 / 28)" in page
    assert "My &lt;b&gt;CNN&lt;/b&gt;" in page and "<b>CNN" not in page
    assert not [name for name in ("__MODEL__", "__SIZE__", "__BOX__", "__SCALE__") if name in page]
    hostile = exports.ModelFacts((32, 32, 1), ("</script><script>alert(1)</script>", "__SCALE__"), False, "object",
                                 "own", "Own")
    page = webpage.page_for(hostile, model)
    assert "</script><script>" not in page and '"__SCALE__"' in page  # a class name is data, never markup or code
    assert "const BY_MASS = false;" in page and "const SCALE = 255;" in page and "const SIZE = 32;" in page
    assert not webpage.offered_for(exports.ModelFacts((32, 32, 3), ("a", "b"), True, "object", "c", "C"))
    with pytest.raises(ValueError, match="one-channel"):
        webpage.page_for(exports.ModelFacts((32, 32, 3), ("a", "b"), True, "object", "c", "C"), model)


def base64_of(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def test_on_a_shared_server_an_export_waits_while_a_training_process_runs(exported):
    """Their memory (~0.9 GB each) must not add up: the export starts once the training has ended."""
    import threading
    import time

    run, _ = exported["mlp-128"]
    training = threading.Event()
    training.set()
    made = []
    manager = exporting.ExportManager(runner=made.append, busy=training.is_set)
    key = manager.request(run, workspaces.Workspace(run.path.parent), "visitor-a")
    deadline = time.monotonic() + 10
    while not (manager.task(key).behind_training or time.monotonic() > deadline):
        time.sleep(0.05)
    task = manager.task(key)
    assert task.state == exporting.QUEUED and task.behind_training and not made
    assert task.describe().startswith("Next, once the training")
    training.clear()
    assert manager.wait(key, timeout=30).state == exporting.DONE and len(made) == 1


def test_an_export_answering_nan_is_refused_and_its_check_stays_strict_json(exported, tiny_data_dir, tmp_path,
                                                                              monkeypatch):
    run, _ = exported["mlp-128"]
    real_write = exports.write_format

    def nan_weights(model, name, path):
        import keras

        broken = keras.models.clone_model(model)
        broken.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
        broken(np.zeros((1, 28, 28, 1), dtype=np.float32))
        real_write(broken, name, path)

    monkeypatch.setattr(exports, "write_format", nan_weights)
    check = exports.make_exports(run.model_path, tmp_path, exports.ModelFacts.of(run), ["tflite"],
                                 data_dir=tiny_data_dir)["tflite"]
    assert not check.ok and check.max_prob_diff is None and not (tmp_path / "model.tflite").exists()
    stored = json.loads((tmp_path / "tflite.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert stored["max_prob_diff"] is None and stored["reason"] == check.reason
