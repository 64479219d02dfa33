"""The line of runs waiting for a training slot: one small SQLite table under `$TLCORE_HOME`.

A run put in line has its folder (config.json) and the status "waiting"; its
entry here says whose it is, in which order it came, and how long it is
expected to take. The dispatcher (`tlcore.runs.dispatch`) turns the first
entries into training processes as slots free up; an entry then stays, marked
"started" with the process id, until that process has ended, so that a run
starting up (importing TensorFlow) already counts as using its slot. Entries
survive a restart of the server: the line is a file.

A line file that SQLite cannot read (garbage bytes, a truncated copy: "file
is not a database", "database disk image is malformed") is moved aside as
`queue.sqlite.damaged-<time>` and rebuilt from the run folders, with a warning
in the log: the runs whose status says waiting go back in line in the order
they came, the runs starting or training are counted again as using their slot.

Only this module reads or writes the table. It may import `tlcore.paths`,
`tlcore.errors`, the run folder contract, its file locks and the standard library.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import pathlib
import shutil
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterator

from tlcore import paths
from tlcore.errors import DamagedRunError, InputError
from tlcore.runs import folder as run_folder
from tlcore.runs.locks import FileLock

QUEUE_FILE = "queue.sqlite"
WAITING, STARTED = "waiting", "started"
REPAIR_WAIT_S = 60.0
# SQLite's answers for a file that is not (or no longer) a database; a busy or locked one is not damaged.
_DAMAGE_CODES = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}
_log = logging.getLogger("tlcore.runs")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS line (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_dir TEXT NOT NULL UNIQUE,
    owner TEXT,                 -- the user whose space holds the run; NULL for the personal home
    resume_epochs INTEGER,      -- a stopped run continued for this many epochs; NULL for a new run
    estimated_s REAL,           -- the run's own expected time, for the wait shown to those behind it
    queued_at REAL NOT NULL,
    state TEXT NOT NULL,        -- waiting | started
    started_at REAL,
    pid INTEGER,
    previous_status TEXT        -- JSON: a continued run's status before it waited, put back if it is taken out
)
"""


@dataclass(frozen=True)
class Entry:
    """One run in line (or started from it and not ended yet)."""

    id: int
    run_dir: pathlib.Path
    owner: str | None
    resume_epochs: int | None
    estimated_s: float | None
    queued_at: float
    state: str
    started_at: float | None
    pid: int | None
    previous_status: dict | None

    def to_dict(self) -> dict:
        return {"id": self.id, "run_dir": str(self.run_dir), "name": self.run_dir.name, "user": self.owner,
                "resume_epochs": self.resume_epochs, "estimated_s": self.estimated_s, "queued_at": self.queued_at,
                "state": self.state, "started_at": self.started_at, "pid": self.pid}


def queue_path() -> pathlib.Path:
    return paths.machine_home() / QUEUE_FILE


@contextlib.contextmanager
def _database(write: bool = False) -> Iterator[sqlite3.Connection | None]:
    """A connection to the line; None for a read when there is no line yet (nothing is created by reading)."""
    path = queue_path()
    if not write and not path.exists():
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = _open_checked(path)
    try:
        if write:
            connection.execute(_SCHEMA)
            connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            if write:
                connection.execute("ROLLBACK")
            raise
        if write:
            connection.execute("COMMIT")
    finally:
        connection.close()


def _open_checked(path: pathlib.Path) -> sqlite3.Connection:
    """A connection to the line file, after SQLite has checked it; a damaged file is repaired first."""
    connection = _connect(path)
    try:
        _check(connection)
    except sqlite3.DatabaseError as error:
        connection.close()
        if not _is_damage(error):
            raise
        _repair(path, error)
        connection = _connect(path)
    return connection


