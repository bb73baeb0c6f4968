"""Training engine and run registry: real 1-epoch fits on small slices of MNIST."""

import dataclasses
import json
import threading

import numpy as np
import pytest

from lib.data import catalog, datasets
from lib.execution import pipeline
from lib.models import inference
from lib.store import runs
from lib.training import loop
from lib.training.config import TrainConfig, default_learning_rate


@pytest.fixture(scope="module")
def mnist_small(tiny_data_dir):
    dataset = catalog.load_dataset("mnist", tiny_data_dir)
    return datasets.prepare(dataset, validation_split=0.15, limit=512, seed=0)


def test_one_epoch_fit_saves_a_run_that_reloads_with_identical_predictions(mnist_small, runs_dir):
    config = TrainConfig(arch="cnn-tf-tutorial", epochs=1, batch_size=32, precision="float32")
    events = []
    result = loop.train(config, mnist_small, on_progress=events.append)
    assert result.status == "finished" and result.stop_reason == "Completed 1 epoch."  # not "1 epochs"
    assert result.params == 93_322
    assert 0.0 <= result.test_accuracy <= 1.0 and result.test_loss > 0
    assert len(result.confusion) == 10 and sum(map(sum, result.confusion)) == len(mnist_small.y_test)
    kinds = [event["kind"] for event in events]
    phases = [event["phase"] for event in events if event["kind"] == "phase"]
    assert phases == [loop.LOADING_TENSORFLOW, loop.BUILDING, loop.COMPILING] and kinds[:len(phases)] == ["phase"] * 3
    kinds = kinds[len(phases):]  # what it says it does before fit, then fit's own events
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 1
    batches = [event for event in events if event["kind"] == "batch"]
    assert len(batches) == int(np.ceil(len(mnist_small.y_train) / 32))  # every batch reported
    for key in ("loss", "accuracy", "epoch", "step", "samples_per_s", "elapsed", "eta"):
        assert key in batches[-1]
    epoch = next(event for event in events if event["kind"] == "epoch")
    assert epoch["val_accuracy"] is not None and epoch["val_loss"] is not None

    run = runs.save_run(result, config, mnist_small.info, runs_dir)
    assert sorted(p.name for p in run.path.iterdir()) == ["history.csv", "meta.json", "model.keras"]
    meta = json.loads((run.path / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["params"] == 93_322
    assert meta["config"]["arch"] == "cnn-tf-tutorial"
    assert meta["versions"]["keras"].startswith("3.")
    reloaded = runs.load_model(runs.get_run(run.run_id, runs_dir))
    x = mnist_small.x_test[:64]
    np.testing.assert_allclose(
        inference.predict_proba(reloaded, x, normalize=True),
        inference.predict_proba(result.model, x, normalize=True),
        rtol=1e-5, atol=1e-6,
    )
    # The reloaded model scores the same on the test set (tutorial lesson 9).
    probs = inference.predict_proba(reloaded, mnist_small.x_test, normalize=True)
    assert inference.score(probs, mnist_small.y_test, 10)["accuracy"] == pytest.approx(result.test_accuracy)


def test_stop_request_mid_epoch_saves_a_stopped_run_that_loads(mnist_small, runs_dir):
    config = TrainConfig(arch="mlp-128", epochs=3, batch_size=16)
    steps = []
    stop = threading.Event()

    def on_progress(event):
        if event["kind"] == "batch":
            steps.append(event["step"])
            if event["step"] == 5:
                stop.set()

    result = loop.train(config, mnist_small, on_progress, stop.is_set)
    assert result.status == "stopped"
    assert max(steps) == 5  # stopped right after the batch that asked, mid-epoch
    # The partial epoch is recorded as how far it got, never as a whole epoch.
    assert [row["epoch"] for row in result.history] == [round(5 * 16 / len(mnist_small.y_train), 3)]
    assert 0 < result.epochs_trained < 1
    assert result.test_accuracy is not None  # the weights so far are kept and scored
    run = runs.save_run(result, config, mnist_small.info, runs_dir)
    saved = runs.get_run(run.run_id, runs_dir)
    assert saved.meta["status"] == "stopped"
    assert saved.meta["epochs_completed"] == result.epochs_trained
    assert list(runs.load_history(saved)["epoch"]) == [result.epochs_trained]
    assert runs.load_model(run).count_params() == 101_770


def test_stop_at_target_ends_early(mnist_small):
    config = TrainConfig(arch="softmax", epochs=6, target_metric="loss", target_value=100.0)
    result = loop.train(config, mnist_small)
    assert len(result.history) == 1
    assert result.status == "finished" and "Target reached at epoch 1" in result.stop_reason


def test_nan_loss_ends_the_run_as_diverged_with_the_fix(mnist_small):
    config = TrainConfig(arch="mlp-1024", epochs=2, optimizer="sgd", learning_rate=10.0, normalize=False)
    batches = []
    result = loop.train(config, mnist_small, lambda e: e["kind"] == "batch" and batches.append(e))
    assert result.status == "diverged"
    assert len(batches) < 10  # ended at the first exploding batch, not after two epochs
    assert "the loss became" in result.stop_reason and "Lower the learning rate (try 0.001" in result.stop_reason
    assert "Turning normalization on" in result.stop_reason
    assert result.test_accuracy is None  # NaN weights are not scored


def test_a_loss_that_ends_far_above_its_start_at_chance_is_diverged_not_finished(mnist_small, runs_dir):
    """SGD at learning rate 10 on normalized pixels: finite loss, but 2.3 -> hundreds at 10% accuracy."""
    config = TrainConfig(arch="mlp-128", epochs=3, batch_size=32, optimizer="sgd", learning_rate=10.0,
                         lr_schedule="constant")  # batch 32, as the tutorials: 14 steps an epoch here
    events = []
    result = loop.train(config, mnist_small, events.append)
    assert result.status == "diverged"
    assert len(result.history) == 1  # stopped at the end of the first epoch, not after three
    assert result.history[0]["accuracy"] < 0.2
    assert "the loss rose from" in result.stop_reason and "try 0.001, the usual start for sgd" in result.stop_reason
    assert events[-1]["kind"] == "end" and events[-1]["status"] == "diverged"
    run = runs.save_run(result, config, mnist_small.info, runs_dir)
    assert run.meta["status"] == "diverged" and run.meta["stop_reason"] == result.stop_reason


def test_a_healthy_run_on_raw_pixels_is_not_called_diverged(mnist_small):
    """Softmax on 0-255 pixels starts at a loss near 100 and falls: large, but not diverging."""
    config = TrainConfig(arch="softmax", epochs=2, optimizer="rmsprop", learning_rate=1e-4, normalize=False)
    result = loop.train(config, mnist_small)
    assert result.status == "finished" and result.history[-1]["loss"] < result.history[0]["loss"]


def test_one_hot_labels_unnormalized_and_augmented_training_run(mnist_small):
    config = TrainConfig(arch="softmax", epochs=1, label_encoding="one_hot", normalize=False, augment=True,
                         optimizer="rmsprop", learning_rate=1e-4)
    result = loop.train(config, mnist_small)
    assert result.status == "finished" and result.params == 7_850


def test_make_dataset_keeps_uint8_until_the_batch_and_scales_it(mnist_small):
    config = TrainConfig(batch_size=50)
    batch_x, batch_y = next(iter(loop.make_dataset(mnist_small.x_train, mnist_small.y_train, config,
                                                       training=False, num_classes=10)))
    assert batch_x.shape == (50, 28, 28, 1) and batch_x.dtype.name == "float32"
    assert float(batch_x.numpy().max()) <= 1.0
    np.testing.assert_allclose(batch_x.numpy(), mnist_small.x_train[:50] / 255.0, atol=1e-6)
    assert mnist_small.x_train.dtype == np.uint8


def test_config_refuses_bad_settings_in_words():
    with pytest.raises(ValueError, match="Unknown architecture: 'nope'"):
        TrainConfig(arch="nope")
    with pytest.raises(ValueError, match="validation split above 0"):
        TrainConfig(validation_split=0.0, early_stopping_patience=2)
    config = TrainConfig(arch="mlp-128", epochs=2, name="mine")
    assert TrainConfig.from_dict({**config.to_dict(), "unknown_key": 1}) == config


def test_train_and_save_uses_the_data_dir_and_registry(tiny_data_dir, runs_dir):
    config = TrainConfig(dataset="fashion_mnist", arch="mlp-128", epochs=1, limit=200)
    run, result = pipeline.train_and_save(config, data_dir=tiny_data_dir, runs_dir=runs_dir)
    assert run.path.parent == runs_dir
    assert run.class_names[0] == "T-shirt/top"
    listed, damaged = runs.list_runs(runs_dir, include_bundled=False)
    assert [r.run_id for r in listed] == [run.run_id] and not damaged


class _FakeModel:
    stop_training = False


@pytest.mark.parametrize("batch_losses, epoch_loss, accuracy, normalized, verdict", [
    ([2053.0, 1041.0, 13.6], 13.6, 0.10, True, "the loss rose from 2.3 to 13.6"),  # SGD lr 10, full MNIST
    ([3.0, 50.0, 4.0], 4.0, 0.10, True, "the loss shot up from 2.3 to 50"),  # blew up, settled at chance
    ([132.0, 120.0, 110.0], 110.0, 0.17, False, ""),  # softmax on raw pixels: a high start, falling
    ([2.31, 2.30, 2.29], 2.29, 0.09, True, ""),  # a slow learner is not diverging
    ([2.3, 50.0, 1.0], 1.0, 0.70, True, ""),  # a spike the model recovered from
])
def test_divergence_needs_chance_accuracy_and_a_loss_far_above_its_start(
        batch_losses, epoch_loss, accuracy, normalized, verdict):
    import math

    from lib.training import callbacks

    reporter = callbacks.ProgressReporter(None, None, epochs=3, steps=len(batch_losses), batch_size=1,
                                          samples=len(batch_losses), num_classes=10,
                                          expected_start=math.log(10) if normalized else None)
    reporter.set_model(_FakeModel())
    reporter.on_train_begin()
    reporter.on_epoch_begin(0)
    for step, loss in enumerate(batch_losses):
        reporter.on_train_batch_end(step, {"loss": loss, "accuracy": accuracy})
    reporter.on_epoch_end(0, {"loss": epoch_loss, "accuracy": accuracy})
    assert reporter.diverged.startswith(verdict) if verdict else reporter.diverged == ""
    assert reporter.model.stop_training is bool(verdict)


def test_one_cycle_warms_up_to_the_peak_then_glides_down():
    schedule = loop.one_cycle_schedule(0.01, total_steps=100)
    rates = [float(schedule(step)) for step in range(101)]
    assert rates[0] == pytest.approx(0.01 / 25)
    assert max(rates) == pytest.approx(0.01) and rates.index(max(rates)) == 20  # 20% of the steps
    assert all(a < b for a, b in zip(rates[:20], rates[1:21]))  # climbs
    assert all(a >= b for a, b in zip(rates[20:], rates[21:]))  # then only falls
    assert rates[100] == pytest.approx(0.01 * loop.FINAL_SHARE)


def test_the_defaults_are_the_fast_recipe_and_learn_in_one_epoch(mnist_small, runs_dir):
    defaults = TrainConfig()
    assert (defaults.arch, defaults.epochs, defaults.batch_size, defaults.learning_rate, defaults.lr_schedule) == (
        "cnn-fast", 1, 128, 0.01, "one_cycle")
    assert default_learning_rate(defaults.optimizer) == defaults.learning_rate  # CLI and Train page agree
    # 435 images in batches of 16: the recipe's 128 would be 4 steps, too few for its warm-up.
    config = dataclasses.replace(defaults, batch_size=16)
    result = loop.train(config, mnist_small)
    assert result.status == "finished" and result.params == 215_418
    assert len(result.history) == 1 and result.history[0]["val_accuracy"] is not None
    assert result.test_accuracy > 0.5  # far above chance (10%)
    run = runs.save_run(result, config, mnist_small.info, runs_dir)
    reloaded = runs.load_model(runs.get_run(run.run_id, runs_dir))  # the schedule is saved with the model
    np.testing.assert_allclose(
        inference.predict_proba(reloaded, mnist_small.x_test[:32], normalize=True),
        inference.predict_proba(result.model, mnist_small.x_test[:32], normalize=True),
        rtol=1e-5, atol=1e-6,
    )


def test_small_datasets_get_enough_epochs_for_the_fast_recipes_steps():
    """One epoch of MNIST (469 steps at batch 128) is enough; 1,000 images (8 steps) need 50 epochs."""
    from lib.training.config import MAX_EPOCHS, QUICK_MIN_STEPS, epochs_for_steps

    assert epochs_for_steps(60_000, 128) == 1
    assert epochs_for_steps(1_000, 128) == 50 and 50 * 8 >= QUICK_MIN_STEPS
    assert epochs_for_steps(3_000, 128) == 17
    assert epochs_for_steps(60_000, 128, epochs=3) == 3  # never fewer than asked
    assert epochs_for_steps(10, 128) == 400
    assert epochs_for_steps(10, 128, min_steps=10_000) == MAX_EPOCHS == 500  # capped


@pytest.mark.parametrize("stored", [
    "not a mapping", ["epochs", 1], {"epochs": "5"}, {"epochs": True}, {"batch_size": 12.5}, {"normalize": 1},
    {"layers": "Dense"}, {"layers": ["Dense"]}, {"name": 3}, {"limit": 2.5}, {"learning_rate": "0.01"},
    {"validation_split": None}, {"arch": None},
])
def test_stored_settings_of_the_wrong_type_give_a_message_not_a_crash(stored):
    """A meta.json or bundle can hold anything: from_dict answers ValueError in words, never TypeError."""
    with pytest.raises(ValueError, match="must be|mapping"):
        TrainConfig.from_dict(stored)


def test_stored_settings_with_layers_as_a_json_list_still_load():
    config = TrainConfig.from_dict({"arch": "custom", "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}]})
    assert config.layers == ({"type": "Flatten"}, {"type": "Dense", "units": 10})
