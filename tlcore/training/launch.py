"""Start a run in its own OS process, as the app does: a fresh worker, or the spare that waits.

Training never runs inside a Streamlit script run (a thread there dies with the
script; forking after TensorFlow is loaded deadlocks). May import the run folder
(`tlcore.runs`), the training config and `tlcore.training.run`.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
import time

from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import record as run_record
from tlcore.runs.processes import start_tlcore_process
from tlcore.training.config import TrainConfig
from tlcore.training.run import resume_point


def start_training(
    config: TrainConfig, runs_dir: str | os.PathLike | None = None, resume_run: str | os.PathLike | None = None,
    resume_epochs: int = 5,
) -> pathlib.Path:
    """Start a run in its own OS process and return its folder at once.

    The app calls this: training must not run inside a Streamlit script run
    (a thread there dies with the script and leaks memory; forking after
    TensorFlow is loaded deadlocks). The new process is `python -m tlcore
    worker RUN_DIR`, in its own session so it outlives a browser reload; or,
    when one is waiting, the spare started ahead of time (`tlcore.spare`),
    which has already imported TensorFlow and serves this one run.

    With `resume_run`, that run continues for `resume_epochs` more epochs
    instead of a new run starting (`config` is then ignored).

    Raises:
        RunBusyError: another run is training; says which and when it should end.
    """
    run_history.ensure_slot_free()
    arguments = ["worker"]
    if resume_run is not None:
        run_dir = run_folder.require_run_dir(resume_run)
        resume_point(run_dir, TrainConfig.from_run(run_dir), resume_epochs)
        arguments += ["--resume-epochs", str(resume_epochs)]
    else:
        run_dir = run_folder.new_run_dir(runs_dir, config.backbone, config.data)
        run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())
    (run_dir / run_folder.STOP_FILE).unlink(missing_ok=True)
    run_record.write_status(run_dir, "queued", "starting the training process", queued_at=time.time())
    from tlcore.runs import spare

    # A spare process that has already imported TensorFlow starts the run at once.
    pid = spare.hand_over(run_dir, resume_epochs if resume_run is not None else None)
    if pid is None:
        process = start_tlcore_process(arguments + [str(run_dir)], run_dir / run_folder.LOG_FILE)
        threading.Thread(target=_reap_worker, args=(process,), daemon=True, name="tlcore-worker-reaper").start()
        spare.note_training(process)
        pid = process.pid
    (run_dir / run_folder.PID_FILE).write_text(str(pid))
    return run_dir


def _reap_worker(process: subprocess.Popen) -> None:
    """Reap the worker when it exits (a dead worker must not be a zombie that looks alive),
    then have a spare ready for the next run."""
    from tlcore.runs import spare

    process.wait()
    spare.after_run()
