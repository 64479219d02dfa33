"""The fair queue: waiting runs start in order, as many at a time as the machine has training slots.

Who dispatches: the process that puts a run in line (the app, at once), the
training process of a run that ends (at the end of `train`, after letting go
of its slot), the server whenever a page polls and every few seconds from the
moment it starts (`keep_line_moving`, which `tlcore serve` starts before the
first page is opened), and anyone after a restart (`tlcore queue --dispatch`).
Each decision is taken under one OS file lock (`locks/dispatch.lock`), so two
dispatchers never start the same run, and a run that is starting up counts as
using its slot until its process has ended. A run is started as any run the
app starts: handed to this process's spare when there is one ready (the
server's), else as a new detached `tlcore worker` process, with
`$TLCORE_USER` saying whose space it trains in.

May import the other `tlcore.runs` modules, `tlcore.paths` and `tlcore.errors`.
"""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from tlcore import paths
from tlcore.errors import InputError, RunBusyError
from tlcore.runs import folder as run_folder
from tlcore.runs import locks as run_locks
from tlcore.runs import queue as run_queue
from tlcore.runs import record as run_record
from tlcore.runs import spare

LOCK_WAIT_S = 60.0
START_GRACE_S = 600.0  # a started run whose process never got as far as training, after this long, has ended
DEFAULT_RUN_S = 60.0  # a run's expected time when nobody estimated it
START_UP_S = 3.0  # starting a training process, added to each run ahead
POLL_INTERVAL_S = 1.0  # pages poll every second; a dispatch per second per server is plenty

_held = threading.local()
_last_poll = [0.0]


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Hold the machine's dispatch lock inside the block (re-entrant within a thread).

    Raises:
        RunBusyError: another process held it for a minute (a stuck dispatcher).
    """
    if getattr(_held, "depth", 0):
        _held.depth += 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    lock = run_locks.dispatch_lock()
    if not lock.acquire_waiting(LOCK_WAIT_S):
        raise RunBusyError("the training queue is busy (another process has held it for a minute); try again.")
    _held.depth = 1
    try:
        yield
    finally:
        _held.depth = 0
        lock.release()


# ----------------------------------------------------------------- which slots are taken


def _entry_ended(entry: run_queue.Entry) -> bool:
    """A started entry's process has ended (or never came to life)."""
    if run_locks.worker_alive(entry.run_dir):
        return False
    state = run_record.written_status(entry.run_dir).get("state")
    if state not in ("queued", "running"):
        return True
    if entry.pid is None:  # being started right now, by a dispatcher that holds the lock
        return time.time() - (entry.started_at or entry.queued_at) > START_GRACE_S
    return not run_locks._pid_alive(entry.pid) or time.time() - (entry.started_at or 0) > START_GRACE_S and state == "queued"


def end_hung_runs() -> list[pathlib.Path]:
    """End the training processes that hold a slot but make no progress (`tlcore.runs.hung`); returns their runs.

    Their slots are free afterwards, so the line moves on instead of waiting
    for ever behind a stopped or deadlocked process.
    """
    ended = []
    for run_dir in occupied():
        if run_record.end_hung_run(run_dir):
            run_queue.remove(run_dir)
            print(f"tlcore: ended the training process of {run_dir} (no progress); the line moves on.", file=sys.stderr)
            ended.append(run_dir)
    return ended


def forget_ended() -> None:
    """Take out of the line the started runs whose process has ended or hung, and the waiting runs whose folder is gone."""
    end_hung_runs()
    for entry in run_queue.entries():
        gone = not (entry.run_dir / run_folder.CONFIG_FILE).is_file()
        if gone or (entry.state == run_queue.STARTED and _entry_ended(entry)):
            run_queue.remove(entry.run_dir)


def occupied() -> list[pathlib.Path]:
    """The runs using a training slot: those training now and those starting up (no run counted twice)."""
    runs = {str(path.resolve()): path for path in run_locks.training_runs()}
    for entry in run_queue.entries(run_queue.STARTED):
        runs.setdefault(str(entry.run_dir), entry.run_dir)
    return list(runs.values())


def free_slots() -> int:
    return max(0, run_locks.slot_count() - len(occupied()))


def require_free_slot(message: str) -> None:
    """Raise `RunBusyError(message)` unless a slot is free and nobody waits for it (call under `exclusive`)."""
    forget_ended()
    if free_slots() == 0 or run_queue.entries(run_queue.WAITING):
        raise RunBusyError(message)


# ----------------------------------------------------------------- starting runs


