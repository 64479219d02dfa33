"""Signing in with a name and password, with a limit on failed tries per name and per browser.

After `FREE_TRIES` failures in a row for one name (or from one browser
session), each further try has to wait: 30 s, then twice as long after each
failure, at most 15 minutes. The count is kept in the accounts database, so a
restart of the server does not reset it; a successful sign-in does. An unknown
name is checked against a dummy hash and gets the same answer as a wrong
password, so the answer never tells which names exist.
"""

from __future__ import annotations

import time

from tlcore.classroom import accounts
from tlcore.errors import SignInError

FREE_TRIES = 5
FIRST_WAIT_S = 30.0
LONGEST_WAIT_S = 15 * 60.0
WRONG = ("That name and password do not match. Check both (passwords are case-sensitive), or ask your teacher "
         "to set a new password.")

_dummy_hash: list[str] = []


def wait_after(failures: int) -> float:
    """Seconds to wait after `failures` failed tries in a row (0 below `FREE_TRIES`)."""
    if failures < FREE_TRIES:
        return 0.0
    return min(LONGEST_WAIT_S, FIRST_WAIT_S * 2 ** (failures - FREE_TRIES))


def _keys(name: str, browser: str | None) -> list[tuple[str, str]]:
    keys = [(f"name:{name[:64]}", "for this name")]
    if browser:
        keys.append((f"browser:{browser[:64]}", "from this browser"))
    return keys


def seconds_to_wait(name: str, browser: str | None = None, now: float | None = None) -> float:
    """How long before `name` (from `browser`) may try again; 0 when it may now."""
    return max([_wait_for(key, now)[0] for key, _ in _keys(name, browser)])


def _wait_for(key: str, now: float | None) -> tuple[float, int]:
    with accounts.database() as connection:
        row = connection.execute("SELECT count, last_at FROM failures WHERE key = ?", (key,)).fetchone() if connection else None
    if row is None:
        return 0.0, 0
    count, last_at = row
    return max(0.0, last_at + wait_after(count) - (time.time() if now is None else now)), count


def _refuse_if_waiting(name: str, browser: str | None) -> None:
    for key, where in _keys(name, browser):
        left, count = _wait_for(key, None)
        if left > 0:
            raise SignInError(f"Too many failed sign-ins {where} ({count} in a row). Wait {int(left) + 1} s, then try "
                              "again; ask your teacher if you forgot your password.")


def _note_failure(name: str, browser: str | None) -> int:
    now = time.time()
    count = 0
    with accounts.database(write=True) as connection:
        for key, _ in _keys(name, browser):
            connection.execute("INSERT INTO failures (key, count, last_at) VALUES (?, 1, ?) "
                               "ON CONFLICT(key) DO UPDATE SET count = count + 1, last_at = excluded.last_at", (key, now))
            count = max(count, connection.execute("SELECT count FROM failures WHERE key = ?", (key,)).fetchone()[0])
    return count


def _forget_failures(name: str, browser: str | None) -> None:
    with accounts.database(write=True) as connection:
        for key, _ in _keys(name, browser):
            connection.execute("DELETE FROM failures WHERE key = ?", (key,))


def sign_in(name: str, password: str, browser: str | None = None) -> accounts.User:
    """Check a name and password; returns the user.

    Args:
        name: the user name typed (spaces around it and capitals do not matter).
        password: the password typed.
        browser: an id of the browser session, so that one browser trying many
            names is slowed down too.

    Raises:
        SignInError: they do not match, or there were too many failed tries
            (the message says how long to wait).
    """
    name = (name or "").strip().lower()
    _refuse_if_waiting(name, browser)
    stored = accounts.stored_hash(name) if name else None
    if stored is None:
        accounts.password_matches(_a_dummy_hash(), password or "")  # the same time as a real check
        matches = False
    else:
        matches = accounts.password_matches(stored, password or "")
    if not matches:
        count = _note_failure(name, browser)
        wait = wait_after(count)
        raise SignInError(WRONG + (f" Too many failed tries: wait {int(wait)} s before the next." if wait else ""))
    _forget_failures(name, browser)
    if accounts.needs_rehash(stored):
        accounts.replace_hash(name, accounts.hash_password(password))
    return accounts.get_user(name)


def _a_dummy_hash() -> str:
    if not _dummy_hash:
        _dummy_hash.append(accounts.hash_password("not anybody's password"))
    return _dummy_hash[0]
