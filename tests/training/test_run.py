"""Tests for tlcore.training: real, short runs in this process on tiny synthetic images.

Random weights make these runs fast but unable to learn much (a random network's
activations fade away), so they check what a run leaves behind and how it ends,
not how accurate it is; tests/test_real_weights.py checks accuracy.
"""

import json
import math

import keras
import pytest

from tlcore.errors import InputError, RunBusyError
from tlcore.results.evaluation import evaluate_run
from tlcore.results.prediction import predict_files
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import locks as run_locks
from tlcore.runs import record as run_record
from tlcore.training.run import train

EPOCH_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")


@pytest.fixture(scope="module")
def completed(shared_tiny_dataset, tiny_config, tmp_path_factory):
    """One finished two-epoch run, shared by the tests that only read it."""
    config = tiny_config(shared_tiny_dataset, epochs=2)
    result = train(config, runs_dir=tmp_path_factory.mktemp("runs"))
    return config, result


def test_result_says_how_the_run_ended(completed):
    _, result = completed

    assert result.status == "completed"
    assert result.epochs_run == 2
    assert 0.0 <= result.val_accuracy <= 1.0
    assert result.test_accuracy is None
    assert result.wall_s > 0
    assert result.feature_cache.startswith("on")
    data = result.to_dict()
    for key in ("run_dir", "status", "epochs_run", "val_accuracy", "best_val_accuracy", "wall_s"):
        assert key in data
    json.dumps(data)


def test_run_folder_holds_config_status_labels_and_split(completed):
    config, result = completed
    run_dir = run_folder.require_run_dir(result.run_dir)

    assert json.loads((run_dir / run_folder.CONFIG_FILE).read_text()) == config.to_dict()
    assert json.loads((run_dir / run_folder.LABELS_FILE).read_text()) == ["circles", "squares", "stripes"]
    status = run_record.read_status(run_dir)
    assert status["state"] == "completed"
    assert status["ended_at"] >= status["started_at"]
    split = json.loads((run_dir / run_folder.SPLIT_FILE).read_text())
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (18, 6, 0)
    leftovers = [p.name for p in run_dir.iterdir() if p.name.endswith((".tmp", ".partial", ".partial.keras"))]
    assert leftovers == []


def test_metrics_log_has_one_row_per_epoch(completed):
    _, result = completed

    rows = run_record.epoch_rows(result.run_dir)

    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        for key in EPOCH_KEYS:
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (key, row)
        assert row["lr"] == pytest.approx(0.01)
    assert result.best_val_accuracy == pytest.approx(max(row["val_accuracy"] for row in rows))


def test_model_loads_safely_and_evaluation_is_saved(completed):
    _, result = completed
    run_dir = run_folder.require_run_dir(result.run_dir)

    model = keras.saving.load_model(run_dir / run_folder.MODEL_FILE, safe_mode=True)

    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 3)
    report = json.loads((run_dir / run_folder.EVALUATION_FILE).read_text())["val"]
    assert report["images"] == 6
    assert report["accuracy"] == pytest.approx(result.val_accuracy)
    assert sum(map(sum, report["confusion"])) == 6


def test_saved_model_reproduces_the_saved_evaluation(completed):
    # Training evaluated on cached features; the saved model on images must agree.
    _, result = completed
    saved = json.loads((run_folder.require_run_dir(result.run_dir) / run_folder.EVALUATION_FILE).read_text())["val"]

    again = evaluate_run(result.run_dir, recompute=True)["val"]

    assert again["accuracy"] == pytest.approx(saved["accuracy"])
    assert again["loss"] == pytest.approx(saved["loss"], abs=1e-4)
    assert again["confusion"] == saved["confusion"]


def test_finished_run_is_not_alive_and_frees_the_training_slot(completed):
    _, result = completed

    assert not run_locks.worker_alive(result.run_dir)
    assert run_locks.current_training_run() is None
    listed = run_history.list_runs(run_folder.require_run_dir(result.run_dir).parent)
    assert [(row["run_dir"], row["status"], row["has_model"]) for row in listed] == [(result.run_dir, "completed", True)]


def test_predict_with_the_run_model(completed, shared_tiny_dataset):
    _, result = completed
    files = [shared_tiny_dataset / "circles" / "circles_00.png", shared_tiny_dataset / "squares" / "squares_01.jpg"]

    predictions = predict_files(result.run_dir, files, top_k=2)

    assert [p.file for p in predictions] == [str(f) for f in files]
    for prediction in predictions:
        assert len(prediction.top) == 2
        assert {name for name, _ in prediction.top} <= {"circles", "squares", "stripes"}
        assert prediction.top[0][1] >= prediction.top[1][1]


