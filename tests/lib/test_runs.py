"""Run registry: atomic saves, damaged folders skipped, rename, delete, read-only bundled model."""

import json
import shutil

import pytest

from lib.data import paths
from lib.store import runs


@pytest.fixture(scope="module")
def trained_run(tiny_data_dir, tmp_path_factory):
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    folder = tmp_path_factory.mktemp("source_runs")
    run, _ = train_and_save(TrainConfig(arch="softmax", epochs=1, limit=200), data_dir=tiny_data_dir, runs_dir=folder)
    return run


def copy_run(run, runs_dir, run_id):
    target = runs_dir / run_id
    shutil.copytree(run.path, target)
    return target


def test_damaged_folders_are_reported_and_skipped(trained_run, runs_dir):
    runs_dir.mkdir(parents=True)
    copy_run(trained_run, runs_dir, "20260101-000000-aaaaaa")
    broken_json = copy_run(trained_run, runs_dir, "20260101-000001-bbbbbb")
    (broken_json / "meta.json").write_text("{not json")
    no_model = copy_run(trained_run, runs_dir, "20260101-000002-cccccc")
    (no_model / "model.keras").unlink()
    (runs_dir / ".tmp-20260101-000003-dddddd").mkdir()  # a save that crashed half-way
    found, damaged = runs.list_runs(runs_dir, include_bundled=False)
    assert [run.run_id for run in found] == ["20260101-000000-aaaaaa"]
    problems = {folder.run_id: folder.problem for folder in damaged}
    assert "not valid JSON" in problems["20260101-000001-bbbbbb"]
    assert "model.keras is missing" in problems["20260101-000002-cccccc"]
    assert len(problems) == 2  # the hidden temporary folder is not a run at all


def test_rename_changes_display_name_only(trained_run, runs_dir):
    runs_dir.mkdir(parents=True)
    copy_run(trained_run, runs_dir, "20260101-000000-aaaaaa")
    renamed = runs.rename_run("20260101-000000-aaaaaa", "  My first\nmodel  ", runs_dir)
    assert renamed.display_name == "My firstmodel"
    assert runs.get_run("20260101-000000-aaaaaa", runs_dir).display_name == "My firstmodel"
    with pytest.raises(ValueError):
        runs.rename_run("20260101-000000-aaaaaa", "   ", runs_dir)


def test_delete_removes_only_that_run(trained_run, runs_dir):
    runs_dir.mkdir(parents=True)
    copy_run(trained_run, runs_dir, "20260101-000000-aaaaaa")
    copy_run(trained_run, runs_dir, "20260101-000001-bbbbbb")
    runs.delete_run("20260101-000000-aaaaaa", runs_dir)
    found, _ = runs.list_runs(runs_dir, include_bundled=False)
    assert [run.run_id for run in found] == ["20260101-000001-bbbbbb"]
    with pytest.raises(runs.RunNotFound):
        runs.get_run("20260101-000000-aaaaaa", runs_dir)


def test_ids_from_user_text_are_refused(runs_dir):
    for bad in ("../../etc", "x/y", ""):
        with pytest.raises(runs.RunNotFound):
            runs.get_run(bad, runs_dir)


def test_bundled_model_is_listed_read_only(trained_run, runs_dir, tmp_path, monkeypatch):
    bundled = tmp_path / "models"
    shutil.copytree(trained_run.path, bundled / "default")
    monkeypatch.setattr(paths, "BUNDLED_MODELS_DIR", bundled)
    found, _ = runs.list_runs(runs_dir)
    assert found[-1].run_id == "default" and found[-1].read_only
    with pytest.raises(runs.ReadOnlyRun):
        runs.delete_run("default", runs_dir)
    with pytest.raises(runs.ReadOnlyRun):
        runs.rename_run("default", "x", runs_dir)
    assert (bundled / "default" / "model.keras").exists()


def test_a_crash_while_saving_leaves_no_run(trained_run, runs_dir, monkeypatch):
    class Exploding:
        def save(self, path):
            path.write_bytes(b"partial")
            raise OSError("disk full")

    result = type("R", (), {"model": Exploding(), "history": []})()
    with pytest.raises(OSError):
        runs.save_run(result, None, None, runs_dir)
    assert list(runs_dir.iterdir()) == []


def test_keras_safe_mode_refuses_lambda_layers(tmp_path):
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(runs.DamagedRun, match=r"custom Python code \(a Lambda layer\), which the app will not run"):
        runs.load_model_file(path)


def test_a_runs_stored_config_reads_back_as_the_config_it_was_trained_with(trained_run):
    from lib.training.config import TrainConfig

    assert runs.read_config(trained_run) == TrainConfig(arch="softmax", epochs=1, limit=200)
    foreign = runs.RunInfo("x", trained_run.path, {**trained_run.meta, "config": {"arch": "imported"}})
    assert runs.read_config(foreign) is None  # not a config this version can rebuild


def strict_json(text: str):
    """Parse as strict JSON: NaN and Infinity tokens are errors, as in most non-Python parsers."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_meta_json_is_strict_json(trained_run):
    meta = strict_json((trained_run.path / "meta.json").read_text())
    assert set(meta) >= {"config", "test_accuracy", "per_class_accuracy", "confusion", "params", "training_seconds",
                         "samples_per_s", "status", "versions", "created_at", "display_name"}


def test_non_finite_scores_are_saved_as_null_in_strict_json(trained_run, runs_dir, tiny_data_dir):
    """A diverged run's NaN/inf numbers must not crash the save nor make meta.json unreadable elsewhere."""
    import numpy as np

    from lib.data import catalog
    from lib.training.config import TrainConfig
    from lib.training.loop import TrainResult

    result = TrainResult(
        model=runs.load_model(trained_run), status="failed", stop_reason="The loss exploded.",
        history=[{"epoch": 1, "loss": float("nan"), "accuracy": 0.1, "val_loss": float("inf"), "val_accuracy": None,
                  "seconds": 1.0, "images": 100}],
        seconds=1.0, samples_per_s=float("inf"), precision="float32", params=7850,
        test_loss=np.float32("nan"), test_accuracy=0.1, per_class_accuracy=[float("nan")] * 10,
    )
    info = catalog.get_info("mnist", tiny_data_dir)
    saved = runs.save_run(result, TrainConfig(arch="softmax", epochs=1), info, runs_dir)
    meta = strict_json((saved.path / "meta.json").read_text())
    assert meta["test_loss"] is None and meta["samples_per_s"] is None
    assert meta["per_class_accuracy"] == [None] * 10
    assert meta["test_accuracy"] == pytest.approx(0.1)
