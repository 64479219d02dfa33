"""The runs a machine has: one summary row per run, the list (yours, or everyone's), deletion, and who holds the training slots.
"""

from __future__ import annotations

import os
import pathlib

from tlcore import paths
from tlcore.errors import DamagedRunError, InputError, RunBusyError
from tlcore.runs import queue as run_queue
from tlcore.runs.folder import ACTIVE_STATES, CONFIG_FILE, DAMAGED, MODEL_FILE, model_facts, require_run_dir, run_config
from tlcore.runs.locks import slot_count, training_runs, worker_alive
from tlcore.runs.record import end_hung_run, epoch_rows, estimate_remaining_seconds, read_status

try:
    import fcntl
except ImportError:  # Windows: fall back to checking the process id
    fcntl = None



def busy_message(run_dir: pathlib.Path) -> str:
    """Say which run holds the slot and roughly when it should finish."""
    eta = estimate_remaining_seconds(run_dir)
    when = f"; it should finish in about {format_duration(eta)}" if eta is not None else ""
    return (
        f"another training run is in progress ({run_dir.name}){when}. Wait for it to finish, "
        f"or stop it with `tlcore stop {run_dir}` (the Stop button on the Train page)."
    )


def ensure_slot_free() -> None:
    """Raise `RunBusyError` when other runs hold every training slot."""
    running = training_runs()
    if running and len(running) >= slot_count():
        raise RunBusyError(busy_message(running[0]))


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
    """One row of the run history: what ran, how it ended, how well it did.

    A run whose config.json or status.json cannot be read gets a row all the
    same, with the status "damaged" and the reason in "damaged" and "message"
    (every row has "damaged": None or that reason), so one bad run never hides
    the others.
    """
    run_dir = pathlib.Path(run_dir)
    try:
        config = run_config(run_dir)
    except DamagedRunError as error:
        return damaged_summary(run_dir, error.short)
    status = read_status(run_dir)
    if status.get("state") == DAMAGED:
        return damaged_summary(run_dir, status["message"], config)
    epochs = epoch_rows(run_dir)
    val_accuracies = [row["val_accuracy"] for row in epochs if row.get("val_accuracy") is not None]
    started, ended = _time(status.get("started_at")), _time(status.get("ended_at")) or _time(status.get("updated_at"))
    return {
        "run_dir": str(run_dir),
        "name": run_dir.name,
        "status": status.get("state"),
        "message": status.get("message", ""),
        "backbone": config.get("backbone"),
        "data": config.get("data"),
        "epochs_run": len(epochs),
        "best_val_accuracy": max(val_accuracies) if val_accuracies else None,
        "model_val_accuracy": _kept_accuracy(run_dir, val_accuracies),
        # What to show as the run's result: its best epoch while it trains, then what its saved model scores.
        "result_val_accuracy": (max(val_accuracies, default=None) if status.get("state") in ACTIVE_STATES
                                else _kept_accuracy(run_dir, val_accuracies)),
        "started_at": started,
        "duration_s": (ended - started) if started and ended else None,
        "has_model": (run_dir / MODEL_FILE).is_file(),
        "damaged": None,
    }


def _time(value) -> float | None:
    """A time from status.json, or None when it is not a number (an edited or damaged file)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def damaged_summary(run_dir: pathlib.Path, reason: str, config: dict | None = None) -> dict:
    """The history row of a run that cannot be read: its name, "damaged" and why; nothing it cannot vouch for."""
    config = config or {}
    return {
        "run_dir": str(run_dir), "name": run_dir.name, "status": DAMAGED, "message": reason,
        "backbone": config.get("backbone"), "data": config.get("data"), "epochs_run": 0,
        "best_val_accuracy": None, "model_val_accuracy": None, "result_val_accuracy": None,
        "started_at": None, "duration_s": None, "has_model": False, "damaged": reason,
    }


def _kept_accuracy(run_dir: pathlib.Path, val_accuracies: list[float]) -> float | None:
    """The validation accuracy of the model the run keeps on disk: what a user gets from it.

    The saved model's own score (`model.json`, written after each save), so a
    run killed before its best epoch was saved, or whose last save was refused,
    shows what its `model.keras` really scores; None without a saved model.
    Runs saved before `model.json` existed fall back to their best epoch.
    """
    if not (run_dir / MODEL_FILE).is_file():
        return None
    facts = model_facts(run_dir)
    if isinstance(facts.get("val_accuracy"), (int, float)) and not isinstance(facts["val_accuracy"], bool):
        return facts["val_accuracy"]
    return max(val_accuracies) if val_accuracies else None


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[dict]:
    """Summaries of every run in a runs folder, newest first."""
    root = pathlib.Path(runs_dir) if runs_dir else paths.default_runs_dir()
    if not root.is_dir():
        return []
    run_dirs = [child for child in root.iterdir() if (child / CONFIG_FILE).is_file()]
    return [run_summary(child) for child in sorted(run_dirs, key=lambda p: p.name, reverse=True)]


def everyones_runs(user: str | None = None) -> list[dict]:
    """Every run on this machine, each row with the `user` whose space holds it (None: the personal home).

    Args:
        user: only this user's runs.

    Returns:
        `list_runs` rows plus "user", newest first.
    """
    spaces = [user] if user is not None else [None, *user_spaces()]
    rows = []
    for name in spaces:
        root = paths.user_home(name) / "runs" if name is not None else paths.machine_home() / "runs"
        rows += [dict(row, user=name) for row in list_runs(root)]
    return sorted(rows, key=lambda row: row["name"], reverse=True)


def user_spaces() -> list[str]:
    """The users who have a space (a folder in `$TLCORE_HOME/users`), by name."""
    root = paths.machine_home() / paths.USERS_FOLDER
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir() if child.is_dir() and paths.USER_NAME.match(child.name))


def delete_run(run_dir: str | os.PathLike) -> None:
    """Delete a finished or waiting run's folder (a waiting one leaves the line); a running run must be stopped first.

    A hung run (`tlcore.runs.hung`) reads interrupted, so it can be deleted:
    its process is ended first.
    """
    import shutil

    path = require_run_dir(run_dir)
    if end_hung_run(path):
        run_queue.remove(path)
    entry = run_queue.entry_for(path)
    if worker_alive(path) or (entry is not None and entry.state == run_queue.STARTED):
        raise InputError(f"run {path.name} is still training; stop it first, then delete it.")
    if entry is not None:
        run_queue.remove(path)
    shutil.rmtree(path)
