"""The audit's findings on the Data page: each with every file it is about, and a button that fixes it where one can.

A warning that says "exclude the copies outside training" comes with the
button that does it; a list says how many files it has and shows them all.
"""

from __future__ import annotations

import pathlib

import streamlit as st

import tlcore
from ui import charts, edits, lists, words

SPLIT_WORDS = {"train": "for learning", "val": "for checking", "test": "for the final test"}
GROUPS_PER_PAGE = 10


def _groups(audit, kind: str) -> list:
    return [group for group in audit.duplicates if tlcore.FindingKind.of_duplicates(group.scope) == kind]


def _fix(path: str, audit, finding) -> None:
    """The button that acts on a finding, when there is one thing to do."""
    kind, key = finding.kind, f"data_fix_{finding.kind}"
    if kind == tlcore.FindingKind.DUPLICATES_ACROSS_SPLITS:
        files = tlcore.files_outside_training(_groups(audit, kind))
        edits.leave_out_button(path, files, f"Leave out the {words.count(len(files), 'copy', 'copies')} outside training",
                               key, help="Keeps the training copy of each picture; checking then uses unseen pictures only.")
    elif kind == tlcore.FindingKind.DUPLICATES_WITHIN_CLASS:
        files = sorted({file for group in _groups(audit, kind) for file in tlcore.group_exclusions(audit, group)})
        edits.leave_out_button(path, files, f"Leave out the extra copies ({len(files)}), keeping one of each", key)
    elif kind == tlcore.FindingKind.DUPLICATES_ACROSS_CLASSES:
        st.caption("Only you know which class is right: under Duplicates below, keep each picture in its right class.")
    elif kind in (tlcore.FindingKind.TINY_IMAGES, tlcore.FindingKind.EXTREME_ASPECT_RATIO):
        edits.leave_out_button(path, list(finding.files), f"Leave out these {len(finding.files)} pictures", key)


def _files_table(audit, finding) -> None:
    by_name = {record.relative: record for record in audit.records}
    rows = [{"file": file, "class": by_name[file].label if file in by_name else "",
             "use": SPLIT_WORDS.get(by_name[file].split, "") if file in by_name else "left out"} for file in finding.files]
    st.dataframe(rows, hide_index=True, key=f"data_files_{finding.kind}", height=min(300, 40 + 35 * len(rows)))


def show_findings(path: str, audit) -> None:
    """Warnings in full, each with its files and its fix; the rest folded away."""
    for finding in audit.findings:
        if finding.severity != "warning":
            continue
        st.warning(tlcore.markdown_text(finding.message))  # it names classes and files
        if finding.files:
            with st.expander(f"The {words.count(len(finding.files), 'file')} it is about"):
                _fix(path, audit, finding)
                _files_table(audit, finding)
    notes = [finding for finding in audit.findings if finding.severity != "warning"]
    if notes:
        with st.expander(f"Good to know ({len(notes)})"):
            for finding in notes:
                st.markdown(f"- {tlcore.markdown_text(finding.message)}")
                if finding.files:
                    _files_table(audit, finding)


def _group_actions(path: str, audit, group) -> None:
    key = group.files[0]
    if group.scope == "across_classes":
        columns = st.columns(len(group.classes))
        for column, name in zip(columns, group.classes, strict=True):
            others = [member.relative for member in group.members if member.label != name]
            edits.leave_out_button(path, others, f"It is a {tlcore.markdown_text(name)}: leave out the others",
                                   f"data_group_{key}_{name}",
                                   container=column)
    else:
        files = tlcore.group_exclusions(audit, group)
        kept = next(member.relative for member in group.members if member.relative not in files)
        edits.leave_out_button(path, files, f"Leave out {words.count(len(files), 'copy', 'copies')}, "
                               f"keep {tlcore.markdown_text(lists.short_name(kept))}", f"data_group_{key}")


def show_duplicates(path: str, audit) -> None:
    """Every duplicate group side by side with file names, a page at a time, each with its fix; all at once too."""
    groups = audit.duplicates
    if not groups:
        return
    files = sum(len(group.members) for group in groups)
    with st.expander(f"Duplicates: {words.count(len(groups), 'picture')} appear more than once ({files} files)"):
        st.caption("A picture in both the learning and the checking set makes the accuracy look better than it is; "
                   "one picture in two classes confuses the model. Your files are never deleted.")
        exact, every = tlcore.suggested_exclusions(audit), tlcore.suggested_exclusions(audit, near=True)
        left, right = st.columns(2)
        edits.leave_out_button(path, exact, f"Leave out every exact copy ({len(exact)})", "data_exclude_exact", container=left)
        edits.leave_out_button(path, every, f"Leave out every copy, near ones too ({len(every)})", "data_exclude_near",
                               help="Near copies are resized or re-saved versions; look first: two shots of one scene "
                               "are real data.", container=right)
        for group in lists.paged(groups, "data_duplicates", GROUPS_PER_PAGE, "group"):
            st.markdown(f"**{group.kind} copies** — {tlcore.markdown_text(group.explanation)}")
            charts.show_thumbnails([str(pathlib.Path(audit.root) / m.relative) for m in group.members],
                                   [f"{lists.short_name(m.relative)} · {m.label} · {SPLIT_WORDS.get(m.split, m.split)}"
                                    for m in group.members], size=130)
            _group_actions(path, audit, group)
