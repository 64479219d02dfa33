"""Start a run in its own OS process, as the app does: now (`start_training`) or in line for a slot (`queue_training`).

Training never runs inside a Streamlit script run (a thread there dies with the
script; forking after TensorFlow is loaded deadlocks). May import the run folder
(`tlcore.runs`), the training config, `tlcore.training.run` and the classroom's quotas.
"""

from __future__ import annotations

import os
import pathlib

from tlcore import paths
from tlcore.classroom import quotas
from tlcore.runs import dispatch as run_dispatch
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import locks as run_locks
from tlcore.training.config import TrainConfig
from tlcore.training.run import resume_point


def start_training(
    config: TrainConfig, runs_dir: str | os.PathLike | None = None, resume_run: str | os.PathLike | None = None,
    resume_epochs: int = 5,
) -> pathlib.Path:
    """Start a run in its own OS process now and return its folder at once.

    Training must not run inside a Streamlit script run (a thread there dies
    with the script and leaks memory; forking after TensorFlow is loaded
    deadlocks). The new process is `python -m tlcore worker RUN_DIR`, in its
    own session so it outlives a browser reload; or, when one is waiting, the
    spare started ahead of time (`tlcore.spare`), which has already imported
    TensorFlow and serves this one run. The app uses `queue_training`, which
    waits in line instead of refusing.

    With `resume_run`, that run continues for `resume_epochs` more epochs
    instead of a new run starting (`config` is then ignored).

    Raises:
        RunBusyError: every training slot is taken (or runs wait in line for
            one); says which run trains and when it should end.
    """
    with run_dispatch.exclusive():
        run_dispatch.require_free_slot(_busy_message())
        run_dir = _prepare(config, runs_dir, resume_run, resume_epochs)
        run_dispatch.launch(run_dir, resume_epochs if resume_run is not None else None, paths.current_user())
    return run_dir


def queue_training(
    config: TrainConfig | None, runs_dir: str | os.PathLike | None = None, resume_run: str | os.PathLike | None = None,
    resume_epochs: int = 5, estimated_s: float | None = None,
) -> pathlib.Path:
    """Put a run in the machine's fair line for a training slot, and start it at once when one is free.

    Runs start in the order they were put in line, as many at a time as the
    machine has slots (`TLCORE_TRAINING_SLOTS`, default 1); each person may
    have one run waiting. The run's status is "waiting" until its turn
    (`tlcore.queue_place` says where it stands), then as for `start_training`.

    Args:
        config: the new run's settings (ignored with `resume_run`).
        runs_dir: where its folder goes (default: the current user's runs).
        resume_run: continue this stopped or finished run instead.
        resume_epochs: how many more epochs, with `resume_run`.
        estimated_s: how long the run should take (`tlcore.estimate_run(...).total_s`),
            so those behind it are told how long they wait.

    Returns:
        The run's folder.

    Raises:
        InputError: you already have a run waiting, you keep as many runs as
            you may (`TLCORE_MAX_RUNS`), or the run cannot be continued.
    """
    owner = paths.current_user()
    if resume_run is None:
        quotas.check_new_run()
    with run_dispatch.exclusive():
        run_dispatch.forget_ended()
        run_dir = _prepare(config, runs_dir, resume_run, resume_epochs, before_writing=_check_can_wait)
        try:
            run_dispatch.put_in_line(run_dir, owner, resume_epochs if resume_run is not None else None, estimated_s)
        except BaseException:
            if resume_run is None:
                import shutil

                shutil.rmtree(run_dir, ignore_errors=True)
            raise
    run_dispatch.dispatch()
    return run_dir


def _check_can_wait() -> None:
    """One waiting run per person: say so before a run folder is made."""
    from tlcore.runs import queue as run_queue

    run_queue.check_can_wait(paths.current_user())


def _prepare(config, runs_dir, resume_run, resume_epochs, before_writing=None) -> pathlib.Path:
    """The run folder to train in: the resumed run, checked, or a new one with its config.json."""
    if resume_run is not None:
        run_dir = run_folder.require_run_dir(resume_run)
        resume_point(run_dir, TrainConfig.from_run(run_dir), resume_epochs)
        if before_writing:
            before_writing()
        return run_dir
    if before_writing:
        before_writing()
    run_dir = run_folder.new_run_dir(runs_dir, config.backbone, config.data)
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())
    return run_dir


def _busy_message() -> str:
    running = run_locks.current_training_run()
    if running is not None:
        return run_history.busy_message(running)
    return ("another training is starting, or runs are waiting in line for the machine; wait for them, or put "
            "this one in line (the Train page does).")
