"""Damaged runs never crash a page: a run folder whose meta.json has the expected keys but values of the
wrong types (or whose history cannot be read) is skipped with a warning naming it, on every page that lists
runs, and the good runs are still there."""

import json
import shutil

import pytest

from lib.store import runs
from lib.ui import inside as ui_inside
from tests.app.conftest import GOOD_RUN, WEAK_RUN, open_page, run_names

# Hostile meta.json edits found by the battery (issue #21, item 7), one folder each.
HOSTILE_META = {
    "20200101-000001-aaaaa1": {"config": "x"},
    "20200101-000002-aaaaa2": {"dataset": []},
    "20200101-000003-aaaaa3": {"test_accuracy": "99%"},
    "20200101-000004-aaaaa4": {"dataset": {"name": "mnist", "class_names": 5}},
    "20200101-000005-aaaaa5": {"display_name": 12},
    "20200101-000006-aaaaa6": {"dataset": {"name": None, "class_names": None, "input_shape": None},
                               "config": {"normalize": None, "name": None}},
    "20200101-000007-aaaaa7": {"status": ["finished"], "history": "nonsense"},
}
BAD_HISTORY = "20200101-000008-aaaaa8"


def break_runs(runs_dir) -> list[str]:
    """Copies of a good run with hostile meta.json values, and one whose history.csv is nonsense."""
    source = runs.list_runs(runs_dir, include_bundled=False)[0][0].path
    meta = json.loads((source / runs.META_FILE).read_text())
    for run_id, change in HOSTILE_META.items():
        shutil.copytree(source, runs_dir / run_id)
        (runs_dir / run_id / runs.META_FILE).write_text(json.dumps({**meta, **change}))
    shutil.copytree(source, runs_dir / BAD_HISTORY)
    (runs_dir / BAD_HISTORY / runs.HISTORY_FILE).write_text("nonsense\n\x01\x02 not a csv of numbers, 12\n")
    return [*HOSTILE_META, BAD_HISTORY]


def run_labels(at, kind: str, key: str) -> list[str]:
    """The names a run picker offers (its labels start with the run's name)."""
    widget = getattr(at, kind)(key=key)
    return sorted(label.split(" · ")[0] for label in widget.options)


@pytest.mark.parametrize("page, listed", [
    ("pages/home.py", lambda at: sorted(run_names(at))),
    ("pages/compare.py", lambda at: sorted(run_names(at))),
    ("pages/draw.py", lambda at: run_labels(at, "multiselect", "draw_models")),
    ("pages/predictions.py", lambda at: run_labels(at, "selectbox", "pred_run")),
    ("pages/inside.py", lambda at: run_labels(at, "selectbox", ui_inside.RUN_KEY)),
])
def test_a_page_skips_malformed_runs_with_a_warning_and_lists_the_good_ones(app_runs, page, listed):
    """As a user whose runs folder holds runs with a hand-edited or forged meta.json, I open the page: no
    error, one warning naming every skipped folder and why, and my good runs offered as before."""
    broken = break_runs(app_runs)
    at = open_page(page)
    assert not at.exception and not at.error, (at.exception, at.error)
    (warning,) = [w.value for w in at.warning if "damaged run folder" in w.value]
    assert f"Skipped {len(broken)} damaged run folder(s)" in warning
    assert all(run_id in warning for run_id in broken)
    assert "test_accuracy is not a number" in warning and "history.csv" in warning
    assert listed(at) == sorted([GOOD_RUN, WEAK_RUN])
    assert all((app_runs / run_id / runs.META_FILE).is_file() for run_id in broken)  # nothing deleted