def dispatch() -> list[pathlib.Path]:
    """Start waiting runs, first come first served, while training slots are free.

    Returns:
        The run folders started now.
    """
    started = []
    with exclusive():
        forget_ended()
        for entry in run_queue.entries(run_queue.WAITING)[:free_slots()]:
            if run_record.stop_requested(entry.run_dir):  # asked to stop before it began: it leaves the line
                take_out(entry)
                continue
            launch(entry.run_dir, entry.resume_epochs, entry.owner, entry.id)
            started.append(entry.run_dir)
    return started


def dispatch_queue() -> list[pathlib.Path]:
    """`dispatch`, at most once a second in this process (every page that polls calls it); never raises."""
    now = time.monotonic()
    if now - _last_poll[0] < POLL_INTERVAL_S:
        return []
    _last_poll[0] = now
    try:
        return dispatch()
    except Exception as error:  # a dispatch is retried at the next poll; the page must not fail for it
        print(f"tlcore: could not dispatch the training queue: {error}", file=sys.stderr)
        return []


KEEP_INTERVAL_S = 2.0


class LineKeeper:
    """A thread that dispatches every `interval_s` seconds for as long as the process lives (or until `stop`).

    The line moves on by itself when a training ends (`after_training`), but
    not when the process holding a slot dies without ending (killed, or hung:
    `end_hung_runs`), nor after the server restarts with runs waiting: then
    nobody would start them until someone opened a page. The server keeps one.
    """

    def __init__(self, interval_s: float = KEEP_INTERVAL_S):
        self.interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._keep, daemon=True, name="tlcore-line-keeper")

    def start(self) -> "LineKeeper":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _keep(self) -> None:
        while not self._stopped.is_set():
            try:
                dispatch()
            except Exception as error:  # tried again at the next beat; the keeper must not die of one failure
                print(f"tlcore: could not dispatch the training queue: {error}", file=sys.stderr)
            self._stopped.wait(self.interval_s)


_keeper: list[LineKeeper] = []
_keeper_lock = threading.Lock()


def keep_line_moving(interval_s: float = KEEP_INTERVAL_S) -> LineKeeper:
    """Start this process's `LineKeeper` (once; later calls return the same one)."""
    with _keeper_lock:
        if not _keeper:
            _keeper.append(LineKeeper(interval_s).start())
        return _keeper[0]


def launch(run_dir: pathlib.Path, resume_epochs: int | None, owner: str | None, entry_id: int | None = None) -> int:
    """Start a run's training process now (call under `exclusive`, with a slot free); returns its process id."""
    from_line = entry_id is not None
    if entry_id is None:
        entry_id = run_queue.add(run_dir, owner, resume_epochs, started=True).id
    run_queue.mark_started(entry_id, None)
    (run_dir / run_folder.STOP_FILE).unlink(missing_ok=True)
    (run_dir / run_folder.PID_FILE).unlink(missing_ok=True)  # a continued run's old one: until the new, the grace counts
    now = time.time()
    in_line_since = run_record.written_status(run_dir).get("queued_at") if from_line else None
    run_record.write_status(run_dir, "queued", "starting the training process", queued_at=in_line_since or now,
                            dispatched_at=now)
    waiting = spare.current()
    pid = spare.hand_over(run_dir, resume_epochs, owner)
    if pid is not None and waiting is not None and waiting.process.pid == pid:
        _watch(waiting.process)
    if pid is None:
        arguments = ["worker", *(["--resume-epochs", str(resume_epochs)] if resume_epochs else []), str(run_dir)]
        try:
            process = subprocess_for(arguments, run_dir, owner)
        except OSError as error:
            run_queue.remove(run_dir)
            run_record.write_status(run_dir, "failed", f"the training process could not start ({error}); start it again.",
                                    ended_at=time.time())
            raise
        spare.note_training(process)
        _watch(process)
        pid = process.pid
    (run_dir / run_folder.PID_FILE).write_text(str(pid))
    run_queue.mark_started(entry_id, pid)
    return pid


def subprocess_for(arguments: list[str], run_dir: pathlib.Path, owner: str | None) -> subprocess.Popen:
    from tlcore.runs.processes import start_tlcore_process

    return start_tlcore_process(arguments, run_dir / run_folder.LOG_FILE, user=owner)


def _watch(process: subprocess.Popen) -> None:
    """When the process ends: reap it, ready the next spare, start the next runs in line."""
    def wait() -> None:
        process.wait()
        spare.after_run()
        with contextlib.suppress(Exception):
            dispatch()

    threading.Thread(target=wait, daemon=True, name="tlcore-worker-reaper").start()


def after_training(run_dir: pathlib.Path) -> None:
    """A run's training process has let go of its slot: out of the line, and the next ones start. Never raises."""
    try:
        with exclusive():
            run_queue.remove(run_dir)
            dispatch()
    except Exception as error:  # the server's next poll dispatches instead
        print(f"tlcore: could not start the next run in line: {error}", file=sys.stderr)


