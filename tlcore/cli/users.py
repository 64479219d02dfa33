"""The command line's classroom commands: `tlcore users ...`, `tlcore queue`, and `tlcore runs` over everyone's runs.

Run by the operator on the server: these see every user's space.
"""

from __future__ import annotations

import getpass
import sys

from tlcore.cli.output import say
from tlcore.errors import InputError


def read_password(prompt: str = "password: ") -> str:
    """The new password: typed twice at a terminal, else the first line of standard input (never an argument).

    Raises:
        InputError: the two typed passwords differ, or standard input is empty.
    """
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("again: ") != first:
            raise InputError("the two passwords differ; run the command again and type the same password twice.")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise InputError("no password on standard input; give one, e.g. `printf '%s\\n' 'purple tiger jumps' | "
                         "tlcore users add ada`, or run the command at a terminal to type it.")
    return line.rstrip("\r\n")


def cmd_users(args, print_json) -> None:
    from tlcore.classroom import accounts

    if args.users_command == "add":
        password = None if args.no_password else read_password()
        user = accounts.add_user(args.name, password, teacher=args.teacher, email=args.email)
        role = "teacher" if user.teacher else "student"
        say(f"added {role} {user.name}" + (f" (school sign-in: {user.email})" if user.email else "")
              + "; classroom mode is on: every page of the app asks who you are.")
    elif args.users_command == "password":
        accounts.set_password(args.name, read_password("new password: "))
        say(f"new password set for {args.name}.")
    elif args.users_command == "unlock":
        from tlcore.classroom import signin

        signin.unlock(args.name)
        say(f"{args.name} may sign in again now: their failed tries are forgotten, from every computer.")
    elif args.users_command == "remove":
        accounts.remove_user(args.name)
        say(f"removed {args.name}; their files stay in $TLCORE_HOME/users/{args.name} until you delete that folder."
              + ("" if accounts.list_users() else " No accounts are left: the app is back in personal mode."))
    else:
        _list_users(args, print_json)


def _list_users(args, print_json) -> None:
    from tlcore import paths
    from tlcore.classroom import accounts, quotas

    rows = []
    for user in accounts.list_users():
        with paths.as_user(user.name):
            rows.append({**user.to_dict(), **quotas.quota_usage()})
    if args.json:
        print_json(rows)
        return
    if not rows:
        say("no accounts: the app is in personal mode (one person, no sign-in). Add one with `tlcore users add NAME`.")
    for row in rows:
        sign_in = ", ".join(([f"school: {row['email']}"] if row["email"] else []) + (["password"] if row["has_password"] else []))
        say(f"{row['name']:<20} {row['role']:<8} {row['runs']:>4} runs  {paths.format_size(row['upload_bytes']):>10}  {sign_in}")


def cmd_runs(args, print_json) -> None:
    from tlcore.runs.history import everyones_runs, list_runs

    rows = list_runs(args.runs_dir) if args.runs_dir else everyones_runs(args.user)
    if args.json:
        print_json(rows)
        return
    if not rows:
        say("no runs yet; start one with `tlcore train DATA`.")
    with_users = any(row.get("user") for row in rows)  # a classroom: say whose each run is ("-": the server's own)
    for row in rows:
        score = row["result_val_accuracy"]  # a finished run's saved model; a running run's best epoch so far
        accuracy = f"{score:.1%}" if score is not None else "-"
        who = f"{row.get('user') or '-':<16} " if with_users else ""
        damage = f"  ({row['damaged']})" if row.get("damaged") else ""
        say(f"{who}{row['status']:<12} {accuracy:>6}  {row['run_dir']}{damage}")


def cmd_queue(args, print_json) -> None:
    from tlcore.runs.dispatch import dispatch, line
    from tlcore.runs.history import format_duration

    if args.dispatch:
        started = dispatch()
        say(f"started {len(started)} run(s) from the line." if started else "no run could start now.")
    rows = line()
    if args.json:
        print_json(rows)
        return
    if not rows:
        say("nobody is waiting: the line is empty.")
    for row in rows:
        where = (f"{row['position']:>3}. waits about {format_duration(row['wait_s'])}" if row["state"] == "waiting"
                 else "     starting or training")
        say(f"{where:<32} {row['user'] or '-':<16} {row['run_dir']}")