# ----------------------------------------------------------------- stopping


def test_stop_requested_before_training_ends_the_run_as_stopped_without_a_model(tiny_dataset, tiny_config, tmp_path):
    config = tiny_config(tiny_dataset, epochs=2)
    run_dir = run_folder.new_run_dir(tmp_path / "runs", config.backbone, config.data)
    (run_dir / run_folder.STOP_FILE).write_text("stop")

    result = train(config, run_dir=run_dir)

    assert result.status == "stopped"
    assert result.epochs_run == 0
    assert result.val_accuracy is None
    status = run_record.read_status(run_dir)
    assert status["state"] == "stopped"
    assert "no model" in status["message"]
    assert not (run_dir / run_folder.MODEL_FILE).exists()
    assert not (run_dir / run_folder.EVALUATION_FILE).exists()


def test_stop_requested_while_training_keeps_the_best_model(tiny_dataset, tiny_config, tmp_path):
    config = tiny_config(tiny_dataset, epochs=4)
    run_dir = run_folder.new_run_dir(tmp_path / "runs", config.backbone, config.data)

    def stop_after_first_epoch(row):
        if row["epoch"] == 1:
            run_record.request_stop(run_dir)

    result = train(config, run_dir=run_dir, echo=stop_after_first_epoch)

    assert result.status == "stopped"
    assert 1 <= result.epochs_run <= 2
    status = run_record.read_status(run_dir)
    assert status["state"] == "stopped"
    assert "best model" in status["message"]
    model = keras.saving.load_model(run_dir / run_folder.MODEL_FILE, safe_mode=True)
    assert model.output_shape == (None, 3)
    assert (run_dir / run_folder.EVALUATION_FILE).is_file()


# ----------------------------------------------------------------- two phases, class weights


def test_two_phase_run_fine_tunes_at_the_lower_learning_rate(image_writer, tiny_config, tmp_path):
    data = image_writer(tmp_path / "imbalanced", {"circles": 10, "squares": 5, "stripes": 5})
    config = tiny_config(
        data, epochs=3, two_phase=True, head_epochs=1, freeze="top:1", fine_tune_learning_rate=1e-4,
        class_weights=True,
    )

    result = train(config, runs_dir=tmp_path / "runs")

    assert result.status == "completed"
    rows = run_record.epoch_rows(result.run_dir)
    assert [(row["epoch"], row["phase"]) for row in rows] == [(1, "head"), (2, "fine_tune"), (3, "fine_tune")]
    assert [row["lr"] for row in rows] == pytest.approx([0.01, 1e-4, 1e-4])
    assert "before layer Conv_1" in result.feature_cache  # the second phase cached up to its unfrozen block


# ----------------------------------------------------------------- failures


def test_unusable_data_is_refused_before_a_run_folder_is_made(image_writer, tiny_config, tmp_path):
    data = image_writer(tmp_path / "one", {"cats": 4})
    config = tiny_config(data)

    with pytest.raises(InputError, match="at least 2 classes"):
        train(config, runs_dir=tmp_path / "runs")

    assert run_history.list_runs(tmp_path / "runs") == []
    assert run_locks.current_training_run() is None


def test_data_gone_when_a_started_run_begins_fails_that_run_with_the_reason(image_writer, tiny_config, tmp_path):
    """The app's worker audits again in its own run folder; a failure there is recorded in it."""
    data = image_writer(tmp_path / "one", {"cats": 4})
    config = tiny_config(data)
    run_dir = run_folder.new_run_dir(tmp_path / "runs", config.backbone, config.data)
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())

    with pytest.raises(InputError, match="at least 2 classes"):
        train(config, run_dir=run_dir)

    (row,) = run_history.list_runs(tmp_path / "runs")
    assert row["status"] == "failed"
    assert "at least 2 classes" in row["message"]
    assert run_locks.current_training_run() is None


def test_second_run_is_refused_while_one_is_training(tiny_dataset, tiny_config, tmp_path):
    slot = run_locks.training_slot_lock()
    assert slot.try_acquire()
    slot.write_owner(str(tmp_path / "other-run"))
    try:
        with pytest.raises(RunBusyError, match="another training run is in progress"):
            train(tiny_config(tiny_dataset), runs_dir=tmp_path / "runs")
    finally:
        slot.release()
