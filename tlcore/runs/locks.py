"""Locks that the operating system releases when their holder dies: a run's worker lock and the machine's training slot.

Whether a training process is alive is told by a lock it holds on the run's
`.worker.lock`; however the process dies (even SIGKILL), the lock goes with it,
so a dead run is never reported as running. May import `tlcore.paths` and the
run folder contract (`tlcore.runs.folder`).
"""

from __future__ import annotations

import os
import pathlib

from tlcore import paths
from tlcore.runs.folder import WORKER_LOCK_FILE, read_json

try:
    import fcntl
except ImportError:  # Windows: fall back to checking the process id
    fcntl = None



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
