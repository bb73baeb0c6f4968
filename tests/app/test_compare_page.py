"""Compare page: runs side by side, the best one marked; rename and delete; read-only and damaged runs;
imported scores claimed, not verified, never starred; one best per dataset."""

import hashlib
import io
import json
import shutil
import zipfile

import pytest

from lib.store import runs
from tests.app.conftest import GOOD_RUN, WEAK_RUN, open_page, run_names

PAGE = "pages/compare.py"


def runs_table(at):
    return next(frame.value for frame in at.dataframe if "name" in frame.value.columns)


def choose_run(at, name: str) -> str:
    """Pick a run in the "Rename or delete" box by its name; returns its id."""
    run_id = name_to_ids(at, name)[0]
    at.selectbox(key="compare_manage_run").set_value(run_id).run()
    return run_id


def name_to_ids(at, name: str) -> list[str]:
    table = runs_table(at)
    return list(table.loc[table["name"].str.replace(" 🔒", "") == name, "run id"])


FORGED_RUN = "forged 99.99%"
FASHION_RUN = "fashion softmax"


def forged_bundle_import(run: runs.RunInfo, runs_dir) -> runs.RunInfo:
    """What a visitor gets by editing a downloaded bundle's meta.json to 99.99% (checksums redone) and importing it,
    for a dataset this server does not have (another server's upload), so the claim cannot be re-scored here.
    (Where the dataset is here, the import re-scores it: tests/app/test_own_data.py.)"""
    from lib.store import bundles

    with zipfile.ZipFile(io.BytesIO(bundles.export_bundle(run))) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(files[runs.META_FILE])
    files[runs.META_FILE] = json.dumps({**meta, "test_accuracy": 0.9999, "display_name": FORGED_RUN,
                                        "dataset": {**meta["dataset"], "name": "their_digits"}}).encode()
    manifest = json.loads(files[bundles.MANIFEST_FILE])
    manifest["files"] = {name: hashlib.sha256(files[name]).hexdigest() for name in bundles.BUNDLE_FILES}
    files[bundles.MANIFEST_FILE] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return bundles.import_bundle(buffer.getvalue(), runs_dir)


def good_run(runs_dir) -> runs.RunInfo:
    return next(run for run in runs.list_runs(runs_dir, include_bundled=False)[0] if run.display_name == GOOD_RUN)


@pytest.fixture(scope="session")
def fashion_run(tiny_data_dir, tmp_path_factory):
    """A real 1-epoch run on the tiny Fashion-MNIST, to sit beside the MNIST runs."""
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    folder = tmp_path_factory.mktemp("fashion_runs")
    run, _ = train_and_save(TrainConfig(dataset="fashion_mnist", arch="softmax", epochs=1, limit=200,
                                        name=FASHION_RUN), data_dir=tiny_data_dir, runs_dir=folder)
    return run


def starred(at) -> list[str]:
    table = runs_table(at)
    return sorted(table.loc[table["best"] == "★", "name"])


def test_table_lists_every_run_and_stars_the_best(app_runs):
    """As a user I see all my runs in one table, and the one with the best test accuracy is starred."""
    at = open_page(PAGE)
    table = runs_table(at)
    assert sorted(run_names(at)) == sorted([GOOD_RUN, WEAK_RUN])
    best = table.loc[table["test accuracy"].idxmax()]
    assert best["best"] == "★"
    assert list(table["best"]).count("★") == 1
    assert {"dataset", "architecture", "params", "epochs", "test accuracy", "status"} <= set(table.columns)


def test_curves_overlay_the_chosen_runs(app_runs):
    """As a user I see the validation accuracy and loss of the newest runs overlaid, one line per run."""
    at = open_page(PAGE)
    for key in ("compare_val_accuracy", "compare_val_loss"):
        chart = next(element for element in at.get("plotly_chart") if element.key == key)
        names = sorted(trace["name"] for trace in json.loads(chart.proto.spec)["data"])
        assert names == sorted([GOOD_RUN, WEAK_RUN])


