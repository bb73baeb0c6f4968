"""The run report (Train page results): an imported run's scores are marked claimed, and fields an
imported or early run lacks read "n/a", never a crash."""

import json

from streamlit.testing.v1 import AppTest

from lib.store import runs
from tests.app.conftest import APP_TIMEOUT
from tests.app.test_compare_page import forged_bundle_import, good_run


def report(run_path: str) -> None:
    from pathlib import Path

    from lib.store import runs
    from lib.ui import common as ui

    ui.apply_session_defaults()
    ui.run_report(runs.read_run(Path(run_path)))


def open_report(run: runs.RunInfo) -> AppTest:
    at = AppTest.from_function(report, args=(str(run.path),), default_timeout=APP_TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def test_an_imported_runs_scores_are_marked_claimed_in_its_report(app_runs):
    """As a user looking at an imported run's report, I read that its test scores are claimed, not verified."""
    forged = forged_bundle_import(good_run(app_runs), app_runs)
    metrics = {metric.label: metric.value for metric in open_report(forged).metric}
    assert metrics["Test accuracy (claimed, not verified)"] == "99.99%"
    assert "Test loss (claimed, not verified)" in metrics
    trained = {metric.label for metric in open_report(good_run(app_runs)).metric}
    assert {"Test accuracy", "Test loss"} <= trained


def test_a_report_without_params_status_or_reason_reads_na(app_runs):
    """As a user with a run saved without a parameter count, status or reason, I get its report with "n/a"."""
    run = good_run(app_runs)
    meta = json.loads((run.path / runs.META_FILE).read_text())
    meta.update(params=None, stop_reason=None, precision=None)
    del meta["status"]
    (run.path / runs.META_FILE).write_text(json.dumps(meta))
    at = open_report(run)
    assert {metric.label: metric.value for metric in at.metric}["Parameters"] == "n/a"
    assert at.success[0].value.startswith("?:")
