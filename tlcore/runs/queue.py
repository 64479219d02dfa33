"""The line of runs waiting for a training slot: one small SQLite table under `$TLCORE_HOME`.

A run put in line has its folder (config.json) and the status "waiting"; its
entry here says whose it is, in which order it came, and how long it is
expected to take. The dispatcher (`tlcore.runs.dispatch`) turns the first
entries into training processes as slots free up; an entry then stays, marked
"started" with the process id, until that process has ended, so that a run
starting up (importing TensorFlow) already counts as using its slot. Entries
survive a restart of the server: the line is a file.

Only this module reads or writes the table. It may import `tlcore.paths`,
`tlcore.errors`, the run folder contract and the standard library.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterator

from tlcore import paths
from tlcore.errors import InputError

QUEUE_FILE = "queue.sqlite"
WAITING, STARTED = "waiting", "started"

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
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 30000")
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


def _entry(row) -> Entry:
    previous = json.loads(row[9]) if row[9] else None
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
