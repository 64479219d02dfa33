"""Sign-in limits: tries at the same moment are counted before they are checked, per name, per computer and both.

The attacks these reproduce (issue 26, item 3): 12 browsers or 40 library calls
trying one name at once were all checked (the limit is 5); one wrong try every
15 minutes from a classmate's computer kept a student out for good; 30 names
with one try each from one computer were never slowed. Time is a stand-in
clock the tests move on; nothing sleeps.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from conftest import tlcore_cli

import tlcore
from tlcore.classroom import accounts, signin
from tlcore.errors import InputError, NotAllowedError, SignInError

PASSWORD = "purple tiger jumps"
ADAS_COMPUTER, CLASSMATES_COMPUTER, NEW_COMPUTER = "10.0.0.7", "10.0.0.9", "10.0.0.30"


class Clock:
    """A stand-in for the `time` module whose `time()` the test moves on."""

    def __init__(self):
        self.now = 1_700_000_000.0

    def time(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(signin, "time", fake)
    return fake


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    """Argon2 at its cheapest parameters: these tests count checks; a real hash's cost (about a second here) is not
    what they are about."""
    from argon2 import PasswordHasher, profiles

    monkeypatch.setattr(accounts, "_hasher", lambda: PasswordHasher.from_parameters(profiles.CHEAPEST))
    monkeypatch.setattr(signin, "_dummy_hash", [])


@pytest.fixture
def checks(monkeypatch):
    """The passwords that reached Argon2, in a list the test reads (thread-safe: list.append)."""
    checked: list[str] = []
    real = accounts.password_matches

    def counting(stored_hash, password):
        checked.append(password)
        return real(stored_hash, password)

    monkeypatch.setattr(accounts, "password_matches", counting)
    return checked


def refused(name: str, password: str, address: str | None = None) -> str:
    with pytest.raises(SignInError) as caught:
        tlcore.sign_in(name, password, address)
    return str(caught.value)


def at_the_same_moment(count: int, attempt) -> list[str]:
    """Run `attempt(index)` in `count` threads released together; each one's SignInError message."""
    start, answers = threading.Barrier(count), [None] * count

    def one(index):
        start.wait()
        try:
            attempt(index)
            answers[index] = "signed in"
        except SignInError as error:
            answers[index] = str(error)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_after_five_failures_each_try_waits_twice_as_long(clock):
    tlcore.add_user("ada", PASSWORD)
    for _ in range(4):
        assert "wait" not in refused("ada", "guess")
    assert "wait 30 s" in refused("ada", "guess")

    clock.now += 10
    assert refused("ada", PASSWORD).startswith(  # even the right password waits
        "Too many failed sign-ins for this name from this computer (5 in a row). Wait 21 s")
    clock.now += 21
    assert "wait 60 s" in refused("ada", "guess")
    assert [signin.wait_after(count) for count in (4, 5, 6, 7, 20)] == [0, 30, 60, 120, 900]

    clock.now += 61
    assert tlcore.sign_in("ada", PASSWORD).name == "ada"
    assert "wait" not in refused("ada", "guess"), "a sign-in starts the count again"


def test_a_count_is_forgotten_after_an_hour_without_failures(clock):
    tlcore.add_user("ada", PASSWORD)
    for _ in range(5):
        refused("ada", "guess")
    clock.now += signin.FORGET_AFTER_S
    assert "wait" not in refused("ada", "guess"), "an hour later the first wrong try is free again"


@pytest.mark.parametrize("tries, address, limit", [
    (12, None, signin.PER_NAME_HERE.free_tries),  # 12 browsers on one computer
    (40, CLASSMATES_COMPUTER, signin.PER_NAME_HERE.free_tries),  # 40 library calls from one address
])
def test_tries_at_the_same_moment_are_counted_before_they_are_checked(clock, checks, tries, address, limit):
    tlcore.add_user("ada", PASSWORD)

    answers = at_the_same_moment(tries, lambda index: tlcore.sign_in("ada", f"guess {index}", address))

    assert len(checks) == limit, f"{len(checks)} of {tries} tries reached Argon2; at most {limit} may"
    assert sum(answer.startswith(signin.WRONG) for answer in answers) == limit
    assert sum(answer.startswith("Too many failed sign-ins for this name") for answer in answers) == tries - limit
    assert refused("ada", PASSWORD, address).startswith("Too many failed sign-ins"), "and the count holds"


