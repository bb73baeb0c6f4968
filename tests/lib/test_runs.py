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


# ---------------------------------------------------------------- malformed meta.json: types, not only keys


def _set(path: str, value):
    """A change to meta.json: `path` "a.b" sets meta["a"]["b"]; the value DELETE removes the key."""
    def change(meta):
        *parents, last = path.split(".")
        target = meta
        for key in parents:
            target = target[key]
        if value is DELETE:
            target.pop(last, None)
        else:
            target[last] = value
        return meta
    return change


DELETE = object()
# (what the hostile meta.json does, the reason a user reads)
MALFORMED_META = [
    (lambda meta: [meta], "it holds no object"),
    (_set("config", "x"), "config is not an object"),
    (_set("config", None), "config is missing"),
    (_set("config", DELETE), "config is missing"),
    (_set("dataset", []), "dataset is not an object"),
    (_set("test_accuracy", "99%"), "test_accuracy is not a number"),
    (_set("test_accuracy", 99.5), "test_accuracy is not a number from 0 to 1"),
    (_set("test_accuracy", float("nan")), "test_accuracy is not a number"),
    (_set("test_accuracy", True), "test_accuracy is not a number"),
    (_set("test_accuracy", [0.9]), "test_accuracy is not a number"),
    (_set("test_loss", -1), "test_loss is not a number of 0 or more"),
    (_set("test_loss", float("inf")), "test_loss is not a number"),
    (_set("best_val_accuracy", {"x": 1}), "best_val_accuracy is not a number"),
    (_set("training_seconds", "fast"), "training_seconds is not a number"),
    (_set("samples_per_s", -5), "samples_per_s is not a number"),
    (_set("epochs_completed", "1"), "epochs_completed is not a number"),
    (_set("params", 1.5), "params is not a whole number"),
    (_set("params", "7850"), "params is not a number"),
    (_set("dataset.class_names", 5), "dataset.class_names is not a list of 2 to 100 names"),
    (_set("dataset.class_names", None), "dataset.class_names is not a list"),
    (_set("dataset.class_names", list(range(10))), "dataset.class_names is not a list"),
    (_set("dataset.class_names", ["only one"]), "dataset.class_names is not a list"),
    (_set("dataset.class_names", [str(i) for i in range(101)]), "dataset.class_names is not a list"),
    (_set("dataset.name", None), "dataset.name is not a dataset name"),
    (_set("dataset.name", 12), "dataset.name is not a dataset name"),
    (_set("dataset.name", "../../etc"), "dataset.name is not a dataset name"),
    (_set("dataset.title", ["MNIST"]), "dataset.title is not text"),
    (_set("dataset.input_shape", 28), "dataset.input_shape is not an image shape"),
    (_set("dataset.input_shape", [28, 28]), "dataset.input_shape is not an image shape"),
    (_set("dataset.input_shape", ["28", 28, 1]), "dataset.input_shape is not an image shape"),
    (_set("dataset.input_shape", [28, 28, 4]), "dataset.input_shape is not an image shape"),
    (_set("dataset.input_shape", [10**9, 28, 1]), "dataset.input_shape is not an image shape"),
    (_set("dataset.kind", 3), "dataset.kind is not one of digit, object"),
    (_set("display_name", 12), "display_name is not text"),
    (_set("display_name", {"en": "x"}), "display_name is not text"),
    (_set("stop_reason", ["x"]), "stop_reason is not text"),
    (_set("created_at", 20260101), "created_at is not text"),
    (_set("arch", 5), "arch is not text"),
    (_set("status", "hacked"), "status is not one of finished, stopped, diverged, failed, imported"),
    (_set("status", ["finished"]), "status is not one of"),
    (_set("status", 1), "status is not one of"),
    (_set("scores", "verified"), "scores is not 'measured' or 'claimed'"),
    (_set("scores", True), "scores is not 'measured' or 'claimed'"),
    (_set("imported_from", "a bundle"), "imported_from is not an object"),
    (_set("imported_from", None), "imported_from is not an object"),
    (_set("per_class_accuracy", [0.5] * 3), "per_class_accuracy is not 10 numbers from 0 to 1"),
    (_set("per_class_accuracy", "all good"), "per_class_accuracy is not 10 numbers"),
    (_set("per_class_accuracy", [2.0] * 10), "per_class_accuracy is not 10 numbers"),
    (_set("confusion", "x"), "confusion is not a 10 x 10 table of counts"),
    (_set("confusion", [[0] * 10] * 9), "confusion is not a 10 x 10 table"),
    (_set("confusion", [[-1] * 10] * 10), "confusion is not a 10 x 10 table"),
    (_set("confusion", [[None] * 10] * 10), "confusion is not a 10 x 10 table"),
    (_set("config.epochs", "5"), "config.epochs is not a whole number"),
    (_set("config.epochs", 1.5), "config.epochs is not a whole number"),
    (_set("config.normalize", None), "config.normalize is not true or false"),
    (_set("config.normalize", "false"), "config.normalize is not true or false"),
    (_set("config.learning_rate", "fast"), "config.learning_rate is not a number"),
    (_set("config.learning_rate", float("nan")), "config.learning_rate is not a number"),
    (_set("config.layers", "conv"), "config.layers is not a list of layers"),
    (_set("config.layers", [1, 2]), "config.layers is not a list of layers"),
    (_set("config.name", []), "config.name is not text"),
    (_set("config.dataset", None), "config.dataset is not text"),
    (_set("config.limit", "all"), "config.limit is not a whole number or null"),
    (_set("config.augment", 1), "config.augment is not true or false"),
]


