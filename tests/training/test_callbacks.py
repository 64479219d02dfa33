"""Tests for tlcore.callbacks, driven directly with fake logs (as Keras tests EarlyStopping)."""

import json
import math
import time

import keras
import numpy as np
import pytest

from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record
from tlcore.training import callbacks
from tlcore.training.callbacks import (
    BestModelKeeper,
    MetricsLogger,
    NanGuard,
    RunClock,
    StopOnRequest,
    save_model_atomic,
)


def tiny_model(learning_rate=0.01):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy")
    return model


def fill(model, value):
    """Mark the model's weights with one number, to tell epochs apart."""
    model.set_weights([np.full_like(weight, value) for weight in model.get_weights()])


def marker(model):
    return float(model.get_weights()[0].flat[0])


def saved_marker(path):
    return marker(keras.saving.load_model(path, compile=False))


# ----------------------------------------------------------------- BestModelKeeper


def drive_keeper(keeper, model, epochs):
    """Epoch i has weights filled with i and the given logs."""
    for epoch, logs in enumerate(epochs):
        fill(model, epoch)
        keeper.on_epoch_end(epoch, logs)


@pytest.fixture
def save_every_time(monkeypatch):
    monkeypatch.setattr(callbacks, "SAVE_INTERVAL_S", 0.0)


def test_keeper_picks_the_highest_val_accuracy(tmp_path, save_every_time):
    model = tiny_model()
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)

    drive_keeper(keeper, model, [
        {"val_accuracy": 0.5, "val_loss": 0.9},
        {"val_accuracy": 0.8, "val_loss": 0.7},
        {"val_accuracy": 0.6, "val_loss": 0.1},
    ])

    assert keeper.state["best_epoch"] == 1
    assert keeper.state["best_val_accuracy"] == 0.8
    assert marker(model) == 2, "training continues with the current weights"
    assert keeper.restore_best() is True
    assert marker(model) == 1
    assert saved_marker(tmp_path / "model.keras") == 1


def test_keeper_breaks_accuracy_ties_by_the_lower_val_loss(tmp_path, save_every_time):
    model = tiny_model()
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)

    drive_keeper(keeper, model, [
        {"val_accuracy": 0.75, "val_loss": 0.6},
        {"val_accuracy": 0.75, "val_loss": 0.4},
        {"val_accuracy": 0.75, "val_loss": 0.5},
    ])

    assert keeper.state["best_epoch"] == 1
    keeper.restore_best()
    assert marker(model) == 1


def test_keeper_ignores_epochs_without_validation_or_with_nan_loss(tmp_path, save_every_time):
    model = tiny_model()
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)

    drive_keeper(keeper, model, [
        {"loss": 0.3},
        {"val_accuracy": 0.4, "val_loss": 0.8},
        {"val_accuracy": 0.9, "val_loss": float("nan")},
        {"val_accuracy": 1.0, "val_loss": float("inf")},
    ])

    assert keeper.state["best_epoch"] == 1
    keeper.restore_best()
    assert marker(model) == 1


def two_layer_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="bottom"), keras.layers.Dense(2, name="top")])
    model.compile(optimizer="adam", loss="mse")
    return model


def fill_layer(model, name, value):
    layer = model.get_layer(name)
    layer.set_weights([np.full_like(weight, value) for weight in layer.get_weights()])


def layer_marker(model, name):
    return float(model.get_layer(name).get_weights()[0].flat[0])


def test_keeper_restores_every_layer_after_a_later_phase_unfroze_more(tmp_path, save_every_time):
    """Phase 1 trains the top only; phase 2 also the bottom but never does better."""
    model = two_layer_model()
    fill_layer(model, "bottom", 1)
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)

    model.get_layer("bottom").trainable = False
    keeper.on_train_begin()
    for epoch, accuracy in enumerate([0.5, 0.7]):
        fill_layer(model, "top", 10 + epoch)
        keeper.on_epoch_end(epoch, {"val_accuracy": accuracy, "val_loss": 0.5})
    model.get_layer("bottom").trainable = True
    keeper.on_train_begin()
    for epoch in range(2):
        fill_layer(model, "bottom", 20 + epoch)
        fill_layer(model, "top", 30 + epoch)
        keeper.on_epoch_end(2 + epoch, {"val_accuracy": 0.6, "val_loss": 0.5})

    assert keeper.restore_best() is True
    assert (layer_marker(model, "bottom"), layer_marker(model, "top")) == (1, 11)
    saved = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert (layer_marker(saved, "bottom"), layer_marker(saved, "top")) == (1, 11)