def test_tries_from_many_computers_at_once_are_held_to_the_name_limit(clock, checks):
    tlcore.add_user("ada", PASSWORD)

    answers = at_the_same_moment(40, lambda index: tlcore.sign_in("ada", f"guess {index}", f"10.1.0.{index}"))

    assert len(checks) == signin.PER_NAME.free_tries
    assert sum("for this name from several computers" in answer for answer in answers) == 40 - signin.PER_NAME.free_tries


def test_a_try_being_checked_already_counts(clock, monkeypatch):
    """The fifth wrong guess is still being checked: a sixth try at that moment waits."""
    tlcore.add_user("ada", PASSWORD)
    for _ in range(4):
        refused("ada", "guess")
    real, seen = accounts.password_matches, []

    def sixth_try_during_the_fifth_check(stored_hash, password):
        if not seen:
            seen.append(refused("ada", PASSWORD))
        return real(stored_hash, password)

    monkeypatch.setattr(accounts, "password_matches", sixth_try_during_the_fifth_check)
    refused("ada", "fifth guess")

    assert seen[0].startswith("Too many failed sign-ins for this name from this computer (5 in a row)")


def test_one_computer_trying_one_password_at_30_names_is_slowed(clock, checks):
    names = [f"student-{number:02d}" for number in range(30)]
    for name in names[:3]:
        tlcore.add_user(name, PASSWORD)
    tlcore.add_user("ada", PASSWORD)
    assert tlcore.sign_in("ada", PASSWORD, CLASSMATES_COMPUTER).name == "ada"  # ada has used this computer before
    checks.clear()

    answers = [refused(name, "Password1", CLASSMATES_COMPUTER) for name in names]

    free = signin.PER_COMPUTER.free_tries
    assert len(checks) == free, "only the first tries at several names are checked"
    assert all(answer.startswith(signin.WRONG) for answer in answers[:free])
    assert all(answer.startswith("Too many failed sign-ins from this computer, at several names")
               for answer in answers[free:])
    assert refused(names[0], PASSWORD, CLASSMATES_COMPUTER).startswith("Too many failed sign-ins from this computer")
    assert tlcore.sign_in(names[0], PASSWORD, ADAS_COMPUTER).name == names[0], "another computer is not slowed"
    assert tlcore.sign_in("ada", PASSWORD, CLASSMATES_COMPUTER).name == "ada", \
        "a user who signed in from this computer before is not held to its count"

    clock.now += signin.wait_after(free, free)
    assert tlcore.sign_in(names[1], PASSWORD, CLASSMATES_COMPUTER).name == names[1], "after the wait, it may try"
    clock.now += signin.seconds_to_wait(names[2], CLASSMATES_COMPUTER)
    assert refused(names[2], "Password1", CLASSMATES_COMPUTER).endswith("wait 60 s before the next."), \
        "a sign-in does not reset the computer's count; its next wrong try waits twice as long"


def test_a_classmate_cannot_keep_a_student_out(clock):
    """One wrong try from a classmate's computer whenever the wait ends, for ten hours: ada still signs in."""
    tlcore.add_user("ada", PASSWORD)
    assert tlcore.sign_in("ada", PASSWORD, ADAS_COMPUTER).name == "ada"  # her usual computer
    tries = 0
    while clock.now < 1_700_000_000.0 + 10 * 3600:
        wait = signin.seconds_to_wait("ada", CLASSMATES_COMPUTER)
        clock.now += wait
        refused("ada", "locking you out", CLASSMATES_COMPUTER)
        tries += 1
        assert signin.seconds_to_wait("ada", ADAS_COMPUTER) == 0, f"ada held back after the classmate's try {tries}"
    assert tries > signin.PER_NAME.free_tries
    assert signin.seconds_to_wait("ada", CLASSMATES_COMPUTER) > 0, "the classmate waits"

    # From a computer she has never used, the name's count from every computer applies: she waits, then the
    # right password works (the wait holds back guesses; it never locks the right password out for good).
    left = signin.seconds_to_wait("ada", NEW_COMPUTER)
    assert 0 < left <= signin.LONGEST_WAIT_S
    assert refused("ada", PASSWORD, NEW_COMPUTER).startswith("Too many failed sign-ins for this name from several")
    clock.now += left
    assert tlcore.sign_in("ada", PASSWORD, NEW_COMPUTER).name == "ada"

    clock.now += signin.seconds_to_wait("ada", CLASSMATES_COMPUTER)
    refused("ada", "locking you out", CLASSMATES_COMPUTER)
    assert signin.seconds_to_wait("ada", ADAS_COMPUTER) == 0
    assert tlcore.sign_in("ada", PASSWORD, ADAS_COMPUTER).name == "ada", "her own computer is not held back"
    assert refused("ada", "locking you out", CLASSMATES_COMPUTER).startswith("Too many failed sign-ins"), \
        "her sign-in does not free the classmate's computer"


