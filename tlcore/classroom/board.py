"""The teacher's view of a class: everyone's runs, the line, stopping and deleting, the class board, sign-in waits.

Only a teacher may ask (or the operator at the command line, who works as
nobody in particular); a student gets `NotAllowedError`. A student's run is
named by its user and its folder name, and looked up in that user's space
only, so a name from a form can never reach outside it.
"""

from __future__ import annotations

import pathlib

from tlcore import paths
from tlcore.classroom import accounts, signin
from tlcore.errors import InputError, NotAllowedError
from tlcore.runs import dispatch as run_dispatch
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import queue as run_queue
from tlcore.runs import record as run_record


def require_teacher() -> None:
    """Raise `NotAllowedError` unless a teacher is signed in (or nobody is: the operator's command line)."""
    user = paths.current_user()
    if user is not None and not accounts.is_teacher(user):
        raise NotAllowedError("only a teacher sees everyone's trainings; sign in with a teacher's account.")


def class_runs(user: str | None = None) -> list[dict]:
    """Every student's runs (or one student's), newest first: `tlcore.list_runs` rows with their "user".

    Raises:
        NotAllowedError: the signed-in user is not a teacher.
    """
    require_teacher()
    return run_history.everyones_runs(user)


def class_line() -> list[dict]:
    """Everyone's runs in line, in order: who, which run, started or waiting, place and expected wait.

    Raises:
        NotAllowedError: the signed-in user is not a teacher.
    """
    require_teacher()
    rows = []
    for row in run_dispatch.line():
        owner = _owner_of(pathlib.Path(row["run_dir"]))
        rows.append(dict(row, user=owner if owner is not None else row["user"]))
    return rows


def _owner_of(run_dir: pathlib.Path) -> str | None:
    users = paths.machine_home() / paths.USERS_FOLDER
    try:
        relative = run_dir.resolve().relative_to(users.resolve())
    except ValueError:
        return None
    return relative.parts[0] if relative.parts else None


def _student_run(user: str | None, name: str) -> pathlib.Path:
    require_teacher()
    with paths.as_user(user):
        run_dir = run_folder.find_run(name)
    if run_dir is None:
        raise InputError(f"there is no training called {str(name)[:80]!r} for {user or 'the server'}; it may have "
                         "been deleted. The list is up to date again now.")
    return run_dir


def stop_student_run(user: str | None, name: str) -> str:
    """Stop a student's run (a waiting one leaves the line); returns what was done, in words.

    Raises:
        NotAllowedError: the signed-in user is not a teacher.
        InputError: the student has no such run.
    """
    run_dir = _student_run(user, name)
    entry = run_queue.entry_for(run_dir)
    if entry is not None and entry.state == run_queue.WAITING:
        with run_dispatch.exclusive():
            run_dispatch.take_out(entry)
        return f"{name} was taken out of the line."
    if run_record.end_hung_run(run_dir):
        run_dispatch.dispatch()  # its slot is free: the next in line starts now
        return f"{name} had stopped responding; its training process was ended and the best model so far is kept."
    if run_record.read_status(run_dir).get("state") not in run_folder.ACTIVE_STATES:
        return f"{name} is not training."
    run_record.request_stop(run_dir)
    return f"{name} stops after its current step; its best model is kept."


def delete_student_run(user: str | None, name: str) -> None:
    """Delete a student's finished (or waiting) run.

    Raises:
        NotAllowedError: the signed-in user is not a teacher.
        InputError: no such run, or it is still training (stop it first).
    """
    run_history.delete_run(_student_run(user, name))


def sign_in_waits() -> list[dict]:
    """The students (and teachers) who have to wait before their next sign-in try: `signin.locked_users` rows.

    Raises:
        NotAllowedError: the signed-in user is not a teacher.
    """
    require_teacher()
    return signin.locked_users()


def let_sign_in_again(name: str) -> str:
    """Forget a user's failed sign-ins, so that they may try again at once; returns what was done, in words.

    Raises:
        NotAllowedError: the signed-in user is not a teacher.
        InputError: there is no such user.
    """
    require_teacher()
    signin.unlock(name)
    return f"{name} may sign in again now."


def class_board(dataset: str | pathlib.Path | None = None) -> list[dict]:
    """The best result of each student on one dataset (the shared demo by default), best first.

    Args:
        dataset: the dataset to compare on; default the built-in demo, which
            every student can pick with one click.

    Returns:
        One row per student with an account or a space: "user", "best_val_accuracy"
        (the kept model's validation accuracy; None before a result), "run" (the
        best run's name), "backbone", "runs" (their runs on that dataset).

    Raises:
        NotAllowedError: the signed-in user is not a teacher.
    """
    require_teacher()
    target = str(pathlib.Path(dataset or paths.demo_dataset_dir()).expanduser().resolve())
    students = [user.name for user in accounts.list_users() if not user.teacher]
    names = sorted(set(students) | (set(run_history.user_spaces()) - {u.name for u in accounts.list_users() if u.teacher}))
    rows = []
    for name in names:
        mine = [row for row in run_history.everyones_runs(name) if _same_dataset(row.get("data"), target)]
        scored = [row for row in mine if row.get("result_val_accuracy") is not None]
        best = max(scored, key=lambda row: row["result_val_accuracy"], default=None)
        rows.append({"user": name, "best_val_accuracy": best["result_val_accuracy"] if best else None,
                     "run": best["name"] if best else None, "backbone": best["backbone"] if best else None,
                     "runs": len(mine)})
    return sorted(rows, key=lambda row: (row["best_val_accuracy"] is None, -(row["best_val_accuracy"] or 0), row["user"]))


def _same_dataset(data: str | None, target: str) -> bool:
    if not data:
        return False
    try:
        return str(pathlib.Path(data).expanduser().resolve()) == target
    except (OSError, ValueError):
        return False