@pytest.mark.parametrize("change, reason", MALFORMED_META, ids=[reason for _, reason in MALFORMED_META])
def test_a_meta_json_of_the_wrong_types_is_a_damaged_folder_with_its_reason(trained_run, runs_dir, change, reason):
    """A hand-edited or forged meta.json (valid JSON, expected keys, wrong types) is listed as damaged
    with the reason; the good run is still listed and nothing is deleted."""
    runs_dir.mkdir(parents=True)
    copy_run(trained_run, runs_dir, "20260101-000000-aaaaaa")
    bad = copy_run(trained_run, runs_dir, "20260101-000001-bbbbbb")
    meta = change(json.loads((bad / "meta.json").read_text()))
    (bad / "meta.json").write_text(json.dumps(meta))  # Python's json writes NaN/Infinity tokens, as a forger could
    found, damaged = runs.list_runs(runs_dir, include_bundled=False)
    assert [run.run_id for run in found] == ["20260101-000000-aaaaaa"]
    assert [(folder.run_id, folder.path) for folder in damaged] == [("20260101-000001-bbbbbb", bad)]
    assert damaged[0].problem.startswith("meta.json: ") and reason in damaged[0].problem, damaged[0].problem
    assert sorted(path.name for path in bad.iterdir()) == ["history.csv", "meta.json", "model.keras"]
    with pytest.raises(runs.DamagedRun, match=reason.replace("(", r"\(")):
        runs.get_run("20260101-000001-bbbbbb", runs_dir)


MALFORMED_HISTORY = [
    ("", "does not have the columns epoch, loss"),
    ("a,b\n1,2\n", "does not have the columns"),
    ("epoch,loss\n1,lots\n", "holds a value that is not a number"),
    ("epoch,loss\n1,0.5,7\n", "has a row longer than its header"),
    ('epoch,loss\n"1,0.5\n', "holds a value that is not a number"),  # an unterminated quote
    ("epoch,epoch\n1,2\n", "does not have the columns"),
]


@pytest.mark.parametrize("text, reason", MALFORMED_HISTORY, ids=[reason for _, reason in MALFORMED_HISTORY])
def test_a_history_that_cannot_be_charted_is_a_damaged_folder(trained_run, runs_dir, text, reason):
    runs_dir.mkdir(parents=True)
    bad = copy_run(trained_run, runs_dir, "20260101-000001-bbbbbb")
    (bad / "history.csv").write_text(text)
    found, damaged = runs.list_runs(runs_dir, include_bundled=False)
    assert found == [] and damaged[0].problem.startswith(f"history.csv {reason}"), damaged[0].problem
    assert (bad / "history.csv").read_text() == text


def test_a_history_of_undecodable_bytes_is_a_damaged_folder(trained_run, runs_dir):
    runs_dir.mkdir(parents=True)
    bad = copy_run(trained_run, runs_dir, "20260101-000001-bbbbbb")
    (bad / "history.csv").write_bytes(b"epoch,loss\n\xff\xfe,1\n")
    assert runs.list_runs(runs_dir, include_bundled=False)[1][0].problem == "history.csv is not readable text."


