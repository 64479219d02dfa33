"""Start a tlcore process (a worker or a spare) detached from the server, with its output in a log.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from tlcore import paths


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
