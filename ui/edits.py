"""Acting on pictures: leave them out, move them to another class, undo; the Data page shows the effect at once.

Every action changes the dataset's `tlcore.DatasetEdits` (remembered per
dataset by `choices`) inside the widget's callback, so the rerun the click
makes already audits, splits and counts with the change. The files themselves
are never touched: training reads the edits from its config.
"""

from __future__ import annotations

import json
import shlex

import streamlit as st

import tlcore
from ui import choices, lists, words


def change(path: str, how, message: str) -> None:
    """Apply `how(edits) -> edits` to the dataset's edits and say so (a widget callback)."""
    choices.set_dataset_edits(path, how(choices.dataset_edits(path)))
    st.toast(message)


def leave_out_button(path: str, files: list[str], label: str, key: str, help: str | None = None,
                     container=None) -> None:
    """A button that leaves `files` out of training and validation."""
    files = list(files)
    (container or st).button(
        label, key=key, disabled=not files, help=help or "Your files are not touched; training just skips them.",
        on_click=change, args=(path, lambda edits: edits.excluding(files), f"Left out {words.count(len(files), 'picture')}."),
    )


def _moved(path: str, file: str, key: str) -> None:
    target = st.session_state.get(key)
    if target:
        change(path, lambda edits: edits.relabelling(file, target),
               tlcore.markdown_text(f"{lists.short_name(file)} now counts as {target!r}."))
    st.session_state[key] = None


def move_control(path: str, file: str, current: str, classes: list[str], key: str, container=None) -> None:
    """A "move to …" menu: choosing a class counts the picture in it (the file stays in its folder)."""
    (container or st).selectbox(
        "In the wrong folder? Move to…", [name for name in classes if name != current], index=None,
        placeholder="move to…", key=key, on_change=_moved, args=(path, file, key),
        help="Counts this picture in the class you choose, for training and checking. The file stays where it is.",
    )


def undo_button(path: str, files: list[str], key: str, label: str = "Undo", container=None) -> None:
    """A button that puts files back as they were (not left out, in their own folder's class)."""
    files = list(files)
    (container or st).button(label, key=key, on_click=change,
                             args=(path, lambda edits: edits.including(files), f"Undone for {words.count(len(files), 'picture')}."))


def show_changes(path: str, key: str = "data_changes") -> None:
    """The user's edits of this dataset, each with an undo; "undo all"; the edits file for the command line."""
    edits = choices.dataset_edits(path)
    if not edits:
        return
    rows = [(file, "left out") for file in edits.excluded_files]
    rows += [(file, f"moved to {label!r}") for file, label in edits.relabels if file not in edits.excluded_files]
    title = (f"Your changes: {len(edits.excluded_files)} left out, {len(edits.relabels)} moved to another class "
             "(your files are not touched)")
    with st.expander(title, expanded=False):
        for index, (file, what) in enumerate(lists.paged(rows, key, per_page=10, noun="change")):
            text, button = st.columns([5, 1], vertical_alignment="center")
            text.markdown(tlcore.markdown_text(f"{file}: {what}"))
            undo_button(path, [file], key=f"{key}_undo_{index}_{file}", container=button)
        undo_button(path, [file for file, _ in rows], key=f"{key}_undo_all", label="Undo all changes")
        st.download_button(
            "Download these changes (edits.json)", json.dumps(edits.to_dict(), indent=2, ensure_ascii=False),
            file_name="edits.json", mime="application/json", key=f"{key}_download",
            help="For the command line: `tlcore train DATA --edits edits.json` trains with the same changes.",
        )
        if not tlcore.classroom_mode():  # the command line, and the dataset's path, are the operator's
            st.caption("On the command line:")
            st.code(tlcore.terminal_text(f"tlcore train {shlex.quote(path)} --edits edits.json"), language="bash")


def change_one_picture(path: str, audit, key: str = "data_change_one") -> None:
    """Find any picture by name and leave it out or move it to another class."""
    with st.expander("Change one picture: leave it out, or move it to another class"):
        names = [record.relative for record in sorted(audit.records, key=lambda record: record.relative)]
        by_name = {record.relative: record for record in audit.records}
        chosen = st.selectbox(f"Which picture? ({len(names)} in all; type to search)", names, index=None,
                              placeholder="type part of its name", key=f"{key}_file")
        if not chosen:
            return
        record = by_name[chosen]
        picture, actions = st.columns([1, 3])
        data = tlcore.thumbnail_jpeg(record.path, 200)
        if data is not None:
            picture.image(data, width=160)
        moved = f", moved from {record.relabeled_from!r}" if record.relabeled_from else ""
        actions.markdown(f"{tlcore.markdown_text(record.relative)} counts as **{tlcore.markdown_text(record.label)}**"
                         f"{tlcore.markdown_text(moved)}, "
                         f"{'for learning' if record.split == 'train' else 'for checking'}.")
        leave_out_button(path, [record.relative], "Leave it out", key=f"{key}_leave_out", container=actions)
        move_control(path, record.relative, record.label, audit.class_names, key=f"{key}_move", container=actions)