def test_rename_changes_the_name_shown(app_runs):
    """As a user I rename a run and the table shows the new name right away."""
    at = open_page(PAGE)
    run_id = choose_run(at, WEAK_RUN)
    at.text_input(key=f"compare_new_name_{run_id}").input("baseline (lr 1e-5)")
    at.button(key="compare_rename").click().run()
    assert not at.exception and not at.error
    assert sorted(run_names(at)) == sorted([GOOD_RUN, "baseline (lr 1e-5)"])
    assert "Renamed" in at.success[0].value


def test_delete_needs_confirmation_and_keeps_the_other_runs(app_runs):
    """As a user I can delete a run only after confirming; it disappears and my other run stays."""
    at = open_page(PAGE)
    run_id = choose_run(at, WEAK_RUN)
    assert at.button(key="compare_delete").disabled
    at.checkbox(key=f"compare_confirm_{run_id}").check().run()
    at.button(key="compare_delete").click().run()
    assert not at.exception and not at.error
    assert run_names(at) == [GOOD_RUN]
    assert not (app_runs / run_id).exists()
    assert "Deleted" in at.success[0].value


def test_bundled_run_refuses_deletion(app_runs, bundled_run):
    """As a user I cannot delete the bundled model: I am told it is read-only and it stays."""
    at = open_page(PAGE)
    assert "🔒" in " ".join(runs_table(at)["name"])
    at.selectbox(key="compare_manage_run").set_value(runs.BUNDLED_ID).run()
    at.checkbox(key=f"compare_confirm_{runs.BUNDLED_ID}").check().run()
    at.button(key="compare_delete").click().run()
    assert not at.exception
    assert "read-only" in at.error[0].value
    assert runs.BUNDLED_ID in list(runs_table(at)["run id"])
    assert bundled_run.model_path.is_file()


def test_damaged_run_folder_is_reported_and_good_runs_still_list(app_runs):
    """As a user with a half-broken run folder I get a warning naming it, and my good runs are still listed."""
    broken = app_runs / "20200101-000000-abcdef"
    broken.mkdir()
    (broken / runs.META_FILE).write_text("{not json")
    at = open_page(PAGE)
    assert not at.exception
    assert any(broken.name in warning.value for warning in at.warning)
    assert sorted(run_names(at)) == sorted([GOOD_RUN, WEAK_RUN])


def test_a_forged_imported_score_is_claimed_not_verified_and_never_starred(app_runs):
    """As a user who imported a bundle whose meta.json was edited to 99.99%, I see that score marked
    "claimed, not verified" in the table, the pickers and the curves' legend, and the star stays on my
    best measured run."""
    forged = forged_bundle_import(good_run(app_runs), app_runs)
    at = open_page(PAGE)
    table = runs_table(at).set_index("name")
    assert table.loc[FORGED_RUN, "test accuracy"] == pytest.approx(99.99)
    assert table.loc[FORGED_RUN, "scores"] == "claimed, not verified"
    assert table.loc[GOOD_RUN, "scores"] == table.loc[WEAK_RUN, "scores"] == "measured"
    assert starred(at) == [GOOD_RUN]
    assert any(label.startswith(FORGED_RUN) and label.endswith("(claimed, not verified)")
               for label in at.selectbox(key="compare_manage_run").options)
    at.multiselect(key="compare_runs").set_value([forged.run_id]).run()
    chart = next(element for element in at.get("plotly_chart") if element.key == "compare_val_accuracy")
    assert [trace["name"] for trace in json.loads(chart.proto.spec)["data"]] == [f"{FORGED_RUN} (claimed, not verified)"]


def test_each_dataset_gets_its_own_best_and_datasets_are_never_compared(app_runs, fashion_run):
    """As a user with MNIST and Fashion-MNIST runs, I see the best run of each dataset starred, not one
    star for whichever dataset is easier."""
    shutil.copytree(fashion_run.path, app_runs / fashion_run.run_id)
    at = open_page(PAGE)
    table = runs_table(at).set_index("name")
    assert table.loc[FASHION_RUN, "dataset"] == "fashion_mnist"
    assert table.loc[GOOD_RUN, "test accuracy"] != table.loc[FASHION_RUN, "test accuracy"]  # one would win overall
    assert starred(at) == sorted([GOOD_RUN, FASHION_RUN])