def test_keeper_saving_midway_puts_the_current_weights_back(tmp_path, save_every_time):
    model = two_layer_model()
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)
    keeper.on_train_begin()
    fill_layer(model, "bottom", 1)
    fill_layer(model, "top", 2)
    keeper.on_epoch_end(0, {"val_accuracy": 0.9, "val_loss": 0.1})
    fill_layer(model, "top", 3)
    keeper.on_epoch_end(1, {"val_accuracy": 0.95, "val_loss": 0.1})  # saves, then training goes on

    assert layer_marker(saved := keras.saving.load_model(tmp_path / "model.keras", compile=False), "top") == 3
    assert layer_marker(saved, "bottom") == 1
    fill_layer(model, "top", 4)
    keeper.on_epoch_end(2, {"val_accuracy": 0.5, "val_loss": 0.1})
    keeper.save_best()
    assert layer_marker(model, "top") == 4, "the model keeps training from where it was"


def test_keeper_without_a_measured_epoch_restores_nothing_and_saves_nothing(tmp_path):
    model = tiny_model()
    fill(model, 7)
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)

    keeper.on_epoch_end(0, {"loss": 1.0})

    assert keeper.restore_best() is False
    assert marker(model) == 7
    assert not (tmp_path / "model.keras").exists()


def test_keeper_saves_the_best_model_at_the_end_even_between_save_intervals(tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks, "SAVE_INTERVAL_S", 3600.0)
    model = tiny_model()
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)

    drive_keeper(keeper, model, [{"val_accuracy": 0.9, "val_loss": 0.2}, {"val_accuracy": 0.5, "val_loss": 0.2}])
    keeper.restore_best()

    assert saved_marker(tmp_path / "model.keras") == 0


def test_keeper_continues_from_an_earlier_best(tmp_path, save_every_time):
    # A resumed run passes the best key it already has: only a better epoch replaces the saved model.
    model = tiny_model()
    keeper = BestModelKeeper(model, tmp_path / "model.keras", state={"best_key": (0.8, -0.3), "best_epoch": None})
    keeper.set_model(model)

    drive_keeper(keeper, model, [{"val_accuracy": 0.7, "val_loss": 0.1}])

    assert keeper.restore_best() is False
    assert not (tmp_path / "model.keras").exists()


