"""Which training run a page shows: the one in the address bar, this session's, or the last one used.

The run being watched is kept in the address bar (`?run=<run folder name>`), so
a reload re-attaches to it, in the session, and in app_state.json as the last
run used. Names from the address bar are untrusted: `tlcore.find_run` only
finds plain folder names inside the runs folder.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import streamlit as st

import tlcore
from ui import choices, words

RUN_PARAM = "run"


def attach_run(run_dir: pathlib.Path | str) -> None:
    """Make a run the one pages show, in the address bar too (a reload keeps it)."""
    name = pathlib.Path(run_dir).name
    st.session_state["run_name"] = name
    if st.query_params.get(RUN_PARAM) != name:
        st.query_params[RUN_PARAM] = name
    choices.remember(last_run=name)


def forget_run(name: str) -> None:
    """Stop showing a run that is gone (deleted): out of the session, the address bar and app_state.json."""
    if st.session_state.get("run_name") == name:
        st.session_state.pop("run_name", None)
    if st.query_params.get(RUN_PARAM) == name:
        del st.query_params[RUN_PARAM]
    if choices.app_state().get("last_run") == name:
        choices.remember(last_run=None)


def remembered_run() -> pathlib.Path | None:
    """The run in the address bar, else the one chosen this session, else the last one used."""
    for name in (st.query_params.get(RUN_PARAM), st.session_state.get("run_name"), choices.app_state().get("last_run")):
        run_dir = tlcore.find_run(name)
        if run_dir is not None:
            return run_dir
    return None


def training_run() -> pathlib.Path | None:
    """Your run that trains on this machine right now (else starts, or waits in line), if any.

    Only ever one of your own: in classroom mode another student's run is not
    shown, not even its name. In personal mode a run trained from the command
    line into another folder is shown too, as before.
    """
    running = tlcore.current_training_run()
    if running is not None:
        own = tlcore.find_run(pathlib.Path(running).name)
        if own is not None and own.resolve() == pathlib.Path(running).resolve():
            return own
        if not tlcore.classroom_mode():
            return own or pathlib.Path(running)
    return tlcore.run_in_line()


def choose_run(key: str, label: str, usable: Callable[[dict], bool]) -> pathlib.Path | None:
    """A select box of runs that pass `usable(summary)`, starting at the remembered run.

    Args:
        key: the select box's widget key.
        label: its label.
        usable: which runs to offer, given a `tlcore.list_runs()` row.

    Returns:
        The chosen run folder (now the attached run), or None when no run qualifies.
        Damaged runs are never offered; a caption names each one and why.
    """
    every = tlcore.list_runs()
    damaged = [row for row in every if row.get("damaged")]
    rows = [row for row in every if not row.get("damaged") and usable(row)]
    for row in damaged:  # one line each; the others are offered as usual
        st.caption(f"Not offered: training {row['name']} is damaged ({row['damaged']}).")
    if not rows:
        return None
    by_name = {row["name"]: row for row in rows}
    names = list(by_name)
    remembered = remembered_run()
    index = names.index(remembered.name) if remembered is not None and remembered.name in names else 0
    if st.session_state.get(key) not in names:
        st.session_state.pop(key, None)  # a run deleted since: start again from the remembered one
    elif remembered is not None and remembered.name in names and st.session_state[key] != remembered.name:
        st.session_state[key] = remembered.name  # the address moved on (a run was attached elsewhere): follow it
    starting = {} if key in st.session_state else {"index": index}
    name = st.selectbox(label, names, key=key, format_func=lambda n: describe_run(by_name[n]), **starting)
    run_dir = pathlib.Path(by_name[name]["run_dir"])
    attach_run(run_dir)
    return run_dir


def has_model(row: dict) -> bool:
    """For `choose_run`: runs that saved a model."""
    return bool(row.get("has_model"))


def describe_run(row: dict, with_outcome: bool = True) -> str:
    """One line naming a run for people: when, which data, which model (and how it ended).

    Args:
        row: a `tlcore.run_summary` / `tlcore.list_runs()` row.
        with_outcome: also say how it ended and its best validation accuracy.
    """
    data = words.dataset_name(row["data"]) if row.get("data") else "?"
    when = row["name"][:15]
    when = f"{when[6:8]}/{when[4:6]} {when[9:11]}:{when[11:13]}" if len(when) == 15 and when[8] == "-" else row["name"]
    text = f"{when} · {data} · {words.backbone_title(row.get('backbone'))}"
    if not with_outcome:
        return text
    best = row.get("result_val_accuracy")
    score = f" · {best:.0%} right" if best is not None else ""
    return f"{text} · {words.state_word(row.get('status'))}{score}"
