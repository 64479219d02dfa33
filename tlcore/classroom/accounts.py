"""The accounts of a classroom: names, roles, e-mail addresses for school sign-in, and password hashes.

Stored in `$TLCORE_HOME/accounts.sqlite` (the machine's, not a user's).
A password is never stored: only its Argon2id hash, made and checked by
argon2-cffi (`PasswordHasher`, its recommended parameters), which holds its own
salt and parameters, so a hash made today is still checked after the
parameters change (and is then replaced by a stronger one at the next sign-in).

Example:
    add_user("ada", "correct horse battery")      # classroom mode is now on
    add_user("mr-lee", "another long one", teacher=True)
    add_user("bo", None, email="bo@school.example")  # signs in with the school's account only
"""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterator

from tlcore import paths
from tlcore.errors import InputError

ACCOUNTS_FILE = "accounts.sqlite"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte "password" would only cost the server time
ROLES = ("student", "teacher")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        email TEXT UNIQUE,          -- lower case; the school account (st.login) that signs in as this user
        password_hash TEXT,         -- Argon2id, from argon2-cffi; NULL: school sign-in only
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS failed_tries (   -- signin.py's counts of failed sign-ins in a row
        name TEXT NOT NULL,         -- the name tried, lower case; '': at every name (from `address`)
        address TEXT NOT NULL,      -- the client's network address; '': from every address (at `name`)
        count INTEGER NOT NULL,     -- a try being checked counts until it succeeds
        last_at REAL NOT NULL,
        PRIMARY KEY (name, address)
    )""",
    """CREATE TABLE IF NOT EXISTS signed_in_from (  -- the addresses each user has signed in from
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        last_at REAL NOT NULL,
        PRIMARY KEY (name, address)
    )""",
    "DROP TABLE IF EXISTS failures",  # the counts before failed_tries: by name, or by a browser session's id
)


@dataclass(frozen=True)
class User:
    """An account: its name (also its folder's), whether it is a teacher's, its school e-mail."""

    name: str
    teacher: bool
    email: str | None
    has_password: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "role": "teacher" if self.teacher else "student", "email": self.email,
                "has_password": self.has_password}


def accounts_path() -> pathlib.Path:
    return paths.machine_home() / ACCOUNTS_FILE


@contextlib.contextmanager
def database(write: bool = False) -> Iterator[sqlite3.Connection | None]:
    """A connection to the accounts; None for a read when there are none (reading creates nothing)."""
    path = accounts_path()
    if not write and not path.exists():
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 30000")
        for statement in _SCHEMA:  # a file from an older version gets the new tables (a no-op, lock-free, once there)
            connection.execute(statement)
        if write:
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
    with contextlib.suppress(OSError):
        path.chmod(0o600)  # hashes are not passwords, but nobody else needs to read them


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    """The Argon2id hash of a password (with its own random salt)."""
    return _hasher().hash(check_password(password))


def password_matches(stored_hash: str | None, password: str) -> bool:
    """True when `password` is the one `stored_hash` was made from; False for no hash or a bad one."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    if not stored_hash or not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)


def check_password(password) -> str:
    """The password, if it is long enough to keep a class's accounts apart.

    Raises:
        InputError: shorter than 8 characters, or longer than 1024.
    """
    if not isinstance(password, str) or not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InputError(f"a password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters; a few words "
                         "make a good one (e.g. 'purple tiger jumps').")
    return password


def _check_email(email: str | None) -> str | None:
    if email is None:
        return None
    email = email.strip().lower()
    if email.count("@") != 1 or " " in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise InputError(f"{email!r} is not an e-mail address; give the address the school's sign-in uses, "
                         "e.g. 'ada@school.example'.")
    return email


def _user(row) -> User:
    return User(name=row[0], teacher=row[1] == "teacher", email=row[2], has_password=bool(row[3]))


def add_user(name: str, password: str | None, teacher: bool = False, email: str | None = None) -> User:
    """Make an account (and so turn classroom mode on).

    Args:
        name: the user's name, also their folder's: 1 to 32 lower-case letters,
            digits, '.', '_' or '-'.
        password: at least 8 characters; None for an account that signs in
            only with the school's account (`email`).
        teacher: a teacher sees the teacher's page: every student's runs.
        email: the school account (OpenID Connect, `st.login`) that signs in as this user.

    Raises:
        InputError: a bad name, password or e-mail; the name or e-mail is taken;
            neither a password nor an e-mail.
    """
    paths.check_user_name(name)
    email = _check_email(email)
    if password is None and email is None:
        raise InputError(f"user {name!r} needs a password, or an e-mail address to sign in with the school's account.")
    password_hash = hash_password(password) if password is not None else None
    with database(write=True) as connection:
        if connection.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise InputError(f"there is already a user called {name!r}; pick another name, or set a new password "
                             f"with `tlcore users password {name}`.")
        if email and connection.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone():
            raise InputError(f"{email!r} already signs in as another user; `tlcore users list` shows who.")
        connection.execute("INSERT INTO users (name, role, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                           (name, "teacher" if teacher else "student", email, password_hash, time.time()))
    return User(name, teacher, email, password_hash is not None)


def set_password(name: str, password: str) -> None:
    """Give a user a new password (and forget their failed tries).

    Raises:
        InputError: no such user, or a password too short.
    """
    password_hash = hash_password(password)
    with database(write=True) as connection:
        if connection.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name)).rowcount == 0:
            raise InputError(f"there is no user called {name!r}; `tlcore users list` shows them.")
        forget_failed_tries(connection, name)


