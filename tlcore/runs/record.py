"""The one writer and reader of a run's live record: `status.json`, `metrics.jsonl` and the `STOP` file.

Every module that reports progress (training, callbacks, the feature pass, the
spare) writes through these functions, so the format has one owner. Stop is a
file: `request_stop` writes it, the training callback checks `stop_requested`
every batch.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import time

from tlcore.errors import DamagedRunError
from tlcore.runs import hung
from tlcore.runs.folder import (
    ACTIVE_STATES,
    DAMAGED,
    METRICS_FILE,
    MODEL_FILE,
    PID_FILE,
    QUEUED_GRACE_S,
    STATUS_FILE,
    STOP_FILE,
    read_run_file,
    require_run_dir,
    write_json_atomic,
)
from tlcore.runs.locks import _pid_alive, worker_alive
from tlcore.runs.processes import end_process
from tlcore.runs.queue import entry_for

try:
    import fcntl
except ImportError:  # Windows: fall back to checking the process id
    fcntl = None



def write_status(run_dir: pathlib.Path, state: str, message: str = "", **fields) -> dict:
    """Replace status.json, keeping earlier fields that are not overridden."""
    run_dir = pathlib.Path(run_dir)
    status = written_status(run_dir)  # a damaged status.json is replaced by this one
    status.update(fields)
    status.update({"state": state, "message": message, "updated_at": time.time()})
    try:
        write_json_atomic(run_dir / STATUS_FILE, status)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        _overwrite_in_place(run_dir / STATUS_FILE, status)
    return status


def _overwrite_in_place(path: pathlib.Path, status: dict) -> None:
    """On a full disk, rewrite status.json over its own blocks: the state must not stay "running" or "completed".

    Not atomic (a reader may see a torn file for an instant and then keeps the
    last good status), but a full disk leaves no room for a second copy.
    """
    text = json.dumps({key: status[key] for key in ("state", "message", "updated_at", "ended_at") if key in status},
                      ensure_ascii=True, default=str)
    with open(path, "r+", encoding="utf-8") as handle:
        handle.seek(0)
        handle.write(text)
        handle.truncate()


def written_status(run_dir: str | os.PathLike) -> dict:
    """status.json exactly as the training process last wrote it ({} when missing or damaged); `read_status` also checks liveness."""
    try:
        return dict(read_run_file(run_dir, STATUS_FILE, dict, {}))
    except DamagedRunError:
        return {}


def read_status(run_dir: str | os.PathLike) -> dict:
    """The run's status, with a dead process reported as `interrupted`.

    A run whose status says running but whose process no longer holds its lock
    was killed or crashed; it is reported as interrupted, with its best model
    (if any) still usable; so is a running one whose process has made no
    progress for far longer than it should (`tlcore.runs.hung`), until the
    dispatcher or a Stop ends it (`end_hung_run`). A waiting run is waiting
    while the line (`tlcore.runs.queue`) has it, however long that takes. A
    status.json that cannot be read gives the state `damaged`, with the reason
    as its message.
    """
    run_dir = pathlib.Path(run_dir)
    try:
        status = read_run_file(run_dir, STATUS_FILE, dict, None)
    except DamagedRunError as error:
        return {"state": DAMAGED, "message": error.short}
    if status is None:
        return {"state": "unknown", "message": "this run has no status.json yet"}
    if status.get("state") == "waiting" and entry_for(run_dir) is None:
        status = dict(status, state="interrupted",
                      message="it was waiting in line, but the line no longer has it; start it again.")
    elif status.get("state") in ACTIVE_STATES and not _active_run_alive(run_dir, status):
        has_model = (run_dir / MODEL_FILE).is_file()
        status = dict(status)
        status["state"] = "interrupted"
        status["message"] = (
            "the training process ended unexpectedly (it was killed or crashed)"
            + ("; the best model so far is kept and the run can be resumed." if has_model else ".")
        )
    elif hung.is_hung(run_dir, status):
        status = dict(status, state="interrupted",
                      message=hung.hung_message(hung.silent_for_s(run_dir, status), (run_dir / MODEL_FILE).is_file(),
                                                ended=False))
    return status


def end_hung_run(run_dir: str | os.PathLike) -> bool:
    """If the run's process is alive but hung (`tlcore.runs.hung`), kill it and record the run as interrupted.

    The best model on disk is kept (it is replaced atomically, so a kill never
    leaves half of one). Its locks go with the process, so its training slot is
    free for the next run in line when this returns True.

    Returns:
        True when a hung process was ended now.
    """
    run_dir = pathlib.Path(run_dir)
    status = written_status(run_dir)
    if not hung.is_hung(run_dir, status) or not worker_alive(run_dir):
        return False
    silent_s = hung.silent_for_s(run_dir, status)
    # The pid is the one the process wrote after taking the run's worker lock, which it still holds.
    if not end_process(status.get("pid")):
        return False
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    write_status(run_dir, "interrupted", hung.hung_message(silent_s, (run_dir / MODEL_FILE).is_file()),
                 ended_at=time.time(), eta_s=0)
    return True


def append_metrics(run_dir: pathlib.Path, row: dict) -> None:
    """Append one JSON line; a single write so a crash cannot split a line."""
    line = json.dumps(row, ensure_ascii=False, default=float) + "\n"
    with open(pathlib.Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """Every valid line of metrics.jsonl, in order.

    A line that is not a UTF-8 JSON object (a torn last line, bytes appended
    by hand or by a failing disk) is skipped: the rest of the run reads as before.
    """
    rows = []
    try:
        with open(pathlib.Path(run_dir) / METRICS_FILE, "rb") as handle:
            for line in handle:
                try:
                    row = json.loads(line.decode("utf-8"))
                except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
                    continue
                if isinstance(row, dict):
                    rows.append(row)
    except OSError:
        pass
    return rows


# The numbers an epoch row carries; a row where one of them is not a number is skipped with the damaged lines.
_EPOCH_NUMBERS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_s")


def epoch_rows(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of finished epochs, each with a whole-number "epoch" and numbers (or nothing) for its scores."""
    return [row for row in read_metrics(run_dir) if row.get("type") == "epoch" and _usable_epoch(row)]


def _usable_epoch(row: dict) -> bool:
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    epoch = row.get("epoch")
    return (number(epoch) and float(epoch).is_integer()
            and all(row.get(name) is None or number(row[name]) for name in _EPOCH_NUMBERS))


def request_stop(run_dir: str | os.PathLike) -> None:
    """Ask a run to stop; its training callback sees the file at the next batch.

    A hung run (`tlcore.runs.hung`) would never see it: its process is ended
    at once instead, and the run reads interrupted.
    """
    path = require_run_dir(run_dir)
    if end_hung_run(path):
        return
    (path / STOP_FILE).write_text(str(time.time()))


def stop_requested(run_dir: pathlib.Path) -> bool:
    return os.path.exists(os.path.join(run_dir, STOP_FILE))


def _active_run_alive(run_dir: pathlib.Path, status: dict) -> bool:
    """A queued run is alive while its starting process is; a running one while it holds its lock."""
    if status.get("state") == "waiting":
        return True  # in line (checked by the caller)
    if worker_alive(run_dir):
        return True
    if status.get("state") != "queued":
        return False
    try:
        pid = int((run_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        started = status.get("dispatched_at") or status.get("queued_at") or 0  # when its process was started
        return time.time() - float(started) < QUEUED_GRACE_S
    return _pid_alive(pid)


def estimate_remaining_seconds(run_dir: pathlib.Path) -> float | None:
    """Seconds left at the current pace, or None before the first progress."""
    return written_status(run_dir).get("eta_s")
