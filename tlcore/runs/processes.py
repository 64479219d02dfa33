"""Start a tlcore process (a worker or a spare) detached from the server, with its output in a log.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from tlcore import paths


def start_tlcore_process(arguments: list[str], log_path: pathlib.Path) -> subprocess.Popen:
    """Start `python -m tlcore ARGUMENTS` (a worker or a spare), its output appended to `log_path`.

    In its own session, so it outlives a browser reload; with this process's
    TLCORE_HOME, so it sees the same runs. The caller must reap it.
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tlcore", *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "TLCORE_HOME": str(paths.tlcore_home())},
        )
