"""Signing in with a name and password, with limits on failed tries per name, per computer, and both.

Three counts of failed tries in a row, each with its own free tries; after
them every further try has to wait: 30 s, then twice as long after each
failure, at most 15 minutes.

- One name from one computer (`PER_NAME_HERE`, 5 free tries): a guesser at one
  computer; the owner at another computer is not slowed by it, so a classmate
  cannot lock someone out with a wrong try now and then.
- One computer at any names (`PER_COMPUTER`, 10): trying one password at many
  names ("spraying"). A sign-in from the computer does not reset it.
- One name from any computers (`PER_NAME`, 20): guessing one name from many
  computers.

Neither of the last two holds back a name at a computer it has signed in
from before, so the owner's own computer still lets the right password in.

A computer is the client's network address (Streamlit's `st.context.ip_address`,
given as text; None is this computer); an IPv6 address counts by its /64
network, which one machine can fill with addresses of its own. A count is forgotten after an hour
without failures; a sign-in forgets the name's counts; a teacher can forget
them at once (`unlock`, `tlcore users unlock NAME`, the Teacher page).

A try is counted before its password is checked, in one SQLite transaction
(`BEGIN IMMEDIATE`) that first checks the waits: of many tries at the same
moment, only as many as the free tries are ever checked; the rest wait as a
later try would. The counts live in the accounts database, so a restart does
not reset them. An unknown name is checked against a dummy hash and gets the
same answer as a wrong password, so the answer never tells which names exist.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import time
from dataclasses import dataclass

from tlcore.classroom import accounts
from tlcore.errors import InputError, SignInError

FIRST_WAIT_S = 30.0
LONGEST_WAIT_S = 15 * 60.0
FORGET_AFTER_S = 60 * 60.0  # a count with no failure for an hour starts again from zero
THIS_COMPUTER = "localhost"  # the address of a call that gives none (Streamlit gives None for localhost)
EVERY = ""  # in a count's key: at every name, or from every computer
WRONG = ("That name and password do not match. Check both (passwords are case-sensitive), or ask your teacher "
         "to set a new password.")
ASK_THE_TEACHER = "ask your teacher if you forgot your password, or to let you try again now."


@dataclass(frozen=True)
class Limit:
    """One count of failed tries: how many are free, and how a message says whose they are."""

    free_tries: int
    where: str


PER_NAME_HERE = Limit(5, "for this name from this computer")
PER_COMPUTER = Limit(10, "from this computer, at several names")
PER_NAME = Limit(20, "for this name from several computers")
FREE_TRIES = PER_NAME_HERE.free_tries

_dummy_hash: list[str] = []


def wait_after(failures: int, free_tries: int = FREE_TRIES) -> float:
    """Seconds to wait after `failures` failed tries in a row (0 below `free_tries`)."""
    if failures < free_tries:
        return 0.0
    return min(LONGEST_WAIT_S, FIRST_WAIT_S * 2 ** (failures - free_tries))


def sign_in(name: str, password: str, address: str | None = None) -> accounts.User:
    """Check a name and password; returns the user.

    Args:
        name: the user name typed (spaces around it and capitals do not matter).
        password: the password typed.
        address: the network address of the client (e.g. Streamlit's
            `st.context.ip_address`); None for this computer.

    Raises:
        SignInError: no name, they do not match, or there were too many failed
            tries (the message says how long to wait).
    """
    name, address = _name(name), computer(address)
    if not name:
        raise SignInError("Type your name and your password, then press Sign in.")
    counted = _count_this_try(name, address)
    stored = accounts.stored_hash(name)
    if stored is None:
        accounts.password_matches(_a_dummy_hash(), password or "")  # the same time as a real check
        matches = False
    else:
        matches = accounts.password_matches(stored, password or "")
    if not matches:
        wait = _note_failure(name, address, counted)
        raise SignInError(WRONG + (f" Too many failed tries: wait {int(wait + 0.5)} s before the next." if wait else ""))
    _note_success(name, address, counted)
    if accounts.needs_rehash(stored):
        accounts.replace_hash(name, accounts.hash_password(password))
    return accounts.get_user(name)


def seconds_to_wait(name: str, address: str | None = None) -> float:
    """How long before `name` may try again from `address` (None: this computer); 0 when it may now."""
    name, address = _name(name), computer(address)
    with accounts.database() as connection:
        if connection is None:
            return 0.0
        now = time.time()
        return max(_state(connection, key, limit, now)[1] for key, limit in _limits(connection, name, address))


def computer(address: str | None) -> str:
    """The computer a network address stands for: an IPv4 address, an IPv6 /64 network, or this computer (None)."""
    if not isinstance(address, str) or not address.strip():
        return THIS_COMPUTER
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()[:64]  # not an address (a test's or a proxy's label): itself
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if parsed.is_loopback:
        return THIS_COMPUTER
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _name(name: str | None) -> str:
    return name.strip().lower()[:64] if isinstance(name, str) else ""


def _limits(connection: sqlite3.Connection, name: str, address: str) -> list[tuple[tuple[str, str], Limit]]:
    """The counts a try at `name` from `address` is held to: (name, address) keys with their limits."""
    limits = [((name, address), PER_NAME_HERE)]
    if not _signed_in_before(connection, name, address):
        limits += [((EVERY, address), PER_COMPUTER), ((name, EVERY), PER_NAME)]
    return limits


def _signed_in_before(connection: sqlite3.Connection, name: str, address: str) -> bool:
    return connection.execute("SELECT 1 FROM signed_in_from WHERE name = ? AND address = ?",
                              (name, address)).fetchone() is not None


def _state(connection: sqlite3.Connection, key: tuple[str, str], limit: Limit, now: float) -> tuple[int, float]:
    """Failed tries in a row for `key`, and the seconds left to wait before the next."""
    row = connection.execute("SELECT count, last_at FROM failed_tries WHERE name = ? AND address = ?", key).fetchone()
    if row is None or now - row[1] >= FORGET_AFTER_S:
        return 0, 0.0
    count, last_at = row
    return count, max(0.0, last_at + wait_after(count, limit.free_tries) - now)


def _count_this_try(name: str, address: str) -> list[tuple[str, str]]:
    """Refuse a try that has to wait; otherwise count it as failed (until it succeeds), in one transaction.

    Returns:
        The keys this try was counted under.
    """
    with accounts.database(write=True) as connection:  # BEGIN IMMEDIATE: one try at a time is counted
        now = time.time()
        limits = _limits(connection, name, address)
        for key, limit in limits:
            count, left = _state(connection, key, limit, now)
            if left > 0:
                raise SignInError(f"Too many failed sign-ins {limit.where} ({count} in a row). Wait "
                                  f"{int(left) + 1} s, then try again; {ASK_THE_TEACHER}")
        for key, _ in limits:
            connection.execute(
                "INSERT INTO failed_tries (name, address, count, last_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT(name, address) DO UPDATE SET last_at = excluded.last_at, "
                "count = CASE WHEN excluded.last_at - last_at >= ? THEN 1 ELSE count + 1 END",
                (*key, now, FORGET_AFTER_S))
    return [key for key, _ in limits]


def _note_failure(name: str, address: str, counted: list[tuple[str, str]]) -> float:
    """The wait after a failed try starts when the check ends (Argon2 takes a while); returns the wait."""
    with accounts.database(write=True) as connection:
        now = time.time()
        for key in counted:
            connection.execute("UPDATE failed_tries SET last_at = max(last_at, ?) WHERE name = ? AND address = ?",
                               (now, *key))
        return max(_state(connection, key, limit, now)[1] for key, limit in _limits(connection, name, address))


def _note_success(name: str, address: str, counted: list[tuple[str, str]]) -> None:
    """Forget the name's failed tries, take this try back from the computer's count, remember the computer."""
    with accounts.database(write=True) as connection:
        connection.execute("DELETE FROM failed_tries WHERE name = ? AND address IN (?, ?)", (name, address, EVERY))
        if (EVERY, address) in counted:  # a sign-in does not reset a computer's count: it could be a sprayer's own
            connection.execute("UPDATE failed_tries SET count = max(count - 1, 0) WHERE name = ? AND address = ?",
                               (EVERY, address))
        connection.execute("INSERT INTO signed_in_from (name, address, last_at) VALUES (?, ?, ?) "
                           "ON CONFLICT(name, address) DO UPDATE SET last_at = excluded.last_at",
                           (name, address, time.time()))


def locked_users() -> list[dict]:
    """The accounts that have to wait before their next try from some computer, by name.

    Returns:
        One row per account: "name", "failed" (failed tries in a row, the most
        of its counts), "wait_s" (the longest wait), "computers" (how many
        computers tried it and have to wait).
    """
    with accounts.database() as connection:
        if connection is None:
            return []
        now = time.time()
        rows = connection.execute("SELECT failed_tries.name, failed_tries.address FROM failed_tries "
                                  "JOIN users ON users.name = failed_tries.name ORDER BY failed_tries.name").fetchall()
        locked: dict[str, dict] = {}
        for name, address in rows:
            count, left = _state(connection, (name, address), PER_NAME if address == EVERY else PER_NAME_HERE, now)
            if left > 0:
                row = locked.setdefault(name, {"name": name, "failed": 0, "wait_s": 0.0, "computers": 0})
                row.update(failed=max(row["failed"], count), wait_s=max(row["wait_s"], left),
                           computers=row["computers"] + (address != EVERY))
    return list(locked.values())


def unlock(name: str) -> None:
    """Forget every failed try at `name`, from every computer: the user may try again at once.

    A computer's own count (tries at many names) stays: that is not the user's.

    Raises:
        InputError: there is no such user.
    """
    if accounts.get_user(name) is None:
        raise InputError(f"there is no user called {str(name)[:64]!r}; `tlcore users list` shows them.")
    with accounts.database(write=True) as connection:
        accounts.forget_failed_tries(connection, name)


def _a_dummy_hash() -> str:
    if not _dummy_hash:
        _dummy_hash.append(accounts.hash_password("not anybody's password"))
    return _dummy_hash[0]
