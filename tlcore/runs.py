"""The run directory: the single source of truth about one training run.

A run lives in its own folder, written by the training process and read by
anyone (the CLI, the app's pages, a notebook):

- `config.json`     the `TrainConfig`
- `status.json`     state and message, replaced atomically (never half-written)
- `metrics.jsonl`   append-only; one JSON object per line (epoch and progress rows)
- `labels.json`     class names in output order
- `split.json`      which files were used for training, validation and test
- `model.keras`     the best model so far, replaced atomically
- `evaluation.json` metrics on the validation (and test) images
- `STOP`            present when a stop was requested

Whether the training process is alive is told by a lock it holds on
`.worker.lock`: the operating system releases the lock when the process dies,
however it dies (even SIGKILL), so a dead run is never reported as running.
"""

from __future__ import annotations

import datetime as _datetime
import json
import os
import pathlib
import re
import threading
import time

from tlcore import paths
from tlcore.errors import InputError, RunBusyError

try:
    import fcntl
except ImportError:  # Windows: fall back to checking the process id
    fcntl = None

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LABELS_FILE = "labels.json"
SPLIT_FILE = "split.json"
MODEL_FILE = "model.keras"
EVALUATION_FILE = "evaluation.json"
STOP_FILE = "STOP"
WORKER_LOCK_FILE = ".worker.lock"
LOG_FILE = "worker.log"
PID_FILE = "worker.pid"
QUEUED_GRACE_S = 60

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("completed", "stopped", "failed", "interrupted")


