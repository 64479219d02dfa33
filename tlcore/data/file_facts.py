"""What tlcore learned about each picture file, kept between audits: its check, its bytes' hash, its perceptual hash.

Checking a picture means decoding it, and hashing it means reading every
byte; on 20,000 photos that is most of a minute. None of it changes while the
file does not, so each result is kept in one SQLite file under
`$TLCORE_HOME/cache/`, keyed by the file's path, size and modification time
(as the feature store knows a photo). An edited or replaced file has a new
size or time and is looked at again; re-auditing an unchanged folder costs a
directory walk. A failure to read or write the store is never fatal: the
audit then simply computes.

Imports only the standard library and `tlcore.paths`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading

from tlcore import paths

STORE_FILE = "file_facts-2.sqlite3"  # paths stored as bytes since version 2 of the file
STORE_VERSION = 1  # bump when what a check finds changes, so older facts are not reused
_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    path BLOB NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (path, kind)
)
"""
CHECK, SHA256, PICTURE_HASH = "check", "sha256", "phash"
_lock = threading.Lock()


def file_key(path: str) -> tuple[str, int, int] | None:
    """(path, size, modification time in ns) of a file, or None when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.fspath(path), stat.st_size, stat.st_mtime_ns)


class FileFacts:
    """The store of per-file facts; `get` and `put_many` are all an audit needs.

    Example:
        facts = FileFacts()
        known = facts.get(CHECK, keys)  # {path: value} for files unchanged since they were checked
        facts.put_many(CHECK, {key: value for ...})
    """

    def __init__(self, location: str | os.PathLike | None = None):
        self.location = os.fspath(location) if location else os.fspath(paths.cache_dir() / STORE_FILE)

    @contextlib.contextmanager
    def _connection(self):
        os.makedirs(os.path.dirname(self.location), exist_ok=True)
        connection = sqlite3.connect(self.location, timeout=30)
        try:
            connection.execute(_SCHEMA)
            yield connection
            connection.commit()
        finally:
            connection.close()

    def get(self, kind: str, keys: list[tuple[str, int, int]]) -> dict[str, object]:
        """The stored values of `kind` for files whose size and time still match; {} when the store is unreadable."""
        if not keys:
            return {}
        try:
            with _lock, self._connection() as connection:
                connection.execute("CREATE TEMP TABLE wanted (path BLOB PRIMARY KEY, size INTEGER, mtime_ns INTEGER)")
                connection.executemany("INSERT OR REPLACE INTO wanted VALUES (?, ?, ?)",
                                       [(_stored(path), size, mtime) for path, size, mtime in keys])
                rows = connection.execute(
                    "SELECT f.path, f.value FROM facts f JOIN wanted w ON f.path = w.path AND f.size = w.size "
                    "AND f.mtime_ns = w.mtime_ns WHERE f.kind = ?", (f"{kind}/{STORE_VERSION}",)
                ).fetchall()
            return {os.fsdecode(path): json.loads(value) for path, value in rows}
        except (sqlite3.Error, OSError, ValueError):
            return {}

    def put_many(self, kind: str, values: dict[tuple[str, int, int], object]) -> None:
        """Store values of `kind`, replacing older ones of the same files; a failure only loses the shortcut."""
        if not values:
            return
        rows = [(_stored(path), size, mtime, f"{kind}/{STORE_VERSION}", json.dumps(value))
                for (path, size, mtime), value in values.items()]
        try:
            with _lock, self._connection() as connection:
                connection.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, ?)", rows)
        except (sqlite3.Error, OSError):
            pass


def _stored(path: str) -> bytes:
    """A path as the bytes the file system knows it by: any file name can be stored, even one not valid UTF-8."""
    return os.fsencode(path)


def cached(kind: str, paths_to_look_at: list[str], compute, store: FileFacts | None = None) -> list:
    """The value of `kind` for each path: from the store where the file is unchanged, else `compute(missing_paths)`.

    Args:
        kind: which fact (`CHECK`, `SHA256`, `PICTURE_HASH`).
        paths_to_look_at: the files, as the strings records hold.
        compute: called once with the paths whose fact is not known, in
            order; returns their values in the same order (None for "no value").
        store: the store; `FileFacts()` under `$TLCORE_HOME` when None.

    Returns:
        The values in the order of `paths_to_look_at`.
    """
    store = store or FileFacts()
    keys = [file_key(path) for path in paths_to_look_at]
    known = store.get(kind, [key for key in keys if key is not None])
    missing = [index for index, path in enumerate(paths_to_look_at) if path not in known]
    computed = compute([paths_to_look_at[index] for index in missing]) if missing else []
    store.put_many(kind, {keys[index]: value for index, value in zip(missing, computed, strict=True)
                          if keys[index] is not None and value is not None})
    values = [known.get(path) for path in paths_to_look_at]
    for index, value in zip(missing, computed, strict=True):
        values[index] = value
    return values


def remember(kind: str, values: dict[str, object], store: FileFacts | None = None) -> None:
    """Keep facts found on the way (a picture hash computed while checking), keyed by each file as it is now."""
    keyed = {file_key(path): value for path, value in values.items() if value is not None}
    keyed.pop(None, None)
    if keyed:
        (store or FileFacts()).put_many(kind, keyed)