def _connect(path: pathlib.Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 30000")
    return connection


def _check(connection: sqlite3.Connection) -> None:
    """Raise SQLite's own error when the file is not a sound database (the line is a few rows: this is quick)."""
    verdict = connection.execute("PRAGMA quick_check").fetchone()
    if verdict is None or verdict[0] != "ok":
        error = sqlite3.DatabaseError(f"database disk image is malformed ({verdict[0] if verdict else 'no answer'})")
        error.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
        raise error


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in _DAMAGE_CODES or "not a database" in str(error)


def _repair(path: pathlib.Path, error: sqlite3.DatabaseError) -> None:
    """Move a damaged line file aside and rebuild the line from the run folders (one process at a time)."""
    with FileLock(path.with_name(path.name + ".repair.lock")) as lock:
        if not lock.acquire_waiting(REPAIR_WAIT_S):
            raise InputError("the training line is being repaired by another process; try again in a minute.")
        if _sound(path):  # another process repaired it while this one waited
            return
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        rebuilt = path.with_name(f".{path.name}.rebuilding-{os.getpid()}")
        rebuilt.unlink(missing_ok=True)
        restored = _rebuild(rebuilt)
        # The damaged file is kept aside as a copy, then the rebuilt one replaces it in one step:
        # the line file is never missing, so no other process starts an empty line meanwhile.
        shutil.copy2(path, aside)
        for suffix in ("-journal", "-wal", "-shm"):  # a journal of the damaged file must not be replayed on the new one
            companion = path.with_name(path.name + suffix)
            if companion.exists():
                os.replace(companion, aside.with_name(aside.name + suffix))
        os.replace(rebuilt, path)
    _log.warning("tlcore: the training line %s could not be read (%s); it was moved to %s and rebuilt from the run "
                 "folders: %d waiting, %d starting or training.", path, error, aside.name,
                 sum(entry.state == WAITING for entry in restored), sum(entry.state == STARTED for entry in restored))


def _sound(path: pathlib.Path) -> bool:
    if not path.exists():
        return False
    connection = _connect(path)
    try:
        _check(connection)
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        connection.close()


def _rebuild(path: pathlib.Path) -> list[Entry]:
    """A new line file at `path` holding the runs whose status says they wait, start or train, in the order they came."""
    found = sorted(_runs_in_line(), key=lambda item: item[2])
    connection = _connect(path)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(_SCHEMA)
        for run_dir, owner, queued_at, state, status in found:
            pid = _recorded_pid(run_dir)
            started_at = status.get("dispatched_at") if state == STARTED else None
            connection.execute(
                "INSERT OR IGNORE INTO line (run_dir, owner, queued_at, state, started_at, pid) VALUES (?, ?, ?, ?, ?, ?)",
                (_key(run_dir), owner, queued_at, state, started_at if isinstance(started_at, (int, float)) else None, pid))
        connection.execute("COMMIT")
        rows = connection.execute(f"SELECT {_COLUMNS} FROM line ORDER BY id").fetchall()
    finally:
        connection.close()
    return [_entry(row) for row in rows]


def _runs_in_line():
    """(run folder, owner, queued at, line state, status) of every run whose status says it waits, starts or trains.

    A continued run that was waiting is left out: how many more epochs it was
    to train was only in the line; its page says to start it again.
    """
    spaces = [(None, paths.machine_home() / "runs")]
    users = paths.machine_home() / paths.USERS_FOLDER
    if users.is_dir():
        spaces += [(child.name, child / "runs") for child in sorted(users.iterdir())
                   if child.is_dir() and paths.USER_NAME.match(child.name)]
    for owner, runs in spaces:
        if not runs.is_dir():
            continue
        for run_dir in runs.iterdir():
            try:
                status = run_folder.read_run_file(run_dir, run_folder.STATUS_FILE, dict, {})
            except (DamagedRunError, OSError):
                continue
            state = {"waiting": WAITING, "queued": STARTED, "running": STARTED}.get(status.get("state"))
            if state is None or not (run_dir / run_folder.CONFIG_FILE).is_file():
                continue
            if state == WAITING and (run_dir / run_folder.MODEL_FILE).is_file():
                continue
            queued_at = status.get("queued_at")
            queued_at = queued_at if isinstance(queued_at, (int, float)) and not isinstance(queued_at, bool) else time.time()
            yield run_dir, owner, float(queued_at), state, status


def _recorded_pid(run_dir: pathlib.Path) -> int | None:
    try:
        return int((run_dir / run_folder.PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _entry(row) -> Entry:
    try:
        previous = json.loads(row[9]) if row[9] else None
    except ValueError:
        previous = None
    return Entry(row[0], pathlib.Path(row[1]), row[2], row[3], row[4], row[5], row[6], row[7], row[8], previous)


_COLUMNS = "id, run_dir, owner, resume_epochs, estimated_s, queued_at, state, started_at, pid, previous_status"


def _key(run_dir: str | os.PathLike) -> str:
    return str(pathlib.Path(run_dir).resolve())


def add(run_dir: str | os.PathLike, owner: str | None, resume_epochs: int | None = None,
        estimated_s: float | None = None, previous_status: dict | None = None, started: bool = False) -> Entry:
    """Put a run at the end of the line (or record one that starts at once, `started=True`).

    Raises:
        InputError: `owner` already has a run waiting (one each, so that one
            person cannot fill the line), or this run is already in line.
    """
    now = time.time()
    with _database(write=True) as database:
        if not started:
            _refuse_a_second_wait(database, owner)
        if database.execute("SELECT 1 FROM line WHERE run_dir = ?", (_key(run_dir),)).fetchone():
            raise InputError(f"run {pathlib.Path(run_dir).name} is already waiting or starting; wait for it to end.")
        cursor = database.execute(
            "INSERT INTO line (run_dir, owner, resume_epochs, estimated_s, queued_at, state, started_at, previous_status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (_key(run_dir), owner, resume_epochs, estimated_s, now, STARTED if started else WAITING,
             now if started else None, json.dumps(previous_status) if previous_status else None))
        row = database.execute(f"SELECT {_COLUMNS} FROM line WHERE id = ?", (cursor.lastrowid,)).fetchone()
    return _entry(row)


def _refuse_a_second_wait(database: sqlite3.Connection, owner: str | None) -> None:
    mine = database.execute("SELECT run_dir FROM line WHERE state = ? AND owner IS ?", (WAITING, owner)).fetchone()
    if mine is not None:
        raise InputError(f"you already have a training waiting in line ({pathlib.Path(mine[0]).name}); each "
                         "person may have one. Wait for it to start, or take it out of the line on the Train "
                         "page, then start this one.")


def check_can_wait(owner: str | None) -> None:
    """Raise `InputError` when `owner` already has a run waiting (one each)."""
    with _database() as database:
        if database is not None:
            _refuse_a_second_wait(database, owner)


def entries(state: str | None = None) -> list[Entry]:
    """The line in order (first come first), or only its waiting or started entries."""
    with _database() as database:
        if database is None:
            return []
        if state is None:
            rows = database.execute(f"SELECT {_COLUMNS} FROM line ORDER BY id").fetchall()
        else:
            rows = database.execute(f"SELECT {_COLUMNS} FROM line WHERE state = ? ORDER BY id", (state,)).fetchall()
    return [_entry(row) for row in rows]


def entry_for(run_dir: str | os.PathLike) -> Entry | None:
    """The run's entry, or None when it is not in line."""
    try:
        with _database() as database:
            if database is None:
                return None
            row = database.execute(f"SELECT {_COLUMNS} FROM line WHERE run_dir = ?", (_key(run_dir),)).fetchone()
    except sqlite3.Error:
        return None
    return _entry(row) if row else None


def mark_started(entry_id: int, pid: int | None) -> None:
    with _database(write=True) as database:
        database.execute("UPDATE line SET state = ?, started_at = ?, pid = ? WHERE id = ?",
                         (STARTED, time.time(), pid, entry_id))


def remove(run_dir: str | os.PathLike) -> Entry | None:
    """Take a run out of the line; returns its entry (None when it was not in it)."""
    with _database(write=True) as database:
        row = database.execute(f"SELECT {_COLUMNS} FROM line WHERE run_dir = ?", (_key(run_dir),)).fetchone()
        if row is not None:
            database.execute("DELETE FROM line WHERE id = ?", (row[0],))
    return _entry(row) if row else None
