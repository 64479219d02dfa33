"""Locks that the operating system releases when their holder dies: a run's worker lock and the machine's training slots.

A machine has `TLCORE_TRAINING_SLOTS` training slots (default 1), each a lock
file in `$TLCORE_HOME/locks`; a run trains only while it holds one.

Whether a training process is alive is told by a lock it holds on the run's
`.worker.lock`; however the process dies (even SIGKILL), the lock goes with it,
so a dead run is never reported as running. May import `tlcore.paths` and the
run folder contract (`tlcore.runs.folder`).
"""

from __future__ import annotations

import os
import pathlib
import time

from tlcore import paths
from tlcore.errors import InputError
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


    def acquire_waiting(self, timeout_s: float, interval_s: float = 0.02) -> bool:
        """Take the lock, waiting up to `timeout_s` for its holder to let go; False if it did not."""
        deadline = time.monotonic() + timeout_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval_s)
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _pid_alive(pid) -> bool:
    """True while the process runs; an ended process nobody has reaped yet (a zombie) is not alive."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): os.kill is all there is
    return state not in ("Z", "X")


def worker_alive(run_dir: pathlib.Path) -> bool:
    """True while a training process holds this run's worker lock."""
    return FileLock(pathlib.Path(run_dir) / WORKER_LOCK_FILE).is_held_elsewhere()


SLOTS_ENV_VAR = "TLCORE_TRAINING_SLOTS"
MAX_SLOTS = 64


def slot_count() -> int:
    """How many runs may train at once on this machine: `$TLCORE_TRAINING_SLOTS`, default 1.

    Raises:
        InputError: the variable is not a whole number from 1 to 64.
    """
    text = os.environ.get(SLOTS_ENV_VAR, "").strip() or "1"
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_SLOTS:
        raise InputError(f"{SLOTS_ENV_VAR}={text!r} is not a number of training slots; set a whole number from 1 "
                         f"to {MAX_SLOTS} (1, the default, trains one run at a time), or unset it.")
    return count


def training_slot_lock(number: int = 1) -> FileLock:
    """Training slot `number` (1 = `training.lock`, the only one by default)."""
    name = "training.lock" if number == 1 else f"training-{number}.lock"
    return FileLock(paths.locks_dir() / name)


def acquire_training_slot() -> FileLock | None:
    """Take a free training slot and return its held lock, or None when every slot is taken."""
    for number in range(1, slot_count() + 1):
        lock = training_slot_lock(number)
        if lock.try_acquire():
            return lock
    return None


def training_runs() -> list[pathlib.Path]:
    """The runs holding a training slot now, slot by slot."""
    runs = []
    for number in range(1, slot_count() + 1):
        lock = training_slot_lock(number)
        if lock.is_held_elsewhere():
            try:
                owner = lock.path.read_text(encoding="utf-8").strip()
            except OSError:
                owner = ""
            if owner:
                runs.append(pathlib.Path(owner))
    return runs


def current_training_run() -> pathlib.Path | None:
    """The run holding the (first taken) training slot, if any."""
    runs = training_runs()
    return runs[0] if runs else None


def dispatch_lock() -> FileLock:
    """Held while a process decides which waiting runs start, so two never start the same run."""
    return FileLock(paths.locks_dir() / "dispatch.lock")