def test_an_oversized_meta_json_is_refused_before_it_is_read(trained_run, runs_dir):
    runs_dir.mkdir(parents=True)
    bad = copy_run(trained_run, runs_dir, "20260101-000001-bbbbbb")
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "meta.json").write_text(json.dumps({**meta, "padding": "x" * runs.MAX_META_BYTES}))
    assert "meta.json is larger than a run's" in runs.list_runs(runs_dir, include_bundled=False)[1][0].problem


SOUND_VARIANTS = [
    (_set("test_accuracy", None), "a run that was not scored"),
    (_set("per_class_accuracy", [None] * 10), "a diverged run's per-class scores"),
    (_set("confusion", []), "no confusion matrix"),
    (_set("config.precision", DELETE), "a run saved before a config field existed"),
    (_set("config.limit", None), "no image limit"),
    (_set("dataset.class_names", DELETE), "an old run without class names (digits assumed)"),
    (_set("display_name", None), "no display name (the id is shown)"),
    (_set("history", "nonsense"), "an unknown key nobody reads"),
    (_set("scores", "claimed"), "an import's claimed scores"),
    (_set("status", DELETE), "an early run without a status (shown as ?)"),
    (_set("dataset.name", DELETE), "an early run without a dataset name (pages say its data is missing)"),
    (_set("status", None), "a status of null (shown as ?)"),
]


@pytest.mark.parametrize("change, why", SOUND_VARIANTS, ids=[why for _, why in SOUND_VARIANTS])
def test_sound_meta_variants_stay_usable_runs(trained_run, runs_dir, change, why):
    runs_dir.mkdir(parents=True)
    folder = copy_run(trained_run, runs_dir, "20260101-000001-bbbbbb")
    (folder / "meta.json").write_text(json.dumps(change(json.loads((folder / "meta.json").read_text()))))
    found, damaged = runs.list_runs(runs_dir, include_bundled=False)
    assert damaged == [] and len(found) == 1, why
    assert runs.summary(found[0])["run_id"] == "20260101-000001-bbbbbb" and found[0].label


def test_the_bundled_model_and_an_imported_models_meta_are_sound(trained_run):
    """The shipped default model and the meta an imported .keras gets pass the checks."""
    from lib.store import bundles

    assert runs.meta_problem(json.loads((paths.BUNDLED_MODELS_DIR / "default" / "meta.json").read_text())) is None
    config = {**trained_run.config, "arch": bundles.IMPORTED, "epochs": 0}
    imported = {**trained_run.meta, "status": bundles.IMPORTED, "config": config, "training_seconds": None,
                "samples_per_s": None, "best_val_accuracy": None, "imported_from": {"file": "m.keras", "notes": []}}
    assert runs.meta_problem(imported) is None


def test_a_display_name_is_shown_on_one_printable_line(trained_run):
    run = runs.RunInfo("x", trained_run.path, {**trained_run.meta, "display_name": "evil\n\x1b[31mred\x1b[0m"})
    assert run.display_name == "evil[31mred[0m"
    assert runs.RunInfo("x", trained_run.path, {**trained_run.meta, "display_name": ""}).display_name == "x"


# ---------------------------------------------------------------- scores: measured here or claimed by an import


def as_run(trained_run, run_id: str, **meta) -> runs.RunInfo:
    dataset = {**trained_run.dataset, **meta.pop("dataset", {})}
    return runs.RunInfo(run_id, trained_run.path, {**trained_run.meta, "dataset": dataset, **meta})


def test_scores_are_measured_unless_an_import_claims_them(trained_run):
    bundle_origin = {"bundle_run_id": "20250101-000000-abcdef", "created_at": None, "exported_at": None}
    assert as_run(trained_run, "a").scores_verified  # trained here, written before the `scores` key
    assert as_run(trained_run, "a", scores="measured").scores_verified
    assert not as_run(trained_run, "a", scores="claimed").scores_verified
    assert not as_run(trained_run, "a", imported_from=bundle_origin).scores_verified  # an older bundle import
    assert not as_run(trained_run, "a", status="imported").scores_verified  # an older model import
    assert as_run(trained_run, "a", status="imported", scores="measured").scores_verified  # re-scored here
    assert not as_run(trained_run, "a", status="finished", imported_from=bundle_origin, scores="claimed").scores_verified


