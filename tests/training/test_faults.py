"""Faults leave every run readable: stop, SIGKILL, a second run, NaN, out of memory, full disk, resume.

The process-level cases use real subprocesses (`python -m tlcore ...`), as the
app does; the rest run in-process with one failure injected.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import wait_for

from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import record as run_record

LONG_TRAINING = [
    "--weights", "none", "--image-size", "32", "--backbone", "mobilenet_025", "--freeze", "none",
    "--feature-cache", "off", "--batch-size", "2", "--epochs", "400", "--patience", "0",
]


def start_cli_training(data: pathlib.Path, runs_dir: pathlib.Path) -> subprocess.Popen:
    env = {**os.environ, "TLCORE_SAVE_INTERVAL_S": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "tlcore", "train", str(data), "--runs-dir", str(runs_dir), "--json", *LONG_TRAINING],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def the_run_dir(runs_dir: pathlib.Path) -> pathlib.Path:
    found = [child for child in runs_dir.iterdir() if (child / run_folder.CONFIG_FILE).exists()] if runs_dir.exists() else []
    return found[0] if len(found) == 1 else None


def epochs_logged(run_dir: pathlib.Path) -> int:
    return len(run_record.epoch_rows(run_dir))


def assert_metrics_file_valid(run_dir: pathlib.Path) -> None:
    lines = (run_dir / run_folder.METRICS_FILE).read_text(encoding="utf-8").splitlines()
    complete = lines if (run_dir / run_folder.METRICS_FILE).read_text(encoding="utf-8").endswith("\n") else lines[:-1]
    for line in complete:
        assert isinstance(json.loads(line), dict)


def assert_model_loads(run_dir: pathlib.Path) -> None:
    from tlcore.results.prediction import load_run_model

    model, labels = load_run_model(run_dir)
    assert model.output_shape[-1] == len(labels)


@pytest.fixture
def running_training(tiny_dataset, tmp_path):
    """A long CLI training in its own process, once it has logged two epochs and saved a model."""
    runs_dir = tmp_path / "runs"
    process = start_cli_training(tiny_dataset, runs_dir)
    try:
        run_dir = wait_for(lambda: the_run_dir(runs_dir), what="the run folder")
        wait_for(lambda: epochs_logged(run_dir) >= 2 and (run_dir / run_folder.MODEL_FILE).exists(), what="two epochs")
        yield process, run_dir
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_stop_mid_training_keeps_best_model_and_metrics(running_training):
    process, run_dir = running_training
    assert run_record.read_status(run_dir)["state"] == "running"
    stop = subprocess.run([sys.executable, "-m", "tlcore", "stop", str(run_dir)], capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["status"] == "stopped"
    assert 2 <= result["epochs_run"] < 400
    assert run_record.read_status(run_dir)["state"] == "stopped"
    assert_metrics_file_valid(run_dir)
    assert_model_loads(run_dir)
    assert (run_dir / run_folder.EVALUATION_FILE).exists()


def test_sigkill_reads_as_interrupted_and_can_resume(running_training):
    process, run_dir = running_training
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    status = run_record.read_status(run_dir)
    assert status["state"] == "interrupted"
    assert "resumed" in status["message"]
    [summary] = run_history.list_runs(run_dir.parent)
    assert summary["status"] == "interrupted"
    # The listing shows what the kept model scores, not a later epoch that was never saved.
    assert summary["result_val_accuracy"] == run_folder.model_facts(run_dir)["val_accuracy"] is not None
    assert_metrics_file_valid(run_dir)
    assert_model_loads(run_dir)
    before = epochs_logged(run_dir)

    resumed = subprocess.run(
        [sys.executable, "-m", "tlcore", "resume", str(run_dir), "--epochs", "2", "--json"],
        capture_output=True, text=True, timeout=180,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed"
    epochs = [row["epoch"] for row in run_record.epoch_rows(run_dir)]
    assert epochs[-1] == before + 2, "resumed epochs continue the numbering"
    assert run_record.read_status(run_dir)["state"] == "completed"


def test_second_run_is_refused_while_one_trains(running_training, tiny_dataset, tmp_path):
    from tlcore.errors import RunBusyError
    from tlcore.training.launch import start_training

    _, run_dir = running_training
    from conftest import make_tiny_config

    with pytest.raises(RunBusyError) as caught:
        start_training(make_tiny_config(tiny_dataset), runs_dir=tmp_path / "other")
    assert run_dir.name in str(caught.value)
    second = subprocess.run(
        [sys.executable, "-m", "tlcore", "train", str(tiny_dataset), "--runs-dir", str(tmp_path / "other"), *LONG_TRAINING],
        capture_output=True, text=True, timeout=120,
    )
    assert second.returncode == 2
    error_lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and error_lines[0].startswith("error: another training run is in progress")
    assert "Traceback" not in second.stderr


def test_resume_refuses_a_running_run(running_training):
    _, run_dir = running_training
    resumed = subprocess.run([sys.executable, "-m", "tlcore", "resume", str(run_dir)], capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 2
    assert resumed.stderr.startswith("error: run") and "still running" in resumed.stderr


def test_nan_loss_fails_with_advice_and_keeps_best(tiny_dataset, tiny_config, tmp_path, monkeypatch):
    import keras

    from tlcore.training import session
    from tlcore.training.run import train

    calls = {"epochs": 0}

    class NanAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            calls["epochs"] += 1
            for weight in self.model.trainable_weights:
                weight.assign(keras.ops.full(weight.shape, float("nan")))

    original = session.TrainingSession._callbacks
    monkeypatch.setattr(session.TrainingSession, "_callbacks", lambda self, *a: original(self, *a) + [NanAfterFirstEpoch()])
    result = train(tiny_config(tiny_dataset, epochs=5), runs_dir=tmp_path / "runs")
    assert result.status == "failed"
    assert "NaN" in result.message and "learning rate" in result.message
    assert run_record.read_status(result.run_dir)["state"] == "failed"
    assert calls["epochs"] < 5
    assert_model_loads(pathlib.Path(result.run_dir))


def test_out_of_memory_suggests_smaller_batch(tiny_dataset, tiny_config, tmp_path, monkeypatch):
    from tlcore.errors import TrainingFailedError
    from tlcore.training import session
    from tlcore.training.run import train

    def run_out_of_memory(self):
        raise MemoryError()

    monkeypatch.setattr(session.TrainingSession, "run", run_out_of_memory)
    with pytest.raises(TrainingFailedError) as caught:
        train(tiny_config(tiny_dataset), runs_dir=tmp_path / "runs")
    assert "smaller batch size" in str(caught.value)
    [run_dir] = list((tmp_path / "runs").iterdir())
    status = run_record.read_status(run_dir)
    assert status["state"] == "failed" and "smaller batch size" in status["message"]


def test_disk_full_while_saving_keeps_previous_model(tiny_dataset, tiny_config, tmp_path, monkeypatch):
    from tlcore.errors import TrainingFailedError
    from tlcore.training import callbacks
    from tlcore.training.run import train

    monkeypatch.setattr(callbacks, "SAVE_INTERVAL_S", 0.0)
    saves = {"count": 0}
    original = callbacks.save_model_atomic

    def save_then_fill_disk(model, path):
        saves["count"] += 1
        if saves["count"] == 1:
            return original(model, path)
        partial = pathlib.Path(path).with_name(".model.partial.keras")
        partial.write_bytes(b"half a model")
        partial.unlink()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(callbacks, "save_model_atomic", save_then_fill_disk)
    config = tiny_config(tiny_dataset, epochs=6)
    with pytest.raises(TrainingFailedError):
        train(config, runs_dir=tmp_path / "runs")
    [run_dir] = list((tmp_path / "runs").iterdir())
    status = run_record.read_status(run_dir)
    assert status["state"] == "failed"
    assert "disk is full" in status["message"]
    assert "previous best model is intact" in status["message"]
    assert_model_loads(run_dir)
    assert not list(run_dir.glob(".*.partial.keras"))


def test_disk_full_at_the_first_save_does_not_claim_a_model_is_kept(tiny_dataset, tiny_config, tmp_path, monkeypatch):
    from tlcore.errors import TrainingFailedError
    from tlcore.training import callbacks
    from tlcore.training.run import train

    def disk_full(model, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(callbacks, "save_model_atomic", disk_full)
    with pytest.raises(TrainingFailedError, match="disk is full"):
        train(tiny_config(tiny_dataset, epochs=1), runs_dir=tmp_path / "runs")
    [run_dir] = list((tmp_path / "runs").iterdir())
    message = run_record.read_status(run_dir)["message"]
    assert "intact" not in message and "No model had been saved yet" in message
    assert not (run_dir / run_folder.MODEL_FILE).exists()


def test_save_model_atomic_removes_partial_file_on_failure(tmp_path):
    from tlcore.training.callbacks import save_model_atomic

    class FailingModel:
        def save(self, path):
            pathlib.Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "model.keras"
    target.write_bytes(b"previous model")
    with pytest.raises(OSError):
        save_model_atomic(FailingModel(), target)
    assert target.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


# ----------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs of its own, so a test can fill it; skipped where this machine cannot mount one."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI and these machines run as root)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the full-disk tests need one")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill_disk(mount_point: pathlib.Path, leave_bytes: int) -> None:
    """Fill the disk until at most `leave_bytes` are free."""
    free = shutil.disk_usage(mount_point).free
    with open(mount_point / "filler", "wb") as handle:
        try:
            handle.write(b"\0" * max(0, free - leave_bytes))
        except OSError:
            pass


def test_a_full_disk_is_a_clear_failure_with_nothing_left_behind(tiny_dataset, small_disk):
    runs_dir = small_disk / "runs"
    runs_dir.mkdir()
    fill_disk(small_disk, leave_bytes=0)

    done = subprocess.run(
        [sys.executable, "-m", "tlcore", "train", str(tiny_dataset), "--runs-dir", str(runs_dir), "--json",
         "--weights", "none", "--image-size", "32", "--backbone", "mobilenet_025", "--epochs", "2"],
        capture_output=True, text=True, timeout=300,
    )

    assert done.returncode == 1
    assert "disk is full" in done.stderr and "please report" not in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "error"
    assert not list(small_disk.rglob("*.tmp")) and not list(small_disk.rglob(".*.tmp"))
    for run_dir in runs_dir.iterdir():  # a folder left must say how the run ended, never "completed"
        assert run_record.read_status(run_dir)["state"] != "completed"


def test_features_that_would_not_fit_on_the_disk_are_not_memory_mapped(shared_tiny_dataset, tiny_config, small_disk,
                                                                      monkeypatch):
    from tlcore.training import feature_cache
    from tlcore.training.run import train

    monkeypatch.setattr(feature_cache, "MEMORY_BUDGET_BYTES", 1)  # every feature would go to a memory-mapped file
    fill_disk(small_disk, leave_bytes=6 * 1024**2)  # room for the model, none for the safety margin

    result = train(tiny_config(shared_tiny_dataset, epochs=2), runs_dir=small_disk / "runs")

    assert result.status == "completed"
    assert result.feature_cache.startswith("off (features would need") and "free" in result.feature_cache
