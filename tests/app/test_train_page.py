"""Train page: pick, configure, train in the background, watch, stop."""

from lib.execution import jobs
from lib.store import runs
from lib.training.config import TrainConfig
from lib.ui import common as ui, train as ui_train
from lib.viz import charts
from tests.app.conftest import open_page, run_names


def test_train_page_shows_the_model_summary_with_parameter_formulas(app_runs):
    """As a learner, I see each layer's output shape and how its parameters are counted."""
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("cnn-tf-tutorial").run()
    summary = at.dataframe[0].value
    assert summary["params"].sum() == 93_322
    assert "(3*3*1 + 1) * 32 = 320" in list(summary["how the params are counted"])
    assert any("93,322 parameters" in expander.label for expander in at.expander)


def test_tutorial_preset_sets_the_tutorials_exact_settings(app_runs):
    """As a teacher, one click reproduces the softmax tutorial's settings."""
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("softmax").run()
    at.button(key="train_preset").click().run()
    assert at.selectbox(key="train_optimizer").value == "rmsprop"
    assert at.select_slider(key="train_learning_rate").value == 1e-4
    assert at.number_input(key="train_epochs").value == 50
    assert at.toggle(key="train_normalize").value is False
    assert at.radio(key="train_lr_schedule").value == "constant"


def test_choosing_rmsprop_sets_the_tutorials_learning_rate(app_runs):
    """As a learner switching to RMSprop, I start from its tutorials' 1e-4, the rate the CLI uses too."""
    at = open_page("pages/train.py")
    assert at.select_slider(key="train_learning_rate").value == 1e-2  # the default one-cycle recipe's peak
    at.selectbox(key="train_optimizer").set_value("rmsprop").run()
    assert at.select_slider(key="train_learning_rate").value == 1e-4
    at.selectbox(key="train_optimizer").set_value("adam").run()
    assert at.select_slider(key="train_learning_rate").value == 1e-2


def test_the_settings_start_from_the_engines_defaults(app_runs):
    """As a user, the Train page starts where `python -m lib train` does: TrainConfig's defaults."""
    at = open_page("pages/train.py")
    defaults = TrainConfig()
    assert at.selectbox(key="train_arch").value == defaults.arch
    epochs = at.number_input(key="train_epochs")
    assert epochs.value == defaults.epochs
    assert epochs.max == 200 and "From 1 to 200" in epochs.help  # typing 500 is not taken: the help says so
    assert at.selectbox(key="train_batch_size").value == defaults.batch_size
    assert at.radio(key="train_lr_schedule").value == defaults.lr_schedule
    assert at.slider(key="train_validation_split").value == defaults.validation_split


def test_dense_without_flatten_is_refused_before_training(app_runs):
    """As a learner who forgot Flatten, I get a plain explanation instead of a crash."""
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("custom").run()
    at.text_area(key="train_json").set_value(
        '[{"type": "Dense", "units": 64, "activation": "relu"},'
        ' {"type": "Dense", "units": "num_classes", "activation": "softmax"}]'
    ).run()
    assert at.error and "Flatten" in at.error[0].value
    assert at.button(key="train_start").disabled


def test_wrong_number_of_output_units_is_refused(app_runs):
    """As a learner, a last layer with 5 units on 10 classes is explained, not crashed."""
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("custom").run()
    at.text_area(key="train_json").set_value(
        '[{"type": "Flatten"}, {"type": "Dense", "units": 5, "activation": "softmax"}]'
    ).run()
    assert at.error and "10 classes" in at.error[0].value


def test_inconsistent_settings_show_an_error(app_runs):
    """As a user, a validation target without a validation split is explained."""
    at = open_page("pages/train.py")
    at.slider(key="train_validation_split").set_value(0.0).run()
    at.toggle(key="train_target_on").set_value(True).run()
    assert at.error and "validation split above 0" in at.error[0].value
    assert at.button(key="train_start").disabled


