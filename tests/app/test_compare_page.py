"""Compare page: runs side by side, the best one marked; rename and delete; read-only and damaged runs."""

import json

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
