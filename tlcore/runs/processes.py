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
