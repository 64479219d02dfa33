"""What the user chose, remembered: the dataset, the validation share, its edits, model and training settings.

A choice lives in `st.session_state` (it survives a page switch) and in
`$TLCORE_HOME/app_state.json` (it survives a browser reload or a restart of the
server). The file is shared by everyone using this app on this computer.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import streamlit as st

import tlcore

STATE_FILE = "app_state.json"

FREEZE_BY_PRESET = "auto"  # the Model page's "let the training preset choose" (not a TrainConfig value)
BACKBONE_BY_PRESET = "auto"  # the Model page's "let the preset pick the network" (not a backbone name)

DEFAULT_MODEL_CHOICE = {
    "backbone": BACKBONE_BY_PRESET,
    "freeze": FREEZE_BY_PRESET,
    "dropout": 0.2,
    "label_smoothing": 0.1,
    "image_size": 0,
}


# ----------------------------------------------------------------- app_state.json


def _state_path() -> pathlib.Path:
    return pathlib.Path(tlcore.tlcore_home()) / STATE_FILE


def app_state() -> dict:
    """Choices remembered across reloads and restarts ({} when none or unreadable)."""
    try:
        state = json.loads(_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def remember(**changes) -> None:
    """Store choices in app_state.json, writing only when something changed."""
    state = app_state()
    if all(state.get(key) == value for key, value in changes.items()):
        return
    state.update(changes)
    target = _state_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name: every browser session is a thread of one process.
        handle, temporary = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=target.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(state, file, indent=2, ensure_ascii=False)
        os.replace(temporary, target)
    except OSError:
        pass  # remembering is a convenience; the session still has the choice


def _session_default(key: str, fallback):
    if key not in st.session_state:
        st.session_state[key] = app_state().get(key, fallback)
    return st.session_state[key]


# ----------------------------------------------------------------- the dataset


def dataset_path() -> str | None:
    """The dataset chosen on the Data page, if it still exists."""
    path = _session_default("dataset_path", None)
    if path and os.path.exists(path):
        return path
    return None


def set_dataset(path: str | os.PathLike) -> None:
    st.session_state["dataset_path"] = str(path)
    st.session_state.pop("upload_skipped", None)
    remember(dataset_path=str(path))


def choose_demo_dataset() -> None:
    """Draw (or reuse) the built-in demo dataset and make it the chosen one (raises tlcore errors)."""
    set_dataset(tlcore.ensure_demo_dataset())


def val_split() -> float:
    return float(_session_default("val_split", 0.2))


def set_val_split(value: float) -> None:
    st.session_state["val_split"] = float(value)
    remember(val_split=float(value))


def dataset_edits(path: str | None) -> tlcore.DatasetEdits:
    """What the user changed about this dataset: files left out, files moved to another class (none by default)."""
    if not path:
        return tlcore.DatasetEdits()
    stored = _session_default("dataset_edits", {}) or {}
    entry = stored.get(str(path)) if isinstance(stored, dict) else None
    if entry is None:  # remembered by an older version: one dataset's left-out files
        older = _session_default("excluded_files", {}) or {}
        files = older.get("files", []) if isinstance(older, dict) and older.get("dataset") == str(path) else []
        return tlcore.DatasetEdits(tuple(files))
    try:
        return tlcore.DatasetEdits.from_dict(entry)
    except tlcore.TlcoreError:
        return tlcore.DatasetEdits()


def set_dataset_edits(path: str, edits: tlcore.DatasetEdits) -> None:
    """Remember this dataset's edits (the audit and the next training use them)."""
    stored = _session_default("dataset_edits", {}) or {}
    stored = {**(stored if isinstance(stored, dict) else {}), str(path): edits.to_dict()}
    st.session_state["dataset_edits"] = stored
    remember(dataset_edits=stored)


def excluded_files(path: str | None) -> list[str]:
    """Files of this dataset the user chose to leave out."""
    return list(dataset_edits(path).excluded_files)


def set_excluded_files(path: str, files: list[str]) -> None:
    set_dataset_edits(path, tlcore.DatasetEdits(tuple(files), dataset_edits(path).relabels))


# ----------------------------------------------------------------- model and training settings


# Before the presets picked the network, the Model page stored its default (width 0.35) as the choice; a choice
# stored without this mark, with the blocks left to the preset too, is that old default, not a pick by hand.
CHOICE_VERSION = 2


def model_choice() -> dict:
    """Backbone, freezing and head options from the Model page (defaults until visited)."""
    stored = _session_default("model_choice", {}) or {}
    choice = dict(DEFAULT_MODEL_CHOICE, **{k: v for k, v in stored.items() if k in DEFAULT_MODEL_CHOICE})
    old_default = choice["backbone"] == "mobilenetv2_035" and choice["freeze"] == FREEZE_BY_PRESET
    if stored.get("version") != CHOICE_VERSION and old_default:
        choice["backbone"] = BACKBONE_BY_PRESET
    names = {row["name"] for row in tlcore.list_backbones()} | {BACKBONE_BY_PRESET}
    if choice["backbone"] not in names:
        choice = dict(DEFAULT_MODEL_CHOICE)
    return choice


def set_model_choice(choice: dict) -> None:
    choice = {**choice, "version": CHOICE_VERSION}
    st.session_state["model_choice"] = choice
    remember(model_choice=choice)


def train_choice() -> dict:
    return dict(_session_default("train_choice", {}) or {})


def set_train_choice(choice: dict) -> None:
    st.session_state["train_choice"] = dict(choice)
    remember(train_choice=dict(choice))


def time_budget() -> float | None:
    """The time budget the user set on the Train page, in seconds; None for the default (the plain recipe's time)."""
    value = _session_default("time_budget", None)
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def set_time_budget(seconds: float | None) -> None:
    st.session_state["time_budget"] = seconds
    remember(time_budget=seconds)


def allowed_downloads() -> tuple[str, ...]:
    """Backbones whose weights the user agreed to download (the Model page asks before a large one)."""
    stored = _session_default("allowed_downloads", []) or []
    return tuple(name for name in stored if isinstance(name, str))


def allow_download(name: str) -> None:
    allowed = sorted(set(allowed_downloads()) | {name})
    st.session_state["allowed_downloads"] = allowed
    remember(allowed_downloads=allowed)
