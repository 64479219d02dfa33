"""tlcore's own processes: starting one (a worker or a spare) detached from the server, with its output
in a log; its temporary files in a folder of its own; ending a hung one.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from tlcore import paths

SCRATCH_FOLDER = "tmp"  # under $TLCORE_HOME: one folder per process that trains or loads a model


def start_tlcore_process(arguments: list[str], log_path: pathlib.Path, user: str | None = None) -> subprocess.Popen:
    """Start `python -m tlcore ARGUMENTS` (a worker or a spare), its output appended to `log_path`.

    In its own session, so it outlives a browser reload; with this machine's
    TLCORE_HOME, so it sees the same runs, and `$TLCORE_USER` set to `user`
    (removed for None), so it works in that user's space whoever starts it
    (a page of the app, or the worker of another student's run). The caller
    must reap it, or leave it to the system when the caller ends first.
    """
    environment = {**os.environ, "TLCORE_HOME": str(paths.machine_home())}
    environment.pop(paths.USER_ENV_VAR, None)
    if user is not None:
        environment[paths.USER_ENV_VAR] = paths.check_user_name(user)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tlcore", *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=environment,
        )


def end_process(pid: int, wait_s: float = 10.0) -> bool:
    """Kill process `pid` at once (SIGKILL: a stopped or deadlocked process ignores anything gentler) and wait for it to end.

    Returns:
        True when it has ended (or was already gone); False when it could not
        be killed (another user's process) or outlived `wait_s`.
    """
    import signal
    import time

    from tlcore.runs.locks import _pid_alive

    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    except ProcessLookupError:
        return True
    except OSError:
        return False
    deadline = time.monotonic() + wait_s
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


_scratch = {"folder": None, "previous": None}


def use_scratch_temp_folder() -> pathlib.Path | None:
    """Put this process's temporary files in `$TLCORE_HOME/tmp/PID`, removed when it ends (`remove_scratch_temp_folder`).

    TensorFlow's autograph writes the source of every function it converts
    (each `tf.data` map of a training) to `__autograph_generated_file*.py` in
    the temporary folder, and deletes those files only at a normal interpreter
    exit, which a tlcore process skips (`tlcore.cli.main.exit_process`), as does
    a worker that is killed. Left in the system's temporary folder, they pile
    up with every training. Here they go into the process's own folder; the
    folders of processes that ended without removing theirs (killed) are
    removed by the next process that starts.

    Returns:
        The folder, which Python's `tempfile` (and so TensorFlow) uses from
        now on; None when it cannot be made (the system's folder stays in use).
    """
    root = paths.machine_home() / SCRATCH_FOLDER
    _remove_folders_of_ended_processes(root)
    folder = root / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)  # an ended process's with this process's number
    try:
        folder.mkdir(parents=True)
    except OSError:  # a read-only or full home: temporary files are no reason to fail a command
        return None
    if _scratch["folder"] is None:
        _scratch["previous"] = tempfile.tempdir
        atexit.register(remove_scratch_temp_folder)
    _scratch["folder"] = folder
    tempfile.tempdir = str(folder)
    return folder


def remove_scratch_temp_folder() -> None:
    """Remove this process's temporary folder (`use_scratch_temp_folder`) and go back to the system's."""
    folder = _scratch["folder"]
    if folder is None:
        return
    tempfile.tempdir = _scratch["previous"]
    _scratch["folder"] = None
    shutil.rmtree(folder, ignore_errors=True)


def _remove_folders_of_ended_processes(root: pathlib.Path) -> None:
    from tlcore.runs.locks import _pid_alive

    try:
        folders = list(root.iterdir())
    except OSError:
        return
    for folder in folders:
        if folder.name.isdigit() and not _pid_alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
