"""Run a training: audit, build, freeze, fit (plain or on cached features), save, evaluate.

`train()` runs in the calling process: the CLI's `tlcore train`, a notebook, or
the worker process the app starts with `start_training()`. The app never trains
inside a Streamlit script run: each run is its own OS process, and its run
folder is the source of truth that pages poll.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass

from tlcore import paths, runs
from tlcore.config import TrainConfig
from tlcore.errors import InputError, RunBusyError, TlcoreError, TrainingFailedError


@dataclass
class RunResult:
    """How a run ended, as `tlcore train --json` prints it."""

    run_dir: str
    status: str
    message: str
    epochs_run: int
    val_accuracy: float | None
    best_val_accuracy: float | None
    test_accuracy: float | None
    wall_s: float
    feature_cache: str

    def to_dict(self) -> dict:
        return asdict(self)


def train(
    config: TrainConfig,
    runs_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    echo=None,
) -> RunResult:
    """Train a classifier as described by `config`, in this process.

    Args:
        config: the run's settings.
        runs_dir: parent folder for a new run folder (default `$TLCORE_HOME/runs`).
        run_dir: an existing run folder to train in (the app's worker uses this).
        echo: called with each epoch's metrics row (the CLI prints them).

    Returns:
        A `RunResult`; the run folder holds the model, metrics and evaluation.

    Raises:
        InputError: bad data or options (the run's status says the same).
        RunBusyError: another run holds the machine's training slot.
        TrainingFailedError: NaN loss or out of memory, with what to change.
    """
    started = time.time()
    run_dir = pathlib.Path(run_dir) if run_dir else runs.new_run_dir(runs_dir, config.backbone, config.data)
    if not (run_dir / runs.CONFIG_FILE).exists():
        runs.write_json_atomic(run_dir / runs.CONFIG_FILE, config.to_dict())
    slot = runs.training_slot_lock()
    if not slot.try_acquire():
        running = runs.current_training_run()
        message = runs.busy_message(running) if running else "another training run is in progress; try again when it ends."
        runs.write_status(run_dir, "failed", message, ended_at=time.time())
        raise RunBusyError(message)
    worker_lock = runs.FileLock(run_dir / runs.WORKER_LOCK_FILE)
    worker_lock.try_acquire()
    slot.write_owner(str(run_dir.resolve()))
    runs.write_status(run_dir, "running", "checking the images", pid=os.getpid(), started_at=started)
    try:
        return _train_in_run_dir(config, run_dir, started, echo)
    except TlcoreError as error:
        runs.write_status(run_dir, "failed", str(error), ended_at=time.time())
        raise
    except KeyboardInterrupt:
        runs.write_status(run_dir, "stopped", "interrupted from the keyboard", ended_at=time.time())
        raise
    except Exception as error:
        message = _friendly_failure(error, config)
        _log_traceback(run_dir)
        runs.write_status(run_dir, "failed", message, ended_at=time.time())
        if isinstance(error, MemoryError) or "ResourceExhausted" in type(error).__name__:
            raise TrainingFailedError(message) from error
        raise
    finally:
        worker_lock.release()
        slot.release()


def _friendly_failure(error: Exception, config: TrainConfig) -> str:
    name = type(error).__name__
    if isinstance(error, MemoryError) or "ResourceExhausted" in name or "out of memory" in str(error).lower():
        return (
            f"ran out of memory with batch size {config.batch_size} and image size {config.resolved_image_size}; "
            "try a smaller batch size (e.g. 16) or a smaller image size (e.g. 160)."
        )
    if isinstance(error, OSError) and getattr(error, "errno", None) == 28:
        return "the disk is full, so the model could not be saved; free some space. The previous best model is intact."
    return f"internal error ({name}: {str(error)[:300]}); details are in {runs.LOG_FILE} in the run folder."


def _log_traceback(run_dir: pathlib.Path) -> None:
    try:
        with open(run_dir / runs.LOG_FILE, "a", encoding="utf-8") as handle:
            handle.write(traceback.format_exc())
    except OSError:
        pass


def _train_in_run_dir(config: TrainConfig, run_dir: pathlib.Path, started: float, echo=None) -> RunResult:
    from tlcore import data
    from tlcore.session import TrainingSession

    audit = data.audit_dataset(config.data, config.val_split, config.seed, config.excluded_files)
    runs.write_json_atomic(run_dir / runs.LABELS_FILE, audit.class_names)
    runs.write_json_atomic(run_dir / "audit.json", {k: v for k, v in audit.to_dict().items() if k != "records"})
    runs.write_json_atomic(
        run_dir / runs.SPLIT_FILE,
        {split: [[r.relative, r.label, r.path] for r in audit.split_records(split)] for split in data.SPLITS},
    )
    runs.write_status(run_dir, "running", "building the model", classes=len(audit.class_names))
    session = TrainingSession(config, run_dir, audit, echo=echo)
    outcome = session.run()
    reports = session.evaluate()
    from tlcore.evaluation import write_evaluation

    write_evaluation(run_dir, reports)
    epochs = runs.epoch_rows(run_dir)
    best = max((row["val_accuracy"] for row in epochs if row.get("val_accuracy") is not None), default=None)
    ended = time.time()
    runs.write_status(run_dir, outcome.state, outcome.message, ended_at=ended, eta_s=0,
                      val_accuracy=reports["val"]["accuracy"], feature_cache=outcome.feature_cache)
    return RunResult(
        run_dir=str(run_dir),
        status=outcome.state,
        message=outcome.message,
        epochs_run=len(epochs),
        val_accuracy=reports["val"]["accuracy"],
        best_val_accuracy=best,
        test_accuracy=reports.get("test", {}).get("accuracy"),
        wall_s=ended - started,
        feature_cache=outcome.feature_cache,
    )


def start_training(config: TrainConfig, runs_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Start a run in its own OS process and return its folder at once.

    The app calls this: training must not run inside a Streamlit script run
    (a thread there dies with the script and leaks memory; forking after
    TensorFlow is loaded deadlocks). The new process is `python -m tlcore
    worker RUN_DIR`, in its own session so it outlives a browser reload.

    Raises:
        RunBusyError: another run is training; says which and when it should end.
    """
    runs.ensure_slot_free()
    run_dir = runs.new_run_dir(runs_dir, config.backbone, config.data)
    runs.write_json_atomic(run_dir / runs.CONFIG_FILE, config.to_dict())
    runs.write_status(run_dir, "queued", "starting the training process", queued_at=time.time())
    log = open(run_dir / runs.LOG_FILE, "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "tlcore", "worker", str(run_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "TLCORE_HOME": str(paths.tlcore_home())},
    )
    log.close()
    (run_dir / runs.PID_FILE).write_text(str(process.pid))
    # Reap the child when it exits, so a dead worker is not a zombie that looks alive.
    threading.Thread(target=process.wait, daemon=True).start()
    return run_dir


def run_worker(run_dir: str | os.PathLike) -> RunResult:
    """Train the run whose config.json is already in `run_dir` (the worker process)."""
    run_dir = runs.require_run_dir(run_dir)
    config = TrainConfig.from_dict(runs.read_json(run_dir / runs.CONFIG_FILE, {}))
    return train(config, run_dir=run_dir)


__all__ = ["RunResult", "train", "start_training", "run_worker", "InputError"]
