"""The dataset audit, computed once and cached until the folder changes.

Every page that needs the audit asks `audit()`; the cache key holds a cheap
fingerprint of the class folders, so adding or removing pictures is noticed
without checking every picture again.
"""

from __future__ import annotations

import pathlib

import streamlit as st

import tlcore
from ui import choices


def _folder_stamp(path: str) -> float:
    """A cheap fingerprint that changes when class folders gain or lose files."""
    target = pathlib.Path(path)
    stamps = [target.stat().st_mtime] if target.exists() else [0.0]
    if target.is_dir():
        for child in target.iterdir():
            if child.is_dir():
                stamps.append(child.stat().st_mtime)
    return max(stamps)


BASE_SPLIT = 0.2  # the audit is made once with this share; another share is a new split of it, not a new audit


@st.cache_data(show_spinner="Checking every picture…", max_entries=8)
def _cached_audit(path: str, seed: int, excluded: tuple[str, ...], relabels: tuple, stamp: float):
    return tlcore.audit_dataset(path, BASE_SPLIT, seed, excluded, relabels=relabels)


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_split(path: str, split: float, seed: int, excluded: tuple[str, ...], relabels: tuple, stamp: float):
    base = _cached_audit(path, seed, excluded, relabels, stamp)
    return base if split == BASE_SPLIT else tlcore.with_new_split(base, split, seed)


def audit(path: str, split: float | None = None, seed: int = 42, excluded: list[str] | tuple[str, ...] = (),
          edits: tlcore.DatasetEdits | None = None):
    """The dataset audit with the user's edits applied, cached until the folder or the edits change.

    Args:
        path: the dataset folder (or zip).
        split: share of each class kept for validation; the remembered choice when None.
        seed: the split's seed. Defaults to 42, as `TrainConfig`'s.
        excluded: files left out, relative to the dataset (added to `edits`).
        edits: files left out and moved to another class; this dataset's
            remembered edits (`choices.dataset_edits`) when None.

    Returns:
        A `tlcore.DatasetAudit`.

    Raises:
        tlcore.TlcoreError: the folder cannot be used (the message says why).
    """
    split = choices.val_split() if split is None else split
    edits = (choices.dataset_edits(path) if edits is None else edits).excluding(excluded)
    return _cached_split(path, split, seed, edits.excluded_files, edits.relabels, _folder_stamp(path))


def forget_audits() -> None:
    """Drop every cached audit (the Data page's "Check the folder again")."""
    _cached_audit.clear()
    _cached_split.clear()