def test_the_teacher_lets_a_student_sign_in_again(clock):
    tlcore.add_user("ada", PASSWORD)
    tlcore.add_user("bo", PASSWORD)
    tlcore.add_user("mr-lee", PASSWORD, teacher=True)
    refused("nobody-here", "guess", NEW_COMPUTER)
    for _ in range(signin.PER_NAME.free_tries):
        clock.now += signin.seconds_to_wait("ada", CLASSMATES_COMPUTER)
        refused("ada", "guess", CLASSMATES_COMPUTER)

    with tlcore.as_user("mr-lee"):
        waits = tlcore.sign_in_waits()
        assert [(row["name"], row["computers"]) for row in waits] == [("ada", 1)], "only accounts, never typed names"
        assert waits[0]["failed"] == signin.PER_NAME.free_tries and waits[0]["wait_s"] > 0
        assert tlcore.let_sign_in_again("ada") == "ada may sign in again now."
        assert tlcore.sign_in_waits() == []
        with pytest.raises(InputError, match="no user called 'nobody-here'"):
            tlcore.let_sign_in_again("nobody-here")
    with tlcore.as_user("bo"), pytest.raises(NotAllowedError):
        tlcore.let_sign_in_again("ada")

    assert tlcore.sign_in("ada", PASSWORD, NEW_COMPUTER).name == "ada"


def test_the_operator_unlocks_a_name_at_the_command_line(clock):
    tlcore.add_user("ada", PASSWORD)
    for _ in range(signin.PER_NAME_HERE.free_tries):
        refused("ada", "guess")
    assert signin.seconds_to_wait("ada") > 0

    unlocked = tlcore_cli("users", "unlock", "ada")
    unknown = tlcore_cli("users", "unlock", "nobody")

    assert unlocked.returncode == 0 and unlocked.stdout.startswith("ada may sign in again now"), unlocked.stderr
    assert unknown.returncode == 2 and "no user called 'nobody'" in unknown.stderr
    assert signin.seconds_to_wait("ada") == 0
    assert tlcore.sign_in("ada", PASSWORD).name == "ada"


def test_a_new_password_or_removing_the_account_forgets_the_tries(clock):
    tlcore.add_user("ada", PASSWORD)
    for _ in range(signin.PER_NAME_HERE.free_tries):
        refused("ada", "guess")
    tlcore.set_password("ada", "a brand new secret")
    assert tlcore.sign_in("ada", "a brand new secret").name == "ada"


def test_no_name_is_refused_without_a_check_or_a_count(checks):
    tlcore.add_user("ada", PASSWORD)
    for _ in range(20):
        assert refused("  ", "guess").startswith("Type your name and your password")
    assert checks == []
    with sqlite3.connect(accounts.accounts_path()) as database:
        assert database.execute("SELECT count(*) FROM failed_tries").fetchone() == (0,)


def test_an_accounts_file_from_before_gets_the_new_counts():
    path = accounts.accounts_path()
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as database:  # the tables of the version before
        database.execute("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, email TEXT UNIQUE, "
                         "password_hash TEXT, created_at REAL NOT NULL)")
        database.execute("CREATE TABLE failures (key TEXT PRIMARY KEY, count INTEGER NOT NULL, last_at REAL NOT NULL)")
        database.execute("INSERT INTO users VALUES ('ada', 'student', NULL, ?, 0)", (accounts.hash_password(PASSWORD),))

    assert signin.seconds_to_wait("ada") == 0 and signin.locked_users() == []
    assert tlcore.sign_in("ada", PASSWORD).name == "ada"
    with sqlite3.connect(path) as database:
        tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"failed_tries", "signed_in_from"} <= tables and "failures" not in tables


def test_a_computer_is_its_ipv4_address_or_its_ipv6_network():
    assert signin.computer(None) == signin.computer("127.0.0.1") == signin.computer("::1") == "localhost"
    assert signin.computer(" 10.0.0.7 ") == signin.computer("::ffff:10.0.0.7") == "10.0.0.7"
    assert signin.computer("2001:db8:1:2::17") == signin.computer("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert signin.computer("2001:db8:1:3::17") != signin.computer("2001:db8:1:2::17")


def test_one_machine_changing_its_ipv6_address_is_one_computer(clock, checks):
    tlcore.add_user("ada", PASSWORD)
    for index in range(12):
        refused("ada", "guess", f"2001:db8:1:2::{index + 1:x}")

    assert len(checks) == signin.PER_NAME_HERE.free_tries
