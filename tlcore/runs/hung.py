"""When a training process counts as hung: alive, but silent for far longer than its slowest step.

A worker stopped with SIGSTOP, deadlocked, or stuck on a dead disk still holds
its locks, so by the locks alone it is training and the line behind it waits
for ever. What a training writes is its progress: status.json (every half
second while batches run, at each epoch's end, through the feature pass) and
metrics.jsonl. A running run whose last progress is older than
`silence_limit_s` is hung: `tlcore.runs.record` reports it as interrupted and
ends its process, and the dispatcher then starts the next run in line.

The limit is generous: `$TLCORE_HUNG_AFTER_S` seconds (default 10 minutes),
or `SLOWEST_EPOCH_FACTOR` times the run's slowest epoch so far when that is
longer (an epoch's validation pass writes nothing until the epoch ends, and
tracing, evaluating and saving are shorter than an epoch).

Pure decisions on what the run folder says; may import the run folder contract
and `tlcore.errors`.
"""

from __future__ import annotations

import os
import pathlib
import time

from tlcore.errors import InputError
from tlcore.runs.folder import METRICS_FILE, STATUS_FILE

HUNG_AFTER_ENV_VAR = "TLCORE_HUNG_AFTER_S"
DEFAULT_HUNG_AFTER_S = 600.0
SLOWEST_EPOCH_FACTOR = 3.0


def configured_limit_s() -> float:
    """`$TLCORE_HUNG_AFTER_S`, or 10 minutes when unset.

    Raises:
        InputError: the variable is not a positive number of seconds.
    """
    text = os.environ.get(HUNG_AFTER_ENV_VAR, "").strip()
    if not text:
        return DEFAULT_HUNG_AFTER_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise InputError(f"{HUNG_AFTER_ENV_VAR}={text!r} is not a number of seconds; set how long a training may "
                         f"make no progress before it counts as hung (e.g. 600, the default), or unset it.")
    return seconds


def silence_limit_s(status: dict) -> float:
    """How long this run may write nothing before it counts as hung."""
    slowest = status.get("slowest_epoch_s")
    slowest = float(slowest) if isinstance(slowest, (int, float)) and not isinstance(slowest, bool) else 0.0
    return max(configured_limit_s(), SLOWEST_EPOCH_FACTOR * slowest)


def last_progress(run_dir: pathlib.Path, status: dict) -> float:
    """When the run last wrote anything (its status's time, or either file's modification time)."""
    times = [status.get("updated_at")]
    for name in (STATUS_FILE, METRICS_FILE):
        try:
            times.append(os.stat(pathlib.Path(run_dir) / name).st_mtime)
        except OSError:
            pass
    return max((float(value) for value in times if isinstance(value, (int, float)) and not isinstance(value, bool)),
               default=0.0)


def silent_for_s(run_dir: pathlib.Path, status: dict) -> float:
    """Seconds since the run last wrote anything."""
    return max(0.0, time.time() - last_progress(run_dir, status))


def is_hung(run_dir: pathlib.Path, status: dict) -> bool:
    """A running run (its process alive: the caller checks) that has been silent past its limit."""
    return status.get("state") == "running" and silent_for_s(run_dir, status) > silence_limit_s(status)


def hung_message(silent_s: float, has_model: bool, ended: bool = True) -> str:
    """What a hung run reads, in words: "interrupted (no progress for N min): ...".

    Args:
        ended: its process has been ended; else it is ended at the line's next
            check (the server's, a Stop, a delete).
    """
    what = "so it was ended" if ended else "so it is ended at the next check"
    return (
        f"interrupted (no progress for {_duration(silent_s)}): the training process stopped responding, {what}"
        + ("; the best model so far is kept and the run can be resumed." if has_model else ".")
    )


def _duration(seconds: float) -> str:
    return f"{round(seconds / 60)} min" if seconds >= 90 else f"{max(1, round(seconds))} s"