def test_training_produces_a_run_shown_with_results_and_on_compare(app_runs):
    """As a user, I train a small model, see its scores, and find it on Compare and Predictions."""
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("mlp-128").run()
    at.number_input(key="train_epochs").set_value(1)
    at.text_input(key="train_name").set_value("my mlp")
    at.run()
    at.button(key="train_start").click().run()
    job = ui.job_manager().wait(at.session_state[ui.LAST_JOB], timeout=300)
    assert job.state == "finished", job.error
    assert job.batches and job.epochs  # live progress was recorded for the charts
    at.run()
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Test accuracy"].endswith("%") and metrics["Parameters"] == "101,770"
    assert {"report_acc", "report_confusion"} <= {chart.key for chart in at.get("plotly_chart")}
    compare = open_page("pages/compare.py")
    assert "my mlp" in run_names(compare)
    predictions = open_page("pages/predictions.py")
    assert any("my mlp" in option for box in predictions.selectbox for option in box.options)


def test_stop_keeps_a_usable_model(app_runs):
    """As a user, I stop a long training; the model trained so far is saved and usable."""
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("mlp-128").run()
    at.number_input(key="train_epochs").set_value(200)
    at.selectbox(key="train_batch_size").set_value(16)
    at.run()
    at.button(key="train_start").click().run()
    job_id = at.session_state[ui.LAST_JOB]
    manager = ui.job_manager()
    for _ in range(600):
        job = manager.snapshot(job_id)
        if job.batches:
            break
        at.run()
    at.button(key=f"stop_{job_id}").click().run()
    job = manager.wait(job_id, timeout=120)
    assert job.state == "stopped"
    run = runs.get_run(job.run_id)
    assert run.meta["status"] == "stopped" and run.meta["test_accuracy"] is not None
    assert runs.load_model(run).count_params() == 101_770


def _job(state: str, batches: int, epochs: int, planned: int = 10) -> jobs.Job:
    return jobs.Job(
        job_id="j", session_id="s", config=TrainConfig(epochs=planned), state=state, created=1.0,
        batches=[{"epoch_float": (i + 1) / 4, "accuracy": 0.5, "loss": 1.0 / (i + 1)} for i in range(batches)],
        epochs=[{"epoch": e + 1, "accuracy": 0.6, "loss": 0.5} for e in range(epochs)],
    )


def test_live_chart_reuses_its_figure_between_epochs_and_rebuilds_when_one_ends():
    """The once-a-second redraw updates batch points in place; an epoch's end redraws the whole chart."""
    cache = {}
    first = ui_train.live_figure(_job(jobs.RUNNING, 2, 0), "loss", cache)
    again = ui_train.live_figure(_job(jobs.RUNNING, 3, 0), "loss", cache)
    assert again is first
    assert len(again.data[0].x) == 3

    after_epoch = ui_train.live_figure(_job(jobs.RUNNING, 5, 1), "loss", cache)
    assert after_epoch is not first
    assert "train (epoch)" in [trace.name for trace in after_epoch.data]


def test_live_chart_of_a_stopped_run_fits_what_was_trained_not_the_planned_epochs():
    cache = {}
    running = ui_train.live_figure(_job(jobs.RUNNING, 6, 1, planned=50), "accuracy", cache)
    assert tuple(running.layout.xaxis.range) == (0, 50)
    stopped = ui_train.live_figure(_job(jobs.STOPPED, 6, 1, planned=50), "accuracy", cache)
    assert tuple(stopped.layout.xaxis.range) == (0, 2)
    assert charts.BATCH_TRACE in [trace.name for trace in stopped.data]


def test_live_figures_are_kept_while_a_job_runs_and_dropped_when_it_ends():
    running = ui_train._live_cache(_job(jobs.RUNNING, 2, 0), "tab-1")
    running["loss"] = "figure"
    assert ui_train._live_cache(_job(jobs.RUNNING, 3, 0), "tab-1") is running
    other_tab = ui_train._live_cache(_job(jobs.RUNNING, 3, 0), "tab-2")
    assert other_tab is not running and other_tab == {}  # another session watching the same job
    ui_train._live_cache(_job(jobs.STOPPED, 3, 0), "tab-1")
    assert not any(job_id == "j" for _, job_id in ui_train.LIVE_FIGURES)  # every session's figures of it
    for n in range(ui_train.MAX_LIVE_FIGURES + 5):  # tabs closed mid-run never come back to drop theirs
        ui_train._live_cache(jobs.Job(job_id=f"other-{n}", session_id="s", config=TrainConfig(), state=jobs.RUNNING),
                             f"tab-{n}")
    assert len(ui_train.LIVE_FIGURES) == ui_train.MAX_LIVE_FIGURES
    ui_train.LIVE_FIGURES.clear()


