"""A training process started ahead of time, so that the app's next run skips the start-up.

Every run the app starts is its own OS process (`python -m tlcore worker
RUN_DIR`), and such a process spends its first two or three seconds on a 2-core
laptop importing TensorFlow, before it looks at a single picture. A spare is
that process started early: it imports TensorFlow, then waits. When the user
clicks Train, `start_training` hands the run folder to the spare instead of
starting a new process, and the run begins at once. A spare serves one run and
then ends like any worker. The next spare starts once that run's process has
ended, so its import never takes the CPU from a training.

The hand-over goes through files in the spare's folder. The app writes
`claim.json` atomically; the spare's watcher thread, which runs from the
spare's first instant, even during the import, renames it to `claimed.json`
(the acknowledgement). If the rename does not come in time (the spare died),
the app takes the claim back by renaming it itself. Exactly one of the two
renames succeeds, so a run is never started twice and never lost.

A spare ends by itself when the process that started it ends, or after
`IDLE_LIMIT_S` unused. `TLCORE_SPARE=0` turns spares off (the test suite does,
but for the tests of this module and the browser journey).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tlcore import paths
from tlcore.runs import folder as run_folder
from tlcore.runs import locks as run_locks
from tlcore.runs import record as run_record

CLAIM_FILE = "claim.json"
CLAIMED_FILE = "claimed.json"
WITHDRAWN_FILE = "withdrawn.json"
READY_FILE = "ready"
LOG_FILE = "spare.log"
IDLE_LIMIT_S = 30 * 60
ACKNOWLEDGE_TIMEOUT_S = 1.0
# While it imports TensorFlow, a spare's watcher may not get the interpreter for
# a while; waiting for it is still faster than a new process importing from zero.
ACKNOWLEDGE_TIMEOUT_IMPORTING_S = 5.0
WATCH_INTERVAL_S = 0.02


@dataclass
class Spare:
    """A waiting training process, as the process that started it sees it."""

    process: subprocess.Popen
    directory: pathlib.Path
    settings: tuple  # the environment it started with; it serves only runs with the same

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def ready(self) -> bool:
        """TensorFlow is imported: a run handed over now starts at once."""
        return (self.directory / READY_FILE).exists()

    def end(self) -> None:
        if self.alive:
            self.process.terminate()


_spare: Spare | None = None  # this process's spare; Streamlit keeps modules between script runs
_training: list[subprocess.Popen] = []  # the processes this one started runs in (workers, served spares)
_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get("TLCORE_SPARE", "1").strip() != "0"


def _settings() -> tuple:
    """What a training process takes from its start: the interpreter and the whole environment.

    (KERAS_HOME, KERAS_BACKEND, TLCORE_HOME, CUDA_VISIBLE_DEVICES, TLCORE_XLA, ...:
    if any changed since the spare started, it would train differently from a
    worker started now, so it is replaced.)
    """
    return (sys.executable, str(paths.machine_home()), tuple(sorted(os.environ.items())))


def current() -> Spare | None:
    """The spare waiting in this process, if any."""
    return _spare


def ensure_spare() -> Spare | None:
    """Start a spare unless one is waiting (the Train page calls this when it opens).

    Does nothing when spares are off, or while a run trains (its CPU comes
    first; a spare starts when it ends). Never raises: a spare is only a shortcut.
    """
    try:
        return _ensure_spare()
    except Exception:
        return None


def _ensure_spare() -> Spare | None:
    global _spare
    with _lock:
        if not enabled():
            return None
        if _spare is not None and _spare.alive and _spare.settings == _settings():
            return _spare
        if _spare is not None:
            _spare.end()
            _spare = None
        # A run just started holds the training slot only once its process has
        # got that far: until then, ask the process itself.
        _training[:] = [process for process in _training if process.poll() is None]
        if _training or run_locks.current_training_run() is not None:
            return None
        _spare = _start()
        return _spare


def note_training(process: subprocess.Popen) -> None:
    """A run now trains in `process`: no spare starts until it ends (its CPU comes first)."""
    with _lock:
        _training.append(process)


def _start() -> Spare:
    # The machine's, not a user's: a spare serves whoever starts next (it learns whom from the claim).
    _remove_folders_of_ended_servers(paths.machine_home() / "spares")
    directory = paths.machine_home() / "spares" / f"{os.getpid()}-{time.time_ns()}"
    directory.mkdir(parents=True, exist_ok=True)
    from tlcore.runs.processes import start_tlcore_process

    process = start_tlcore_process(["spare", str(directory), "--parent", str(os.getpid())], directory / LOG_FILE)
    spare = Spare(process, directory, _settings())
    threading.Thread(target=_reap, args=(spare,), daemon=True, name="tlcore-spare-reaper").start()
    return spare


def _remove_folders_of_ended_servers(parent: pathlib.Path) -> None:
    """A spare whose server ended also ended, leaving its folder (named after the server's pid)."""
    for folder in parent.glob("*-*"):
        try:
            os.kill(int(folder.name.split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _reap(spare: Spare) -> None:
    """Wait for the spare to end; if it served a run, have the next one ready.

    A spare that took a run but ended before the run got going (its TensorFlow
    import failed, say) leaves that run queued: the run is marked failed, with
    the spare's output copied into the run's log.
    """
    spare.process.wait()
    claim = run_folder.read_json(spare.directory / CLAIMED_FILE, None)
    if isinstance(claim, dict) and claim.get("run_dir"):
        _fail_if_never_started(pathlib.Path(claim["run_dir"]), spare.directory / LOG_FILE)
    shutil.rmtree(spare.directory, ignore_errors=True)
    if claim is not None:
        after_run()


def _fail_if_never_started(run_dir: pathlib.Path, spare_log: pathlib.Path) -> None:
    # The file as written (`read_status` would already call the run interrupted).
    if run_record.written_status(run_dir).get("state") != "queued":
        return
    try:
        output = spare_log.read_bytes()[-20_000:]
        with open(run_dir / run_folder.LOG_FILE, "ab") as log:
            log.write(output)
    except OSError:
        pass
    run_record.write_status(run_dir, "failed", f"the training process ended before training began; see {run_folder.LOG_FILE} "
                      "in the run folder, and start the training again.", ended_at=time.time())


def after_run() -> None:
    """A training process has ended: start the spare for the next run."""
    ensure_spare()


def hand_over(run_dir: pathlib.Path, resume_epochs: int | None = None, user: str | None = None) -> int | None:
    """Give a queued run to the waiting spare, to train in `user`'s space (None: the personal home).

    Returns:
        The process id now training the run, or None when no spare could take
        it (none waiting, it died, or it started with other settings): the
        caller then starts a worker as usual.
    """
    global _spare
    with _lock:
        spare, _spare = _spare, None  # a spare serves one run
    if spare is None:
        return None
    if not spare.alive or spare.settings != _settings():
        spare.end()
        return None
    claim, claimed = spare.directory / CLAIM_FILE, spare.directory / CLAIMED_FILE
    try:
        run_folder.write_json_atomic(claim, {"run_dir": str(pathlib.Path(run_dir).resolve()), "resume_epochs": resume_epochs,
                                             "user": user})
    except OSError:  # its folder is gone (it idled out just now): nothing was handed over
        spare.end()
        return None
    timeout = ACKNOWLEDGE_TIMEOUT_S if spare.ready else ACKNOWLEDGE_TIMEOUT_IMPORTING_S
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and spare.alive and not claimed.exists():
        time.sleep(WATCH_INTERVAL_S / 2)
    if claimed.exists():
        return _serving(spare)
    try:
        os.rename(claim, spare.directory / WITHDRAWN_FILE)
    except FileNotFoundError:
        if claimed.exists():  # the spare took it after all, just now
            return _serving(spare)
    spare.end()  # silent or dead: the caller starts a worker, and this one must not take the run later
    return None


def _serving(spare: Spare) -> int:
    note_training(spare.process)
    return spare.process.pid


# ----------------------------------------------------------------- inside the spare process


def serve(directory: str | os.PathLike, parent_pid: int, run_claimed: Callable[[str, int | None], int]) -> int:
    """The spare process: import TensorFlow, wait for a run, train it (`tlcore spare DIR`).

    Args:
        directory: the spare's folder, where the claim arrives.
        parent_pid: the server that started it; the spare ends when it does.
        run_claimed: the worker's entry point, called with the claimed run's
            folder and its resume epochs (None for a new run); returns the
            exit code. The command line passes its own, so this module needs
            nothing from training or the command line.

    Returns:
        The worker's exit code for the run it trained.
    """
    from tlcore.runs.quiet import import_tensorflow_quietly

    directory = pathlib.Path(directory)
    claimed = threading.Event()
    threading.Thread(target=_watch, args=(directory, parent_pid, claimed), daemon=True, name="tlcore-spare-watch").start()
    import_tensorflow_quietly()
    (directory / READY_FILE).touch()
    claimed.wait()
    claim = run_folder.read_json(directory / CLAIMED_FILE, {})
    run_dir = pathlib.Path(claim["run_dir"])
    # This process is the run's own now: its user's space is its space, as a worker's environment would say.
    os.environ.pop(paths.USER_ENV_VAR, None)
    if claim.get("user"):
        os.environ[paths.USER_ENV_VAR] = paths.check_user_name(claim["user"])
    _write_output_to(run_dir / run_folder.LOG_FILE)
    return run_claimed(str(run_dir), claim.get("resume_epochs") or None)


def _watch(directory: pathlib.Path, parent_pid: int, claimed: threading.Event) -> None:
    """Take a claim the moment it appears; end the process if its starter is gone or it idles too long."""
    started = time.monotonic()
    while True:
        try:
            os.rename(directory / CLAIM_FILE, directory / CLAIMED_FILE)
            claimed.set()
            return
        except FileNotFoundError:
            pass
        if os.getppid() != parent_pid or time.monotonic() - started > IDLE_LIMIT_S:
            os._exit(0)  # unclaimed: nothing to save, no run to leave behind
        time.sleep(WATCH_INTERVAL_S)


def _write_output_to(log_path: pathlib.Path) -> None:
    """Send this process's stdout and stderr to the run's log, as a worker's are."""
    sys.stdout.flush()
    sys.stderr.flush()
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