def remove_user(name: str) -> None:
    """Delete an account (their files stay in `$TLCORE_HOME/users/<name>` until deleted by hand).

    Raises:
        InputError: no such user.
    """
    with database(write=True) as connection:
        if connection.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
            raise InputError(f"there is no user called {name!r}; `tlcore users list` shows them.")
        forget_failed_tries(connection, name)
        connection.execute("DELETE FROM signed_in_from WHERE name = ?", (name,))


def forget_failed_tries(connection: sqlite3.Connection, name: str) -> None:
    """Forget the failed sign-ins at `name` from every address (not an address's tries at other names)."""
    connection.execute("DELETE FROM failed_tries WHERE name = ?", (name,))


def list_users() -> list[User]:
    """Every account, by name."""
    with database() as connection:
        if connection is None:
            return []
        rows = connection.execute("SELECT name, role, email, password_hash FROM users ORDER BY name").fetchall()
    return [_user(row) for row in rows]


def get_user(name: str | None) -> User | None:
    """The account called `name`, or None."""
    if not isinstance(name, str):
        return None
    with database() as connection:
        if connection is None:
            return None
        row = connection.execute("SELECT name, role, email, password_hash FROM users WHERE name = ?", (name,)).fetchone()
    return _user(row) if row else None


def stored_hash(name: str) -> str | None:
    with database() as connection:
        if connection is None:
            return None
        row = connection.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def replace_hash(name: str, password_hash: str) -> None:
    with database(write=True) as connection:
        connection.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))


def classroom_mode() -> bool:
    """True once the operator has made an account: every page then asks who you are."""
    try:
        with database() as connection:
            if connection is None:
                return False
            return connection.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return True  # unreadable accounts must not open the app to everyone


def user_for_email(email: str | None) -> User | None:
    """The user a school account (its e-mail address, from `st.user`) signs in as; None when not on the list."""
    if not isinstance(email, str) or not email.strip():
        return None
    with database() as connection:
        if connection is None:
            return None
        row = connection.execute("SELECT name, role, email, password_hash FROM users WHERE email = ?",
                                 (email.strip().lower(),)).fetchone()
    return _user(row) if row else None


def is_teacher(name: str | None) -> bool:
    user = get_user(name)
    return user is not None and user.teacher
