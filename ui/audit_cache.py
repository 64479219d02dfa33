"""The dataset audit, computed once and cached until the folder changes.

Every page that needs the audit asks `audit()`; the cache key holds a cheap
fingerprint of the class folders, so adding or removing pictures is noticed
without checking every picture again.
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections import OrderedDict

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
KEPT_AUDITS = 8  # base audits kept in this server process, the least recently used dropped first
PROGRESS_FROM_PICTURES = 200  # below this the check takes a moment: a spinner says enough

# Base audits, shared by every session of this server: {(path, seed, excluded, relabels, stamp): audit}.
# Not `st.cache_data`, so that the first audit can draw a progress bar as it goes (a cached function
# may not draw on the page's containers); a lock keeps two sessions from checking one folder twice.
_AUDITS: OrderedDict = OrderedDict()
_LOCK = threading.Lock()  # guards _AUDITS and _CHECKING
_CHECKING: dict = {}  # key -> the lock held while that folder is being checked


def _base_audit(path: str, seed: int, excluded: tuple[str, ...], relabels: tuple, stamp: float):
    key = (path, seed, excluded, relabels, stamp)
    with _LOCK:
        checking = _CHECKING.setdefault(key, threading.Lock())
    with checking:  # a second session asking for the same folder waits here, then finds it kept
        with _LOCK:
            if key in _AUDITS:
                _AUDITS.move_to_end(key)
                return _AUDITS[key]
        found = _audit_with_progress(path, seed, excluded, relabels)
        with _LOCK:
            _AUDITS[key] = found
            while len(_AUDITS) > KEPT_AUDITS:
                _AUDITS.popitem(last=False)
            _CHECKING.pop(key, None)
        return found


def _audit_with_progress(path: str, seed: int, excluded: tuple[str, ...], relabels: tuple):
    """The audit, with a progress bar that says how many pictures are checked and how long it will take."""
    bar = st.empty()
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if total < PROGRESS_FROM_PICTURES:
            return
        left = tlcore.seconds_left(done, total, time.monotonic() - started)
        when = f", about {tlcore.format_duration(left)} left" if left is not None and done < total else ""
        bar.progress(done / total, text=f"Checking every picture: {done:,} of {total:,}{when}")

    try:
        with st.spinner("Checking every picture…"):
            return tlcore.audit_dataset(path, BASE_SPLIT, seed, excluded, relabels=relabels, progress=progress)
    finally:
        bar.empty()


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_split(_base, path: str, split: float, seed: int, excluded: tuple[str, ...], relabels: tuple, stamp: float):
    """Another validation share of the base audit (`_base` is not hashed: the other arguments name it)."""
    return _base if split == BASE_SPLIT else tlcore.with_new_split(_base, split, seed)


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
    stamp = _folder_stamp(path)
    base = _base_audit(path, seed, edits.excluded_files, edits.relabels, stamp)
    return _cached_split(base, path, split, seed, edits.excluded_files, edits.relabels, stamp)


def forget_audits() -> None:
    """Drop every cached audit (the Data page's "Check the folder again")."""
    with _LOCK:
        _AUDITS.clear()
    _cached_split.clear()