def put_in_line(run_dir: pathlib.Path, owner: str | None, resume_epochs: int | None = None,
                estimated_s: float | None = None) -> run_queue.Entry:
    """Add a prepared run (config.json written) to the end of the line and mark it waiting."""
    previous = run_record.written_status(run_dir) if resume_epochs else None
    entry = run_queue.add(run_dir, owner, resume_epochs, estimated_s, previous_status=previous or None)
    run_record.write_status(run_dir, "waiting", "waiting for its turn to train", queued_at=entry.queued_at)
    return entry


def take_out(entry: run_queue.Entry) -> None:
    """Take a waiting run out of the line: a continued run gets its earlier status back; a new run is deleted."""
    import shutil

    run_queue.remove(entry.run_dir)
    if entry.previous_status:
        run_folder.write_json_atomic(entry.run_dir / run_folder.STATUS_FILE, entry.previous_status)
        (entry.run_dir / run_folder.STOP_FILE).unlink(missing_ok=True)
    else:
        shutil.rmtree(entry.run_dir, ignore_errors=True)


def cancel_queued(run_dir: str | pathlib.Path) -> None:
    """Take one of your own waiting runs out of the line (a new run's folder is deleted).

    Raises:
        InputError: the run is not waiting in line for you (it started, ended, or is not yours).
    """
    with exclusive():
        entry = run_queue.entry_for(run_dir)
        if entry is None or entry.state != run_queue.WAITING or entry.owner != paths.current_user():
            raise InputError(f"run {pathlib.Path(run_dir).name} is not waiting in line (it may have started "
                             "already; then use Stop).")
        take_out(entry)


# ----------------------------------------------------------------- where a run stands


@dataclass(frozen=True)
class QueuePlace:
    """Where a waiting run stands: its position (1 = next) and when it should start."""

    position: int
    waiting: int
    wait_s: float

    def describe(self) -> str:
        from tlcore.runs.history import format_duration

        ordinal = {1: "1st", 2: "2nd", 3: "3rd"}.get(self.position, f"{self.position}th")
        if self.position in (11, 12, 13):
            ordinal = f"{self.position}th"
        if self.wait_s < 5:
            when = "any moment now"
        elif self.wait_s < 120:
            when = f"in about {format_duration(round(self.wait_s / 5) * 5)}"
        else:
            when = f"in about {round(self.wait_s / 60)} min"
        return f"{ordinal} in line; starts {when}."


def queue_place(run_dir: str | pathlib.Path) -> QueuePlace | None:
    """The waiting run's place in line and its expected wait, or None when it is not waiting.

    The wait adds up what the runs ahead are expected to take (their own
    estimates) onto what the training runs have left (their live
    estimates), slot by slot.
    """
    waiting = run_queue.entries(run_queue.WAITING)
    key = str(pathlib.Path(run_dir).resolve())
    index = next((i for i, entry in enumerate(waiting) if str(entry.run_dir) == key), None)
    if index is None:
        return None
    slots = [_time_left(run) for run in occupied()]
    slots = sorted(slots)[: run_locks.slot_count()]
    slots += [0.0] * (run_locks.slot_count() - len(slots))
    for entry in waiting[:index]:
        soonest = slots.index(min(slots))
        slots[soonest] += (entry.estimated_s or DEFAULT_RUN_S) + START_UP_S
    return QueuePlace(position=index + 1, waiting=len(waiting), wait_s=min(slots))


def _time_left(run_dir: pathlib.Path) -> float:
    status = run_record.written_status(run_dir)
    if status.get("eta_s") is not None:
        return float(status["eta_s"])
    entry = run_queue.entry_for(run_dir)
    expected = entry.estimated_s if entry and entry.estimated_s else DEFAULT_RUN_S
    started = status.get("started_at") or (entry.started_at if entry else None) or time.time()
    return max(START_UP_S, expected - (time.time() - started))


def run_in_line() -> pathlib.Path | None:
    """The current user's run that is waiting in line or starting up, if any (the first)."""
    owner = paths.current_user()
    for entry in run_queue.entries():
        if entry.owner == owner and (entry.run_dir / run_folder.CONFIG_FILE).is_file():
            return entry.run_dir
    return None


def line() -> list[dict]:
    """Everyone's runs in line, in order, with their place (the teacher's view and `tlcore queue`)."""
    rows = []
    for entry in run_queue.entries():
        row = entry.to_dict()
        where = queue_place(entry.run_dir) if entry.state == run_queue.WAITING else None
        row["position"] = where.position if where else None
        row["wait_s"] = where.wait_s if where else None
        rows.append(row)
    return rows
