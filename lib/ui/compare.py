"""Compare page widgets: validation curves of several runs, the runs table, rename and delete.

Streamlit-only glue: figures in lib.viz.charts, the run registry in lib.store.runs.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.store import runs
from lib.ui import common as ui
from lib.ui.i18n import _
from lib.viz import charts

# Session-state and widget keys of the page.
NOTICE, MANAGE, NEW_NAME = "compare_notice", "compare_manage_run", "compare_new_name_"
COMPARE_PICKER = "compare_runs"
BEST_MARK = "★"


def history_labels(chosen: list[runs.RunInfo]) -> list[str]:
    """Legend names: the display name, with the run id added where two runs share a name and a
    note on curves an imported run only claims."""
    names = [run.display_name for run in chosen]
    return [(f"{name} ({run.run_id})" if names.count(name) > 1 else name)
            + ("" if run.scores_verified else f" ({runs.CLAIMED_NOTE})") for name, run in zip(names, chosen)]


def compare_charts(chosen: list[runs.RunInfo]) -> None:
    """Validation accuracy and loss per epoch of the chosen runs, overlaid."""
    histories = {}
    for label, run in zip(history_labels(chosen), chosen):
        try:
            histories[label] = runs.load_history(run)
        except (OSError, ValueError) as problem:
            st.warning(_("The history of {label!r} cannot be read ({problem}); it is left out.").format(label=label, problem=problem),
                       icon=":material/warning:")
    curves_and_scores(chosen, histories)


def curves_metrics(histories: dict[str, pd.DataFrame]) -> tuple[str, str]:
    """Validation curves when every chosen run held out a validation split, else training curves
    (per epoch) for all of them: a run trained on every image (Home's one click) is never left out."""
    def has(history: pd.DataFrame, metric: str) -> bool:
        return metric in history and pd.to_numeric(history[metric], errors="coerce").notna().any()

    if histories and all(has(history, "val_accuracy") for history in histories.values()):
        return "val_accuracy", "val_loss"
    return "accuracy", "loss"


def curves_and_scores(chosen: list[runs.RunInfo], histories: dict[str, pd.DataFrame]) -> None:
    """The chosen runs' curves (validation or training, see `curves_metrics`), what is not in them and
    why, and a bar of test accuracy for every chosen run."""
    accuracy_metric, loss_metric = curves_metrics(histories)
    if accuracy_metric == "accuracy" and histories:
        without = [label for label, history in histories.items() if "val_accuracy" not in history
                   or pd.to_numeric(history["val_accuracy"], errors="coerce").isna().all()]
        st.caption(_("Training curves, per epoch: {items} held out no validation split, so the runs are compared on their training images (a 1-epoch run is one point).").format(items=', '.join(without)))
    no_curve = [label for label, history in histories.items() if history.empty]
    if no_curve:
        st.caption(_("No curve for {items}: no training history (imported); its test accuracy is below.").format(items=', '.join(no_curve)))
    prefix = "compare_val" if accuracy_metric.startswith("val_") else "compare_train"
    accuracy, loss = st.columns(2)
    accuracy.plotly_chart(charts.compare_figure(histories, metric=accuracy_metric), key=f"{prefix}_accuracy")
    loss.plotly_chart(charts.compare_figure(histories, metric=loss_metric), key=f"{prefix}_loss")
    scores = {label: run.meta.get("test_accuracy") for label, run in zip(history_labels(chosen), chosen)}
    st.plotly_chart(charts.test_accuracy_figure(scores), key="compare_test_accuracy")


def runs_overview(found: list[runs.RunInfo]) -> None:
    """All runs in a sortable table; the best measured test accuracy of each dataset starred and highlighted."""
    table = ui.runs_table(found)
    best = runs.best_marks(found)
    table.insert(0, "best", [BEST_MARK if marked else "" for marked in best])
    styled = table.style.apply(
        lambda row: ["background-color: rgba(0, 158, 115, 0.12)" if best[row.name] else ""] * len(row), axis=1
    )
    st.dataframe(
        styled,
        hide_index=True,
        key="compare_runs_table",
        column_config={"best": st.column_config.TextColumn(
                           "", width=32, help=_("Best measured test accuracy on its dataset")),
                       **ui.runs_table_format()},
    )


def manage_run(found: list[runs.RunInfo]) -> runs.RunInfo:
    """Rename or delete one run; the bundled model refuses both. The outcome shows below. Returns the run."""
    by_id = {run.run_id: run for run in found}
    run_id = st.selectbox(_("Run"), list(by_id), format_func=ui.run_labels(found).__getitem__, key=MANAGE)
    run = by_id[run_id]
    if run.read_only:
        st.caption(_("🔒 This run is read-only (the bundled model, a gallery run or a shared link): it cannot be "
                   "renamed or deleted."))
    ui.bundle_download(run, key="compare_dl_bundle")
    rename_col, delete_col = st.columns(2)
    with rename_col.container(border=True):
        st.text_input(_("New name"), value=run.display_name, max_chars=runs.MAX_NAME_LENGTH,
                      key=f"{NEW_NAME}{run_id}")
        st.button(_("Rename"), icon=":material/edit:", key="compare_rename", on_click=_rename, args=(run_id,))
    with delete_col.container(border=True):
        sure = st.checkbox(_("Yes, delete {display_name!r} for good").format(display_name=run.display_name), key=f"compare_confirm_{run_id}")
        st.button(_("Delete run"), icon=":material/delete:", type="primary", disabled=not sure, key="compare_delete",
                  on_click=_delete, args=(run_id, run.display_name))
    outcome = st.session_state.pop(NOTICE, None)
    if outcome and outcome[0] == "ok":
        st.success(outcome[1], icon=":material/check_circle:")
    elif outcome:
        ui.error(outcome[1], outcome[2])
    return run


# Button callbacks: they run before the page, so the table, the charts and the
# pickers all show the change in the same rerun.


def _rename(run_id: str) -> None:
    new_name = st.session_state.get(f"{NEW_NAME}{run_id}", "")
    if _apply(lambda: ui.workspace().rename_run(run_id, new_name), _("Renamed to {name!r}.").format(name=runs.clean_name(new_name))):
        # Pickers keep their choice as its label: set them again so they show the new name.
        for key in (MANAGE, COMPARE_PICKER):
            if key in st.session_state:
                st.session_state[key] = st.session_state[key]


def _delete(run_id: str, name: str) -> None:
    if _apply(lambda: ui.workspace().delete_run(run_id), _("Deleted {name!r}.").format(name=name)):
        if COMPARE_PICKER in st.session_state:
            st.session_state[COMPARE_PICKER] = [i for i in st.session_state[COMPARE_PICKER] if i != run_id]
        remaining = [run.run_id for run in ui.list_runs()[0]]
        if remaining:
            st.session_state[MANAGE] = remaining[0]  # set, not dropped, so the picker shows it
        else:
            st.session_state.pop(MANAGE, None)


def _apply(change, notice: str) -> bool:
    """Run a rename/delete and keep its outcome (success, or why not) for the page to show."""
    try:
        change()
    except runs.ReadOnlyRun as problem:
        st.session_state[NOTICE] = ("error", _("This run is read-only."), str(problem))
        return False
    except (ValueError, runs.RunNotFound, runs.DamagedRun, OSError) as problem:
        st.session_state[NOTICE] = ("error", _("That did not work."), str(problem))
        return False
    st.session_state[NOTICE] = ("ok", notice)
    return True
