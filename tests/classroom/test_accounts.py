"""Accounts: only Argon2 hashes are stored, sign-in answers the same for a wrong name or password.

The limits on failed tries are in test_signin.py.
"""

from __future__ import annotations

import sqlite3

import pytest
from conftest import tlcore_cli

import tlcore
from tlcore.classroom import accounts
from tlcore.errors import InputError, SignInError

PASSWORD = "purple tiger jumps"
TEACHER_PASSWORD = "the teacher's own secret"


def test_without_accounts_the_app_is_in_personal_mode():
    assert not tlcore.classroom_mode()
    assert tlcore.list_users() == []
    assert not accounts.accounts_path().exists(), "asking must not create the accounts file"


def test_passwords_are_stored_only_as_argon2_hashes():
    tlcore.add_user("ada", PASSWORD)
    tlcore.add_user("mr-lee", TEACHER_PASSWORD, teacher=True)
    tlcore.sign_in("ada", PASSWORD, "10.0.0.7")
    with pytest.raises(SignInError):
        tlcore.sign_in("ada", "a wrong guess of ada's", "10.0.0.7")
    tlcore.set_password("ada", "a brand new secret")

    secrets = [PASSWORD, TEACHER_PASSWORD, "a wrong guess of ada's", "a brand new secret"]
    files = [path for path in tlcore.machine_home().rglob("*") if path.is_file()]
    assert files, "the accounts are somewhere under TLCORE_HOME"
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} in {path}"
    with sqlite3.connect(accounts.accounts_path()) as database:
        hashes = [row[0] for row in database.execute("SELECT password_hash FROM users")]
    assert len(hashes) == 2 and all(value.startswith("$argon2id$") for value in hashes)
    assert tlcore.classroom_mode()


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer():
    tlcore.add_user("ada", PASSWORD)

    assert tlcore.sign_in(" Ada ", PASSWORD).name == "ada"
    with pytest.raises(SignInError) as wrong:
        tlcore.sign_in("ada", "not the password")
    with pytest.raises(SignInError) as unknown:
        tlcore.sign_in("nobody", "not the password")
    assert str(wrong.value) == str(unknown.value)
    assert "do not match" in str(wrong.value)


@pytest.mark.parametrize("name", ["Ada Lovelace", "../ada", "", "a" * 40, ".hidden", "ada/bo"])
def test_a_user_name_must_be_a_plain_folder_name(name):
    with pytest.raises(InputError, match="not a usable user name"):
        tlcore.add_user(name, PASSWORD)
    assert tlcore.list_users() == []


def test_passwords_names_and_addresses_are_checked():
    with pytest.raises(InputError, match="8 to 1024 characters"):
        tlcore.add_user("ada", "short")
    tlcore.add_user("ada", PASSWORD, email="Ada@School.example")
    with pytest.raises(InputError, match="already a user called 'ada'"):
        tlcore.add_user("ada", PASSWORD)
    with pytest.raises(InputError, match="already signs in as another user"):
        tlcore.add_user("bo", None, email="ada@school.example")
    with pytest.raises(InputError, match="needs a password, or an e-mail"):
        tlcore.add_user("bo", None)
    with pytest.raises(InputError, match="no user called"):
        tlcore.remove_user("nobody")


def test_a_school_account_signs_in_as_the_user_listed_with_its_address():
    tlcore.add_user("bo", None, email="Bo@School.example")

    assert tlcore.user_for_email("bo@school.example").name == "bo"
    assert tlcore.user_for_email(" BO@SCHOOL.EXAMPLE ").name == "bo"
    assert tlcore.user_for_email("stranger@school.example") is None
    assert tlcore.user_for_email(None) is None
    with pytest.raises(SignInError):
        tlcore.sign_in("bo", "anything at all")  # no password: the school's sign-in only


def test_the_command_line_reads_the_password_from_standard_input(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    def users(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "tlcore", "users", *args], input=stdin, capture_output=True,
                              text=True, cwd=REPO_ROOT, env=dict(os.environ), timeout=60)

    added = users("add", "ada", stdin=PASSWORD + "\n")
    teacher = users("add", "mr-lee", "--teacher", stdin=TEACHER_PASSWORD + "\n")
    assert added.returncode == 0 and teacher.returncode == 0, added.stderr + teacher.stderr
    assert PASSWORD not in added.stdout + added.stderr
    assert tlcore.sign_in("ada", PASSWORD).name == "ada"

    listed = tlcore_cli("users", "list", "--json")
    assert [(row["name"], row["role"]) for row in __import__("json").loads(listed.stdout)] == [
        ("ada", "student"), ("mr-lee", "teacher")]
    empty = users("add", "bo")
    assert empty.returncode == 2 and empty.stderr.startswith("error: no password on standard input")
    assert users("remove", "ada").returncode == 0
    assert [user.name for user in tlcore.list_users()] == ["mr-lee"]
