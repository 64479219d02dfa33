"""Run a training: audit, build, freeze, fit (plain or on cached features), save, evaluate.

`train()` runs in the calling process: the CLI's `tlcore train`, a notebook, or
the worker process the app starts with `start_training()`. The app never trains
inside a Streamlit script run: each run is its own OS process, and its run
folder is the source of truth that pages poll.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from tlcore.errors import InputError, RunBusyError, TlcoreError, TrainingFailedError
from tlcore.runs import dispatch as run_dispatch
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import locks as run_locks
from tlcore.runs import record as run_record
from tlcore.training.config import TrainConfig
from tlcore.training.diagnosis import chance_warning


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
    resume_epochs: int | None = None,
    audit_future: Future | None = None,
    queued_by_app: bool = False,
) -> RunResult:
    """Train a classifier as described by `config`, in this process.

    Args:
        config: the run's settings.
        runs_dir: parent folder for a new run folder (default `$TLCORE_HOME/runs`).
        run_dir: an existing run folder to train in (the app's worker uses this).
        echo: called with each epoch's metrics row (the CLI prints them).
        resume_epochs: continue the stopped or interrupted run in `run_dir`
            from its best model for this many more epochs.
        audit_future: the data's audit already under way (`audit_in_background`),
            so that it could overlap the TensorFlow import.
        queued_by_app: this is the worker `start_training` queued the run
            for, so the run's "queued" status is its own, not another process's.

    Returns:
        A `RunResult`; the run folder holds the model, metrics and evaluation.

    Raises:
        InputError: bad data or options (the run's status says the same).
        RunBusyError: another run holds the machine's training slot.
        TrainingFailedError: NaN loss or out of memory, with what to change.
    """
    started = time.time()
    audit = None
    if run_dir is None:
        # Refuse a busy machine or unusable data before leaving a run folder behind.
        run_history.ensure_slot_free()
        audit = _audit_for_training(config, audit_future)
    run_dir = pathlib.Path(run_dir) if run_dir else run_folder.new_run_dir(runs_dir, config.backbone, config.data)
    resume = resume_point(run_dir, config, resume_epochs, queued_by_app) if resume_epochs else None
    if resume is not None:
        (run_dir / run_folder.STOP_FILE).unlink(missing_ok=True)
    if not (run_dir / run_folder.CONFIG_FILE).exists():
        _write_config_or_remove(run_dir, config)
    slot, worker_lock = _claim_training_slot(run_dir)
    run_record.write_status(run_dir, "running", "checking the images", pid=os.getpid(), started_at=started,
                            process_started_at=_process_started_at())
    try:
        audit = audit or _audit_for_training(config, audit_future)
        return _train_in_run_dir(config, run_dir, started, audit, echo, resume)
    except TlcoreError as error:
        run_record.write_status(run_dir, "failed", str(error), ended_at=time.time())
        raise
    except KeyboardInterrupt:
        run_record.write_status(run_dir, "stopped", "interrupted from the keyboard", ended_at=time.time())
        raise
    except Exception as error:
        message = _friendly_failure(error, config, run_dir)
        _log_traceback(run_dir)
        run_record.write_status(run_dir, "failed", message, ended_at=time.time())
        if _is_resource_failure(error):
            raise TrainingFailedError(message) from error
        raise
    finally:
        _let_go(run_dir, slot, worker_lock)


def _process_started_at() -> float:
    """When this process started using tlcore (for the time estimate's start-up part)."""
    import tlcore

    return tlcore.PROCESS_STARTED_AT


def _let_go(run_dir: pathlib.Path, slot, worker_lock) -> None:
    """The run has ended: back to float32, release its locks, and start the next run in line (not at the server's next poll).

    A stop request has been honoured (or came too late to matter), so its
    file goes too: a continued run must not stop at its first batch.
    """
    _reset_precision()
    with contextlib.suppress(OSError):  # before the locks go: a stop asked of the next training is its own
        (run_dir / run_folder.STOP_FILE).unlink(missing_ok=True)
    worker_lock.release()
    slot.release()
    run_dispatch.after_training(run_dir)


def _write_config_or_remove(run_dir: pathlib.Path, config: TrainConfig) -> None:
    """Write a new run's config.json; if that fails (a full disk), remove the folder rather than leave an orphan."""
    try:
        run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())
    except OSError:
        if not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


def _claim_training_slot(run_dir: pathlib.Path):
    """Take the machine's training slot and the run's worker lock, or mark the run failed and raise `RunBusyError`."""
    slot = run_locks.acquire_training_slot() or _wait_for_a_slot_if_dispatched(run_dir)
    if slot is None:
        running = run_locks.current_training_run()
        message = run_history.busy_message(running) if running else "another training run is in progress; try again when it ends."
        run_record.write_status(run_dir, "failed", message, ended_at=time.time())
        raise RunBusyError(message)
    worker_lock = run_locks.FileLock(run_dir / run_folder.WORKER_LOCK_FILE)
    worker_lock.try_acquire()
    slot.write_owner(str(run_dir.resolve()))
    return slot, worker_lock


SLOT_WAIT_S = 600.0


def _wait_for_a_slot_if_dispatched(run_dir: pathlib.Path):
    """A run the queue started was promised a slot; if a run started outside the queue took it, wait for it."""
    status = run_record.written_status(run_dir)
    if status.get("state") != "queued" or not status.get("dispatched_at"):
        return None
    run_record.write_status(run_dir, "queued", "waiting for the training that is using the machine to end")
    deadline = time.monotonic() + SLOT_WAIT_S
    while time.monotonic() < deadline:
        slot = run_locks.acquire_training_slot()
        if slot is not None:
            return slot
        time.sleep(0.5)
    return None


def _reset_precision() -> None:
    """Leave the process in float32, as a notebook that trains twice expects."""
    import sys as _sys

    if "keras" in _sys.modules:
        _sys.modules["keras"].mixed_precision.set_global_policy("float32")


def _is_resource_failure(error: Exception) -> bool:
    """Out of memory or disk: the user can fix it, so it is not an internal error."""
    return (
        isinstance(error, MemoryError)
        or "ResourceExhausted" in type(error).__name__
        or (isinstance(error, OSError) and getattr(error, "errno", None) == 28)
    )


def _friendly_failure(error: Exception, config: TrainConfig, run_dir: pathlib.Path) -> str:
    name = type(error).__name__
    if isinstance(error, MemoryError) or "ResourceExhausted" in name or "out of memory" in str(error).lower():
        return (
            f"ran out of memory with batch size {config.batch_size} and image size {config.resolved_image_size}; "
            "try a smaller batch size (e.g. 16) or a smaller image size (e.g. 160)."
        )
    if isinstance(error, OSError) and getattr(error, "errno", None) == 28:
        kept = ("The previous best model is intact." if (run_dir / run_folder.MODEL_FILE).is_file()
                else "No model had been saved yet, so there is none to use.")
        return f"the disk is full, so the model could not be saved; free some space. {kept}"
    return f"internal error ({name}: {str(error)[:300]}); details are in {run_folder.LOG_FILE} in the run folder."


def _log_traceback(run_dir: pathlib.Path) -> None:
    try:
        with open(run_dir / run_folder.LOG_FILE, "a", encoding="utf-8") as handle:
            handle.write(traceback.format_exc())
    except OSError:
        pass


def resume_point(run_dir: pathlib.Path, config: TrainConfig, epochs: int, queued_by_app: bool = False):
    """Check a run can be resumed and find where it left off."""
    from tlcore.training.session import ResumePoint

    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 10_000:
        raise InputError(f"resume needs a whole number of extra epochs from 1 to 10000, got {epochs!r}.")
    status = run_record.read_status(run_dir)
    queued_for_this_process = queued_by_app and status.get("state") == "queued"
    if status.get("state") in run_folder.ACTIVE_STATES and not queued_for_this_process:
        raise InputError(f"run {run_dir.name} is still {status['state']}; only a stopped, interrupted or finished run can be resumed.")
    if not (run_dir / run_folder.MODEL_FILE).is_file():
        raise InputError(f"run {run_dir.name} has no saved model to continue from; start a new run instead.")
    rows = [row for row in run_record.epoch_rows(run_dir) if row.get("val_accuracy") is not None and row.get("val_loss") is not None]
    best = max(rows, key=lambda row: (row["val_accuracy"], -row["val_loss"]), default=None)
    last_rate = next((row["lr"] for row in reversed(rows) if row.get("lr")), None)
    default_rate = config.fine_tune_learning_rate if config.two_phase else config.learning_rate
    return ResumePoint(
        epochs=epochs,
        epoch_offset=max((row["epoch"] for row in run_record.epoch_rows(run_dir)), default=0),
        learning_rate=last_rate or default_rate,
        best_key=(best["val_accuracy"], -best["val_loss"]) if best else None,
    )


def resume(
    run_dir: str | os.PathLike, epochs: int, echo=None, audit_future: Future | None = None, queued_by_app: bool = False
) -> RunResult:
    """Continue a stopped or interrupted run from its best model, in this process.

    Args:
        run_dir: the run folder.
        epochs: how many more epochs to train.

    Returns:
        The `RunResult` of the whole run (epochs counted from its start).
    """
    run_dir = run_folder.require_run_dir(run_dir)
    config = TrainConfig.from_run(run_dir)
    return train(config, run_dir=run_dir, echo=echo, resume_epochs=epochs, audit_future=audit_future,
                 queued_by_app=queued_by_app)


def _audit_for_training(config: TrainConfig, audit_future: Future | None = None):
    if audit_future is not None:
        return audit_future.result()
    from tlcore.data import audit as data_audit

    # Duplicate search is for the audit screen; training only needs the usable files.
    return data_audit.audit_dataset(config.data, config.val_split, config.seed, config.excluded_files,
                                    find_duplicates=False, relabels=config.relabels)


def audit_in_background(config: TrainConfig) -> Future:
    """Start the audit that training needs in a thread; pass the future to `train`.

    The audit needs no TensorFlow, and importing TensorFlow (about 3 s on a
    2-core laptop) keeps one core busy, so the CLI and the app's worker start
    the audit first and import TensorFlow while it runs. Its errors (bad data)
    come out of `train` as if it had audited itself.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlcore-audit")
    future = executor.submit(_audit_for_training, config)
    executor.shutdown(wait=False)
    return future


def _train_in_run_dir(
    config: TrainConfig, run_dir: pathlib.Path, started: float, audit, echo=None, resume=None
) -> RunResult:
    from tlcore.data import records
    from tlcore.training.session import TrainingSession

    run_folder.write_json_atomic(run_dir / run_folder.LABELS_FILE, audit.class_names)
    run_folder.write_json_atomic(run_dir / "audit.json", audit.to_dict(with_records=False))
    run_folder.write_json_atomic(
        run_dir / run_folder.SPLIT_FILE,
        {split: [[r.relative, r.label, r.path] for r in audit.split_records(split)] for split in records.SPLITS},
    )
    run_record.write_status(run_dir, "running", "building the model", classes=len(audit.class_names))
    session = TrainingSession(config, run_dir, audit, echo=echo, resume=resume)
    try:
        outcome = session.run()
        # A run stopped before its first epoch has no model to evaluate.
        reports = session.evaluate() if (run_dir / run_folder.MODEL_FILE).exists() else {}
    finally:
        session.cleanup()
    from tlcore.results.evaluation import write_evaluation

    if reports:
        write_evaluation(run_dir, reports)
    val_accuracy = reports.get("val", {}).get("accuracy")
    epochs = run_record.epoch_rows(run_dir)
    best = max((row["val_accuracy"] for row in epochs if row.get("val_accuracy") is not None), default=None)
    ended = time.time()
    warning = chance_warning(epochs, len(audit.class_names), config.learning_rate)
    message = f"{outcome.message} Warning: {warning}" if warning else outcome.message
    run_record.write_status(run_dir, outcome.state, message, ended_at=ended, eta_s=0,
                            val_accuracy=val_accuracy, feature_cache=outcome.feature_cache, warning=warning)
    return RunResult(
        run_dir=str(run_dir),
        status=outcome.state,
        message=message,
        epochs_run=len(epochs),
        val_accuracy=val_accuracy,
        best_val_accuracy=best,
        test_accuracy=reports.get("test", {}).get("accuracy"),
        wall_s=ended - started,
        feature_cache=outcome.feature_cache,
    )


def run_worker(run_dir: str | os.PathLike, resume_epochs: int | None = None, audit_future: Future | None = None) -> RunResult:
    """Train the run whose config.json is already in `run_dir` (the worker process)."""
    run_dir = run_folder.require_run_dir(run_dir)
    if resume_epochs:
        return resume(run_dir, resume_epochs, audit_future=audit_future, queued_by_app=True)
    config = TrainConfig.from_run(run_dir)
    return train(config, run_dir=run_dir, audit_future=audit_future)


__all__ = ["RunResult", "train", "resume", "run_worker"]