def test_claimed_scores_are_marked_in_labels_and_summaries(trained_run):
    forged = as_run(trained_run, "20260101-000001-bbbbbb", test_accuracy=0.9999, scores="claimed")
    assert forged.label.endswith("· 99.99% (claimed, not verified)")
    assert runs.summary(forged)["scores"] == "claimed"
    measured = as_run(trained_run, "20260101-000000-aaaaaa")
    assert "claimed" not in measured.label and runs.summary(measured)["scores"] == "measured"


def test_a_forged_claimed_score_is_never_best(trained_run):
    """An imported run claiming 99.99% is not starred; the best measured run is."""
    forged = as_run(trained_run, "f", test_accuracy=0.9999, imported_from={"bundle_run_id": "x"})
    honest = as_run(trained_run, "h", test_accuracy=0.91)
    weaker = as_run(trained_run, "w", test_accuracy=0.80)
    assert runs.best_marks([forged, honest, weaker]) == [False, True, False]
    assert runs.best_marks([forged]) == [False]


def test_each_dataset_gets_its_own_best_and_datasets_are_never_compared(trained_run):
    fashion = {"name": "fashion_mnist", "title": "Fashion-MNIST"}
    mnist_best = as_run(trained_run, "m1", test_accuracy=0.99)
    mnist_other = as_run(trained_run, "m2", test_accuracy=0.95)
    fashion_best = as_run(trained_run, "f1", test_accuracy=0.88, dataset=fashion)
    fashion_other = as_run(trained_run, "f2", test_accuracy=0.70, dataset=fashion)
    unscored = as_run(trained_run, "n", test_accuracy=None)
    tie = as_run(trained_run, "m3", test_accuracy=0.99)
    marks = runs.best_marks([mnist_other, fashion_best, unscored, mnist_best, fashion_other, tie])
    assert marks == [False, True, False, True, False, True]


def test_cli_runs_lists_the_good_runs_warns_of_the_damaged_and_marks_claimed_scores(trained_run, runs_dir, capsys,
                                                                                    monkeypatch):
    """`python -m lib runs [--json]` with a malformed run: the others listed, one warning line, no traceback."""
    from lib import cli

    monkeypatch.setattr(paths, "BUNDLED_MODELS_DIR", runs_dir.parent / "no_bundled")
    runs_dir.mkdir(parents=True)
    early = copy_run(trained_run, runs_dir, "20260101-000000-aaaaaa")
    claimed = copy_run(trained_run, runs_dir, "20260101-000001-bbbbbb")
    meta = json.loads((claimed / "meta.json").read_text())
    (early / "meta.json").write_text(json.dumps({key: value for key, value in meta.items() if key != "status"}))
    (claimed / "meta.json").write_text(json.dumps({**meta, "test_accuracy": 0.9999, "scores": "claimed"}))
    bad = copy_run(trained_run, runs_dir, "20260101-000002-cccccc")
    (bad / "meta.json").write_text(json.dumps({**meta, "config": "x", "dataset": [], "test_accuracy": "99%"}))
    for args in ([], ["--json"]):
        assert cli.main(["runs", "--runs-dir", str(runs_dir), *args]) == 0
        out, err = capsys.readouterr()
        assert err.strip() == "warning: skipped damaged run 20260101-000002-cccccc: meta.json: config is not an object."
        if args:
            rows = {row["run_id"]: row for row in json.loads(out)}
            assert set(rows) == {"20260101-000000-aaaaaa", "20260101-000001-bbbbbb"}
            assert (rows["20260101-000001-bbbbbb"]["scores"], rows["20260101-000000-aaaaaa"]["scores"]) == (
                "claimed", "measured")
        else:
            lines = {line.split()[0]: line for line in out.strip().splitlines()}
            assert set(lines) == {"20260101-000000-aaaaaa", "20260101-000001-bbbbbb"}
            forged = lines["20260101-000001-bbbbbb"]
            assert "99.99%" in forged and forged.endswith("(claimed, not verified)")
            assert "claimed" not in lines["20260101-000000-aaaaaa"]
            assert lines["20260101-000000-aaaaaa"].split()[2] == "?"  # a run saved without a status