def test_save_model_atomic_replaces_the_file_and_leaves_no_partial(tmp_path):
    model = tiny_model()
    path = tmp_path / "model.keras"
    fill(model, 1)
    save_model_atomic(model, path)
    fill(model, 2)

    save_model_atomic(model, path)

    assert saved_marker(path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_failed_save_keeps_the_previous_model(tmp_path, monkeypatch):
    model = tiny_model()
    path = tmp_path / "model.keras"
    fill(model, 1)
    save_model_atomic(model, path)

    def broken_save(target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError):
        save_model_atomic(model, path)

    assert saved_marker(path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


# ----------------------------------------------------------------- NanGuard and StopOnRequest


@pytest.mark.parametrize(
    ("loss", "triggered"),
    [(0.5, False), (None, False), (float("nan"), True), (float("inf"), True), (np.float32("nan"), True)],
)
def test_nan_guard(loss, triggered):
    model = tiny_model()
    guard = NanGuard()
    guard.set_model(model)
    model.stop_training = False

    guard.on_train_batch_end(0, {} if loss is None else {"loss": loss})

    assert guard.triggered is triggered
    assert model.stop_training is triggered


def test_stop_on_request_stops_at_the_next_batch_after_the_file_appears(tmp_path):
    model = tiny_model()
    stopper = StopOnRequest(tmp_path)
    stopper.set_model(model)
    model.stop_training = False

    stopper.on_train_batch_end(0)
    assert not stopper.stopped and not model.stop_training

    (tmp_path / run_folder.STOP_FILE).write_text("now")
    stopper.on_train_batch_end(1)
    assert stopper.stopped and model.stop_training


# ----------------------------------------------------------------- MetricsLogger


def test_metrics_logger_writes_epoch_rows_and_status(tmp_path):
    model = tiny_model(learning_rate=0.005)
    clock = RunClock(total_epochs=5, steps_per_epoch=4)
    clock.epoch_offset = 2  # a second phase: its first epoch is the run's third
    echoed = []
    logger = MetricsLogger(tmp_path, clock, "fine_tune", echo=echoed.append)
    logger.set_model(model)

    logger.on_epoch_begin(0)
    logger.on_epoch_end(0, {"loss": 0.9, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": np.float32(0.25)})

    (row,) = run_record.read_metrics(tmp_path)
    assert row["type"] == "epoch" and row["phase"] == "fine_tune"
    assert row["epoch"] == 3
    assert row["loss"] == 0.9 and row["accuracy"] == 0.5 and row["val_loss"] == 1.1 and row["val_accuracy"] == 0.25
    assert math.isclose(row["lr"], 0.005, rel_tol=1e-6)
    assert row["partial"] is False
    assert echoed == [row]
    status = run_folder.read_json(tmp_path / run_folder.STATUS_FILE)
    assert status["state"] == "running" and status["epoch"] == 3 and status["epochs"] == 5


def test_metrics_logger_turns_non_finite_numbers_into_null(tmp_path):
    model = tiny_model()
    logger = MetricsLogger(tmp_path, RunClock(1, 1), "train")
    logger.set_model(model)

    logger.on_epoch_end(0, {"loss": float("nan"), "accuracy": 0.5})

    text = (tmp_path / run_folder.METRICS_FILE).read_text()
    assert "NaN" not in text and "Infinity" not in text
    row = json.loads(text)
    assert row["loss"] is None and row["val_loss"] is None


def test_metrics_logger_writes_throttled_progress_rows(tmp_path, monkeypatch):
    model = tiny_model()
    logger = MetricsLogger(tmp_path, RunClock(total_epochs=2, steps_per_epoch=3), "train")
    logger.set_model(model)
    logger.on_epoch_begin(0)

    monkeypatch.setattr(callbacks, "PROGRESS_INTERVAL_S", 0.0)
    logger.on_train_batch_end(0, {"loss": 1.0, "accuracy": 0.0})
    monkeypatch.setattr(callbacks, "PROGRESS_INTERVAL_S", 3600.0)
    logger.on_train_batch_end(1, {"loss": 0.9, "accuracy": 0.5})  # too soon after the last row: skipped
    monkeypatch.setattr(callbacks, "PROGRESS_INTERVAL_S", 0.0)
    logger.on_train_batch_end(2, {"loss": 0.8, "accuracy": 1.0})

    rows = run_record.read_metrics(tmp_path)
    assert [(row["type"], row["batch"]) for row in rows] == [("progress", 1), ("progress", 3)]
    assert rows[-1]["batches"] == 3 and rows[-1]["epochs"] == 2 and rows[-1]["loss"] == 0.8
    assert rows[-1]["eta_s"] is not None and rows[-1]["eta_s"] >= 0
    assert run_folder.read_json(tmp_path / run_folder.STATUS_FILE)["batch"] == 3


def test_run_clock_has_no_estimate_before_any_step():
    clock = RunClock(total_epochs=3, steps_per_epoch=0)

    assert clock.steps_per_epoch == 1
    assert clock.remaining_seconds(0, 0) is None


def test_an_early_best_is_written_once_the_interval_has_passed_even_without_a_better_epoch(tmp_path, monkeypatch):
    # The killed-run case: the best epoch comes first, within the save interval, and no later epoch beats it.
    monkeypatch.setattr(callbacks, "SAVE_INTERVAL_S", 0.2)
    model = tiny_model()
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)
    drive_keeper(keeper, model, [{"val_accuracy": 0.9, "val_loss": 0.2}])
    assert not (tmp_path / "model.keras").exists(), "within the interval nothing is written yet"

    time.sleep(0.25)
    fill(model, 5)
    keeper.on_train_batch_end(0)  # a batch of a later, worse epoch

    assert saved_marker(tmp_path / "model.keras") == 0, "the best epoch's weights, not the current ones"
    assert marker(model) == 5, "training goes on with its current weights"
    facts = run_folder.model_facts(tmp_path)
    assert facts["epoch"] == 1 and facts["val_accuracy"] == 0.9 and facts["val_loss"] == 0.2


def test_a_refused_save_leaves_the_facts_of_the_model_that_is_kept(tmp_path, save_every_time, monkeypatch):
    model = tiny_model()
    keeper = BestModelKeeper(model, tmp_path / "model.keras")
    keeper.set_model(model)
    drive_keeper(keeper, model, [{"val_accuracy": 0.5, "val_loss": 0.9}])

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(callbacks, "save_model_atomic", disk_full)
    with pytest.raises(OSError):
        drive_keeper(keeper, model, [{"val_accuracy": 0.5, "val_loss": 0.9}, {"val_accuracy": 0.9, "val_loss": 0.1}])

    assert run_folder.model_facts(tmp_path)["val_accuracy"] == 0.5
    assert saved_marker(tmp_path / "model.keras") == 0