def write_json_atomic(path: pathlib.Path, data) -> None:
    """Write JSON so readers see the old file or the new one, never a mix."""
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a file name that is not valid UTF-8: \u escapes load back the same
        text = json.dumps(data, indent=2, ensure_ascii=True, default=str)
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_json(path: pathlib.Path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return slug[:40] or "data"


def new_run_dir(runs_dir: str | os.PathLike | None, backbone: str, data: str) -> pathlib.Path:
    """Create a fresh, uniquely named run folder like `20261122-143005-mobilenetv2_035-flowers`."""
    root = pathlib.Path(runs_dir) if runs_dir else paths.default_runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    stamp = _datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{backbone}-{_slug(pathlib.Path(data).stem)}"
    for suffix in [""] + [f"-{n}" for n in range(2, 1000)]:
        candidate = root / (base + suffix)
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise InputError(f"cannot create a new run folder in {str(root)!r}; too many runs started this second.")


def require_run_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """Check that a path is a run folder, with a helpful message if not."""
    path = pathlib.Path(run_dir).expanduser()
    if not (path / CONFIG_FILE).is_file():
        raise InputError(
            f"{str(run_dir)!r} is not a tlcore run folder (no {CONFIG_FILE} in it); "
            "`tlcore runs` lists the runs there are."
        )
    return path


# ----------------------------------------------------------------- status


def write_status(run_dir: pathlib.Path, state: str, message: str = "", **fields) -> dict:
    """Replace status.json, keeping earlier fields that are not overridden."""
    run_dir = pathlib.Path(run_dir)
    status = read_json(run_dir / STATUS_FILE, {}) or {}
    status.update(fields)
    status.update({"state": state, "message": message, "updated_at": time.time()})
    write_json_atomic(run_dir / STATUS_FILE, status)
    return status


def read_status(run_dir: str | os.PathLike) -> dict:
    """The run's status, with a dead process reported as `interrupted`.

    A run whose status says running but whose process no longer holds its lock
    was killed or crashed; it is reported as interrupted, with its best model
    (if any) still usable.
    """
    run_dir = pathlib.Path(run_dir)
    status = read_json(run_dir / STATUS_FILE, None)
    if status is None:
        return {"state": "unknown", "message": "this run has no readable status.json"}
    if status.get("state") in ACTIVE_STATES and not _active_run_alive(run_dir, status):
        has_model = (run_dir / MODEL_FILE).is_file()
        status = dict(status)
        status["state"] = "interrupted"
        status["message"] = (
            "the training process ended unexpectedly (it was killed or crashed)"
            + ("; the best model so far is kept and the run can be resumed." if has_model else ".")
        )
    return status


# ----------------------------------------------------------------- metrics


def append_metrics(run_dir: pathlib.Path, row: dict) -> None:
    """Append one JSON line; a single write so a crash cannot split a line."""
    line = json.dumps(row, ensure_ascii=False, default=float) + "\n"
    with open(pathlib.Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """Every valid line of metrics.jsonl; a torn last line is ignored."""
    rows = []
    try:
        with open(pathlib.Path(run_dir) / METRICS_FILE, encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
    except OSError:
        pass
    return rows


def epoch_rows(run_dir: str | os.PathLike) -> list[dict]:
    return [row for row in read_metrics(run_dir) if row.get("type") == "epoch"]


# ----------------------------------------------------------------- stop


def request_stop(run_dir: str | os.PathLike) -> None:
    """Ask a run to stop; its training callback sees the file at the next batch."""
    path = require_run_dir(run_dir)
    (path / STOP_FILE).write_text(str(time.time()))


def stop_requested(run_dir: pathlib.Path) -> bool:
    return os.path.exists(os.path.join(run_dir, STOP_FILE))


# ----------------------------------------------------------------- liveness


class FileLock:
    """An exclusive, non-blocking lock on a file, released when its holder dies."""

    def __init__(self, path: pathlib.Path):
        self.path = pathlib.Path(path)
        self._handle = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
        self._handle = handle
        return True

    def write_owner(self, text: str) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.write(text)
            self._handle.flush()

    def release(self) -> None:
        if self._handle is not None:
            if fcntl is not None:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def is_held_elsewhere(self) -> bool:
        """True when another process holds the lock right now."""
        if not self.path.exists():
            return False
        if fcntl is None:
            return _pid_alive(read_json(self.path.with_suffix(".pid"), None))
        with open(self.path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _active_run_alive(run_dir: pathlib.Path, status: dict) -> bool:
    """A queued run is alive while its starting process is; a running one while it holds its lock."""
    if worker_alive(run_dir):
        return True
    if status.get("state") != "queued":
        return False
    try:
        pid = int((run_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return time.time() - float(status.get("queued_at") or 0) < QUEUED_GRACE_S
    return _pid_alive(pid)


def worker_alive(run_dir: pathlib.Path) -> bool:
    """True while a training process holds this run's worker lock."""
    return FileLock(pathlib.Path(run_dir) / WORKER_LOCK_FILE).is_held_elsewhere()


def training_slot_lock() -> FileLock:
    """The machine-wide lock that lets only one run train at a time."""
    return FileLock(paths.locks_dir() / "training.lock")


def current_training_run() -> pathlib.Path | None:
    """The run holding the training slot, if any."""
    lock = training_slot_lock()
    if not lock.is_held_elsewhere():
        return None
    owner = lock.path.read_text(encoding="utf-8").strip()
    return pathlib.Path(owner) if owner else None


def busy_message(run_dir: pathlib.Path) -> str:
    """Say which run holds the slot and roughly when it should finish."""
    eta = estimate_remaining_seconds(run_dir)
    when = f"; it should finish in about {format_duration(eta)}" if eta is not None else ""
    return (
        f"another training run is in progress ({run_dir.name}){when}. Wait for it to finish, "
        f"or stop it with `tlcore stop {run_dir}` (the Stop button on the Train page)."
    )


def ensure_slot_free() -> None:
    """Raise `RunBusyError` when another run holds the training slot."""
    running = current_training_run()
    if running is not None:
        raise RunBusyError(busy_message(running))


# ----------------------------------------------------------------- summaries


def estimate_remaining_seconds(run_dir: pathlib.Path) -> float | None:
    """Seconds left at the current pace, or None before the first progress."""
    status = read_json(pathlib.Path(run_dir) / STATUS_FILE, {}) or {}
    return status.get("eta_s")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def run_summary(run_dir: str | os.PathLike) -> dict:
    """One row of the run history: what ran, how it ended, how well it did."""
    run_dir = pathlib.Path(run_dir)
    config = read_json(run_dir / CONFIG_FILE, {}) or {}
    status = read_status(run_dir)
    epochs = epoch_rows(run_dir)
    val_accuracies = [row["val_accuracy"] for row in epochs if row.get("val_accuracy") is not None]
    started, ended = status.get("started_at"), status.get("ended_at") or status.get("updated_at")
    return {
        "run_dir": str(run_dir),
        "name": run_dir.name,
        "status": status.get("state"),
        "message": status.get("message", ""),
        "backbone": config.get("backbone"),
        "data": config.get("data"),
        "epochs_run": len(epochs),
        "best_val_accuracy": max(val_accuracies) if val_accuracies else None,
        "started_at": started,
        "duration_s": (ended - started) if started and ended else None,
        "has_model": (run_dir / MODEL_FILE).is_file(),
    }


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[dict]:
    """Summaries of every run in a runs folder, newest first."""
    root = pathlib.Path(runs_dir) if runs_dir else paths.default_runs_dir()
    if not root.is_dir():
        return []
    run_dirs = [child for child in root.iterdir() if (child / CONFIG_FILE).is_file()]
    return [run_summary(child) for child in sorted(run_dirs, key=lambda p: p.name, reverse=True)]


def delete_run(run_dir: str | os.PathLike) -> None:
    """Delete a finished run's folder; a running run must be stopped first."""
    import shutil

    path = require_run_dir(run_dir)
    if worker_alive(path):
        raise InputError(f"run {path.name} is still training; stop it first, then delete it.")
    shutil.rmtree(path)
