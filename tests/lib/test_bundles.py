"""Run bundles and model import: round trips, new ids, and every bad file named in the user's words."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from lib.data import catalog
from lib.models import inference, modelfiles
from lib.store import bundles, runs


@pytest.fixture(scope="module")
def trained_run(tiny_data_dir, tmp_path_factory):
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    folder = tmp_path_factory.mktemp("source_runs")
    run, _ = train_and_save(TrainConfig(arch="softmax", epochs=1, limit=200), data_dir=tiny_data_dir, runs_dir=folder)
    return run


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Real tiny .keras files: good, flat-input with logits, colour 32x32, 3 outputs, Lambda, custom layer."""
    import keras

    folder = tmp_path_factory.mktemp("models")

    def save(name, layers, shape=(28, 28, 1)):
        model = keras.Sequential([keras.Input(shape), *layers])
        model.save(folder / name)
        return folder / name

    save("good.keras", [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    save("flat_logits.keras", [keras.layers.Dense(10)], shape=(784,))
    save("colour32.keras", [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")], shape=(32, 32, 3))
    save("three.keras", [keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    save("lambda.keras", [keras.layers.Lambda(lambda x: x * 2), keras.layers.Flatten(), keras.layers.Dense(10)])

    @keras.saving.register_keras_serializable(package="tests")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    save("custom.keras", [Doubler(), keras.layers.Flatten(), keras.layers.Dense(10)])
    good = (folder / "good.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(good[: len(good) // 2])
    (folder / "text.keras").write_text("this is not a model")
    (folder / "old.h5").write_bytes(modelfiles.HDF5_SIGNATURE + bytes(100))
    return folder


def run_ids(runs_dir):
    return sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith(".")) if runs_dir.is_dir() else []


def leftovers(runs_dir):
    return [p.name for p in runs_dir.iterdir() if p.name.startswith(".tmp")] if runs_dir.is_dir() else []


def test_bundle_round_trip_makes_a_new_run_that_predicts_the_same(trained_run, runs_dir, tiny_data_dir):
    data = bundles.export_bundle(trained_run)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["history.csv", "manifest.json", "meta.json", "model.keras"]
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == bundles.FORMAT and manifest["format_version"] == bundles.FORMAT_VERSION
    first = bundles.import_bundle(data, runs_dir, data_dir=tiny_data_dir)
    second = bundles.import_bundle(data, runs_dir, data_dir=tiny_data_dir)
    assert first.run_id != second.run_id != trained_run.run_id  # always a new id, never overwritten
    assert run_ids(runs_dir) == sorted([first.run_id, second.run_id])
    imported = runs.get_run(first.run_id, runs_dir)
    # Scored again on the same test set it was trained against: the same numbers, now measured here.
    assert imported.meta["test_accuracy"] == pytest.approx(trained_run.meta["test_accuracy"], abs=1e-9)
    assert imported.meta["scores"] == "measured"
    assert imported.meta["claimed"]["test_accuracy"] == trained_run.meta["test_accuracy"]
    assert imported.meta["confusion"] == trained_run.meta["confusion"]
    assert imported.meta["imported_from"]["bundle_run_id"] == trained_run.run_id
    assert imported.display_name == trained_run.display_name
    x = catalog.load_dataset("mnist", tiny_data_dir).x_test[:16]
    before = inference.predict_proba(runs.load_model(trained_run), x, normalize=True)
    after = inference.predict_proba(runs.load_model(imported), x, normalize=True)
    np.testing.assert_allclose(after, before, rtol=1e-6)
    assert runs.load_history(imported).equals(runs.load_history(trained_run))


def test_a_forged_claim_is_replaced_by_the_measured_scores_and_kept_as_the_claim(trained_run, runs_dir,
                                                                                   tiny_data_dir):
    """A bundle whose meta.json says 99.99% (checksum updated, as a forger would) is listed with what its
    model really scores on the test set; the claim stays visible under "claimed"."""
    meta = {**trained_run.meta, "test_accuracy": 0.9999, "test_loss": 0.0001, "params": 5,
            "per_class_accuracy": [1.0] * 10, "scores": "measured", "claimed": {"test_accuracy": 0.5}}
    boast = rebuilt(bundles.export_bundle(trained_run), change={"meta.json": json.dumps(meta).encode()})
    run = bundles.import_bundle(boast, runs_dir, data_dir=tiny_data_dir)
    assert run.meta["test_accuracy"] == pytest.approx(trained_run.meta["test_accuracy"], abs=1e-9)
    assert run.meta["test_accuracy"] < 0.9999
    assert run.meta["per_class_accuracy"] == pytest.approx(trained_run.meta["per_class_accuracy"])
    assert run.meta["params"] == trained_run.meta["params"] != 5  # counted, not read
    assert run.meta["scores"] == "measured"  # the bundle's own "scores" and "claimed" are not taken
    assert run.meta["claimed"] == {"test_accuracy": 0.9999, "test_loss": 0.0001, "per_class_accuracy": [1.0] * 10,
                                   "confusion": trained_run.meta["confusion"]}
    assert runs.get_run(run.run_id, runs_dir).meta == run.meta


def test_a_bundle_whose_dataset_is_not_here_keeps_its_numbers_marked_claimed(trained_run, runs_dir, tmp_path):
    """Another server's uploaded dataset (same images and classes, a name this server does not have)."""
    meta = {**trained_run.meta, "dataset": {**trained_run.meta["dataset"], "name": "their_digits"}}
    data = rebuilt(bundles.export_bundle(trained_run), change={"meta.json": json.dumps(meta).encode()})
    run = bundles.import_bundle(data, runs_dir, data_dir=tmp_path / "no_data_here")
    assert run.meta["scores"] == "claimed"
    assert run.meta["test_accuracy"] == trained_run.meta["test_accuracy"]
    assert run.meta["claimed"]["test_accuracy"] == trained_run.meta["test_accuracy"]


def test_a_bundle_as_the_first_release_wrote_it_still_imports(trained_run, runs_dir, tiny_data_dir):
    """Format version 1 is the only one there has been (FORMAT_VERSION); its first bundles had no "scores" or
    "claimed" in meta.json, may lack optional scores, and their history only some of today's columns."""
    assert bundles.FORMAT_VERSION == 1
    meta = {key: value for key, value in trained_run.meta.items()
            if key not in ("scores", "claimed", "per_class_accuracy", "confusion", "best_val_accuracy", "versions")}
    history = b"epoch,loss,accuracy,val_loss,val_accuracy\n1,1.9,0.4,1.7,0.5\n"
    old = rebuilt(bundles.export_bundle(trained_run), change={"meta.json": json.dumps(meta).encode(),
                                                               "history.csv": history},
                  manifest_change={"format_version": 1})
    run = bundles.import_bundle(old, runs_dir, data_dir=tiny_data_dir)
    assert run.meta["scores"] == "measured" and len(run.meta["confusion"]) == 10
    assert run.meta["test_accuracy"] == pytest.approx(trained_run.meta["test_accuracy"], abs=1e-9)
    assert run.meta["claimed"]["per_class_accuracy"] == []  # what the old bundle had (nothing), kept as its claim
    assert list(runs.load_history(run)["val_accuracy"]) == [0.5]


def test_export_to_file_names_a_folder_target_after_the_run(trained_run, tmp_path):
    path = bundles.export_to_file(trained_run, tmp_path)
    assert path.name == f"{trained_run.run_id}.studio.zip" and bundles.is_bundle(path.read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def rebuilt(data: bytes, *, drop=(), add=None, change=None, manifest_change=None, keep_sums=False) -> bytes:
    """A bundle with entries dropped, added or changed (checksums updated unless keep_sums)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    for name in drop:
        files.pop(name)
    for name, content in (change or {}).items():
        files[name] = content
        if not keep_sums:
            manifest["files"][name] = hashlib.sha256(content).hexdigest()
    manifest.update(manifest_change or {})
    files["manifest.json"] = json.dumps(manifest).encode()
    files.update(add or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def meta_without(run, key):
    meta = dict(run.meta)
    meta.pop(key)
    return json.dumps(meta).encode()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda data, run: b"not a zip at all", "not a readable zip"),
        (lambda data, run: data[: len(data) // 2], "not a readable zip"),
        (lambda data, run: rebuilt(data, add={"../evil.sh": b"rm -rf /"}), "unexpected ../evil.sh"),
        (lambda data, run: rebuilt(data, drop=["history.csv"]), "missing history.csv"),
        (lambda data, run: rebuilt(data, change={"meta.json": b"{}"}, keep_sums=True), "does not match its checksum"),
        (lambda data, run: rebuilt(data, manifest_change={"format_version": 99}), "newer than this app reads"),
        (lambda data, run: rebuilt(data, manifest_change={"format": "other"}), "not an MNIST Studio run bundle"),
        (lambda data, run: rebuilt(data, change={"meta.json": meta_without(run, "dataset")}), "lacks the run's config"),
        (lambda data, run: rebuilt(data, change={"meta.json": b"[1, 2"}), "not valid JSON"),
        (lambda data, run: rebuilt(data, change={"history.csv": b"epoch,loss\n1,abc\n"}), "non-number 'abc'"),
        (lambda data, run: rebuilt(data, change={"model.keras": b"PK\x03\x04broken"}), "damaged or incomplete"),
    ],
)
def test_bad_bundles_are_named_and_leave_nothing_behind(trained_run, runs_dir, make, message):
    runs_dir.mkdir(parents=True)
    bad = make(bundles.export_bundle(trained_run), trained_run)
    with pytest.raises(bundles.InvalidBundle, match=message):
        bundles.import_bundle(bad, runs_dir)
    assert run_ids(runs_dir) == [] and leftovers(runs_dir) == []


def test_a_bundle_whose_model_does_not_fit_its_run_is_refused(trained_run, runs_dir, model_files):
    data = rebuilt(bundles.export_bundle(trained_run), change={"model.keras": (model_files / "three.keras").read_bytes()})
    with pytest.raises(bundles.InvalidBundle, match="has 3 outputs, but .* has 10 classes"):
        bundles.import_bundle(data, runs_dir)
    assert run_ids(runs_dir) == []


def test_a_keras_model_is_imported_scored_and_usable_like_a_trained_run(trained_run, runs_dir, tiny_data_dir):
    run = bundles.import_keras(trained_run.model_path.read_bytes(), "mnist", runs_dir, data_dir=tiny_data_dir,
                               filename="from_a_notebook.keras")
    assert run.meta["status"] == "imported" and run.meta["arch"] == "imported" and run.meta["scores"] == "measured"
    assert run.meta["test_accuracy"] == pytest.approx(trained_run.meta["test_accuracy"], abs=1e-6)
    assert run.display_name == "from_a_notebook (imported)"
    listed, damaged = runs.list_runs(runs_dir, include_bundled=False)
    assert [r.run_id for r in listed] == [run.run_id] and damaged == []
    # What Draw, Predictions and Compare read from a run:
    assert run.class_names == [str(d) for d in range(10)] and run.normalize is True
    assert run.dataset["input_shape"] == [28, 28, 1] and run.dataset["kind"] == "digit"
    assert len(run.meta["confusion"]) == 10 and runs.load_history(run).empty
    assert runs.summary(run)["status"] == "imported"


def test_a_flat_input_logits_model_is_wrapped_with_builtin_layers(model_files, runs_dir, tiny_data_dir):
    run = bundles.import_keras((model_files / "flat_logits.keras").read_bytes(), "mnist", runs_dir,
                               data_dir=tiny_data_dir)
    model = runs.load_model(run)  # saved and loaded back in safe mode
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    probs = inference.predict_proba(model, catalog.load_dataset("mnist", tiny_data_dir).x_test[:4], normalize=True)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert "reshapes each image" in run.meta["stop_reason"] and "adds a softmax" in run.meta["stop_reason"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("colour32.keras", "This model takes 32x32 colour images, but MNIST handwritten digits has 28x28 grayscale images"),
        ("three.keras", "This model has 3 outputs, but MNIST handwritten digits has 10 classes"),
        ("lambda.keras", r"custom Python code \(a Lambda layer\), which the app will not run for safety; rebuild it "
                         "with built-in Keras layers"),
        ("custom.keras", r"custom Python code \(a custom class 'Doubler'\)"),
        ("truncated.keras", "damaged or incomplete"),
        ("text.keras", "This is not a Keras model file"),
        ("old.h5", r"old-style HDF5 \(.h5\)"),
    ],
)
def test_unusable_models_are_named_in_the_users_words(model_files, runs_dir, tiny_data_dir, name, message):
    with pytest.raises(bundles.InvalidBundle, match=message):
        bundles.import_keras((model_files / name).read_bytes(), "mnist", runs_dir, data_dir=tiny_data_dir)
    assert run_ids(runs_dir) == [] and leftovers(runs_dir) == []


def test_a_damaged_run_model_no_longer_says_file_not_found(trained_run, tmp_path):
    broken = tmp_path / "model.keras"
    data = trained_run.model_path.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(runs.DamagedRun) as caught:
        runs.load_model_file(broken)
    assert "damaged or incomplete" in str(caught.value) and "File not found" not in str(caught.value)


def test_a_zip_bomb_posing_as_a_model_is_not_opened(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", bytes(5 * 1024 * 1024))
    with pytest.raises(modelfiles.UnusableModel, match="zip bomb"):
        modelfiles.check_keras_file(path)


def test_import_file_takes_a_bundle_or_a_bare_model_with_a_dataset(trained_run, tmp_path, runs_dir, tiny_data_dir):
    bundle = bundles.export_to_file(trained_run, tmp_path)
    assert bundles.import_file(bundle, runs_dir, data_dir=tiny_data_dir).meta["status"] == trained_run.meta["status"]
    with pytest.raises(bundles.InvalidBundle, match="--dataset mnist"):
        bundles.import_file(trained_run.model_path, runs_dir)
    run = bundles.import_file(trained_run.model_path, runs_dir, dataset="mnist", data_dir=tiny_data_dir)
    assert run.meta["status"] == "imported" and len(run_ids(runs_dir)) == 2


def test_describe_input_in_words():
    assert bundles.describe_input((32, 32, 3)) == "32x32 colour images"
    assert bundles.describe_input((28, 28, 1)) == "28x28 grayscale images"
    assert bundles.describe_input((784,)) == "flat vectors of 784 values"
    assert bundles.describe_input((None, None, 1)) == "grayscale images of any size"


@pytest.mark.parametrize("change", [
    {"config": {"epochs": "5"}}, {"config": {"normalize": "yes"}}, {"precision": 3},
])
def test_a_bundle_whose_meta_the_run_list_would_call_damaged_is_refused_at_import(trained_run, runs_dir,
                                                                                tiny_data_dir, change):
    """Values of the wrong type (checksums redone) are refused with the reason, not imported as a run that
    every page then lists as damaged."""
    meta = json.loads(json.dumps(trained_run.meta))
    for key, value in change.items():
        meta[key] = {**meta[key], **value} if isinstance(value, dict) else value
    forged = rebuilt(bundles.export_bundle(trained_run), change={"meta.json": json.dumps(meta).encode()})
    with pytest.raises(bundles.InvalidBundle, match="cannot make a run"):
        bundles.import_bundle(forged, runs_dir, data_dir=tiny_data_dir)
    assert run_ids(runs_dir) == [] and leftovers(runs_dir) == []