def test_live_figures_of_a_session_that_stopped_polling_are_dropped():
    """A tab closed while its job runs: its figures go once it has not polled for a while."""
    job = _job(jobs.RUNNING, 2, 0)
    ui_train._live_cache(job, "closed-tab", now=100.0)
    ui_train._live_cache(job, "open-tab", now=100.0 + ui_train.LIVE_FIGURES_IDLE_S)
    ui_train._live_cache(job, "open-tab", now=101.0 + ui_train.LIVE_FIGURES_IDLE_S)
    assert list(ui_train.LIVE_FIGURES) == [("open-tab", "j")]
    ui_train.LIVE_FIGURES.clear()


def test_two_sessions_watching_one_job_never_share_a_live_figure():
    """Two tabs poll the same running job at the same moment (a Barrier starts them together), each with its
    own snapshot: every chart a tab gets shows exactly its snapshot's batch points, and nothing raises."""
    import threading
    import time

    start, problems = threading.Barrier(2), []

    def watch(session_id: str, first_batches: int) -> None:
        start.wait()
        try:
            for poll in range(60):
                job = _job(jobs.RUNNING, first_batches + poll % 7, 0)
                figures = ui_train._live_cache(job, session_id)
                for metric in ("loss", "accuracy"):
                    figure = ui_train.live_figure(job, metric, figures)
                    figure.to_json()  # what st.plotly_chart does with it, while the other tab polls
                    time.sleep(0.001)  # let the other tab run in between
                    shown = next(trace for trace in figure.data if trace.name == charts.BATCH_TRACE)
                    if len(shown.x) != len(job.batches):
                        problems.append(f"{session_id} poll {poll}: {len(shown.x)} points, not {len(job.batches)}")
        except Exception as error:  # noqa: BLE001 - reported below
            problems.append(f"{session_id}: {type(error).__name__}: {error}")

    tabs = [threading.Thread(target=watch, args=("tab-1", 2)), threading.Thread(target=watch, args=("tab-2", 30))]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()
    ui_train.LIVE_FIGURES.clear()
    assert problems == []


def test_reruns_keep_the_keras_session_so_polling_does_not_slow_training(app_runs):
    """Streamlit clears Keras' session (kernel cache, full GC) after every run unless the router
    stops it; with the live charts polling, that cut training in a real browser to a third."""
    import keras

    at = open_page("pages/home.py")
    before = keras.backend.get_uid("rerun_probe")
    at.run()
    at.run()
    assert keras.backend.get_uid("rerun_probe") == before + 1  # a cleared session restarts at 1


def test_the_tutorial_cnn_preset_brings_back_the_tutorials_settings(app_runs):
    """As a teacher, the tutorial CNN's preset replaces the fast defaults with the tutorial's own recipe."""
    at = open_page("pages/train.py")
    assert at.selectbox(key="train_arch").value == "cnn-fast"  # the fastest recipe is the default
    at.selectbox(key="train_arch").set_value("cnn-tf-tutorial").run()
    at.button(key="train_preset").click().run()
    assert at.number_input(key="train_epochs").value == 5
    assert at.selectbox(key="train_batch_size").value == 32
    assert at.select_slider(key="train_learning_rate").value == 1e-3
    assert at.radio(key="train_lr_schedule").value == "constant"


def test_the_layer_builder_keeps_every_zoo_model_exactly(app_runs):
    """As a tinkerer, copying a zoo model into the layer table changes nothing until I edit it
    (cnn-fast's BatchNormalization momentum 0.9 included: the table's rate column carries it)."""
    from lib.models import architectures

    for name, arch in architectures.ZOO.items():
        rows = [ui_train._spec_to_row(spec) for spec in arch.layers]
        rebuilt = architectures.normalize_layers([ui_train._row_to_spec(row) for row in rows])
        assert rebuilt == list(arch.layers), name


def test_a_small_dataset_with_a_scheduled_rate_suggests_enough_epochs(app_runs):
    """As a user training the fast recipe on a few hundred images, I am told one epoch is too few steps
    and one click sets the epochs that give the recipe its steps."""
    at = open_page("pages/train.py")
    hint = next(info.value for info in at.info if "steps per epoch" in info.value)
    assert "540 training images at batch 128 are only 5 steps per epoch" in hint and "Try 80 epochs" in hint
    at.button(key="train_use_epochs").click().run()
    assert at.number_input(key="train_epochs").value == 80
    assert not any("steps per epoch" in info.value for info in at.info)
