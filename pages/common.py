"""What every page shares: remembered choices, finding runs, errors, charts, thumbnails.

Pages import this as `import common`: Streamlit puts the folder of the script it
runs on `sys.path` (this folder when a page runs on its own, as in the tests),
and `app.py` adds it too. Nothing here trains or imports TensorFlow.

Choices survive a page switch in `st.session_state` and a browser reload or a
restart in `$TLCORE_HOME/app_state.json`; the run being watched is also in the
address bar (`?run=<run folder name>`), so a reload re-attaches to it.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import tempfile

import streamlit as st

import tlcore
from tlcore import paths
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history

STATE_FILE = "app_state.json"
RUN_PARAM = "run"

DEFAULT_MODEL_CHOICE = {
    "backbone": "mobilenetv2_035",
    "freeze": "all",
    "dropout": 0.2,
    "label_smoothing": 0.1,
    "image_size": 0,
}

SPEED_WORDS = {
    "fastest": "fastest",
    "fast": "fast",
    "balanced": "balanced",
    "accurate, slower": "accurate, slower",
    "slow": "slow",
    "most accurate, slowest": "most accurate, slowest",
}

STATE_WORDS = {
    "queued": "starting",
    "running": "training",
    "completed": "finished",
    "stopped": "stopped",
    "failed": "failed",
    "interrupted": "interrupted",
    "unknown": "unknown",
}

TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#ff7f0e"


# ----------------------------------------------------------------- errors and links


def fail(error: Exception) -> None:
    """Show a tlcore error as a plain message and end this script run (never a traceback)."""
    st.error(str(error))
    st.stop()


def link(page: str, label: str) -> None:
    """A link to another page; plain words when the page runs on its own (tests)."""
    try:
        st.page_link(page, label=label)
    except Exception:  # no st.navigation around this page: nothing to link to
        st.markdown(f"→ {label} (in the menu on the left)")


def go_to(page: str) -> None:
    """Switch to another page when the app runs with its menu; otherwise stay."""
    try:
        st.switch_page(page)  # ends this run (with a BaseException, not caught here)
    except Exception:  # no st.navigation around this page
        pass


# ----------------------------------------------------------------- remembered choices


def _state_path() -> pathlib.Path:
    return paths.tlcore_home() / STATE_FILE


def app_state() -> dict:
    """Choices remembered across reloads and restarts (shared by everyone using this app)."""
    return run_folder.read_json(_state_path(), {}) or {}


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


def dataset_path() -> str | None:
    """The dataset chosen on the Data page, if it still exists."""
    path = _session_default("dataset_path", None)
    if path and os.path.exists(path):
        return path
    return None


def choose_demo_dataset() -> None:
    """Draw (or reuse) the built-in demo dataset and make it the chosen one."""
    try:
        set_dataset(tlcore.ensure_demo_dataset())
    except tlcore.TlcoreError as error:
        fail(error)


def set_dataset(path: str | os.PathLike) -> None:
    st.session_state["dataset_path"] = str(path)
    st.session_state.pop("upload_skipped", None)
    remember(dataset_path=str(path))


def val_split() -> float:
    return float(_session_default("val_split", 0.2))


def set_val_split(value: float) -> None:
    st.session_state["val_split"] = float(value)
    remember(val_split=float(value))


def excluded_files(path: str | None) -> list[str]:
    """Files of this dataset the user chose to leave out (exact duplicate copies)."""
    stored = _session_default("excluded_files", {}) or {}
    return list(stored.get("files", [])) if path and stored.get("dataset") == str(path) else []


def set_excluded_files(path: str, files: list[str]) -> None:
    value = {"dataset": str(path), "files": list(files)}
    st.session_state["excluded_files"] = value
    remember(excluded_files=value)


def model_choice() -> dict:
    """Backbone, freezing and head options from the Model page (defaults until visited)."""
    stored = _session_default("model_choice", {}) or {}
    choice = dict(DEFAULT_MODEL_CHOICE, **{k: v for k, v in stored.items() if k in DEFAULT_MODEL_CHOICE})
    names = {row["name"] for row in tlcore.list_backbones()}
    if choice["backbone"] not in names:
        choice = dict(DEFAULT_MODEL_CHOICE)
    return choice


def set_model_choice(choice: dict) -> None:
    st.session_state["model_choice"] = dict(choice)
    remember(model_choice=dict(choice))


def train_choice() -> dict:
    return dict(_session_default("train_choice", {}) or {})


def set_train_choice(choice: dict) -> None:
    st.session_state["train_choice"] = dict(choice)
    remember(train_choice=dict(choice))


# ----------------------------------------------------------------- the dataset audit


def _folder_stamp(path: str) -> float:
    """A cheap fingerprint that changes when class folders gain or lose files."""
    target = pathlib.Path(path)
    stamps = [target.stat().st_mtime] if target.exists() else [0.0]
    if target.is_dir():
        for child in target.iterdir():
            if child.is_dir():
                stamps.append(child.stat().st_mtime)
    return max(stamps)


@st.cache_data(show_spinner="Checking every picture…", max_entries=8)
def _cached_audit(path: str, split: float, seed: int, excluded: tuple[str, ...], stamp: float):
    return tlcore.audit_dataset(path, split, seed, excluded)


def audit(path: str, split: float | None = None, seed: int = 42, excluded: list[str] | tuple[str, ...] = ()):
    """The dataset audit, cached until the folder changes (raises tlcore errors)."""
    split = val_split() if split is None else split
    return _cached_audit(path, split, seed, tuple(excluded), _folder_stamp(path))


def forget_audits() -> None:
    _cached_audit.clear()


def dataset_name(path: str) -> str:
    return pathlib.Path(path).name or str(path)


# ----------------------------------------------------------------- runs


def run_dir_for(name: str | None) -> pathlib.Path | None:
    """The run folder called `name` under $TLCORE_HOME/runs, or None (never outside it)."""
    if not name or name != pathlib.PurePath(name).name or name.startswith("."):
        return None
    candidate = paths.default_runs_dir() / name
    return candidate if (candidate / run_folder.CONFIG_FILE).is_file() else None


def attach_run(run_dir: pathlib.Path | str) -> None:
    """Make a run the one pages show, in the address bar too (a reload keeps it)."""
    name = pathlib.Path(run_dir).name
    st.session_state["run_name"] = name
    if st.query_params.get(RUN_PARAM) != name:
        st.query_params[RUN_PARAM] = name
    remember(last_run=name)


def remembered_run() -> pathlib.Path | None:
    """The run in the address bar, else the one chosen this session, else the last one used."""
    for name in (st.query_params.get(RUN_PARAM), st.session_state.get("run_name"), app_state().get("last_run")):
        run_dir = run_dir_for(name)
        if run_dir is not None:
            return run_dir
    return None


def training_run() -> pathlib.Path | None:
    """The run training on this machine right now, if any."""
    running = tlcore.current_training_run()
    if running is None:
        return None
    return run_dir_for(pathlib.Path(running).name) or pathlib.Path(running)


def choose_run(key: str, label: str, usable) -> pathlib.Path | None:
    """A select box of runs that pass `usable(summary)`, starting at the remembered run.

    Returns:
        The chosen run folder, or None when no run qualifies.
    """
    rows = [row for row in tlcore.list_runs() if usable(row)]
    if not rows:
        return None
    names = [row["name"] for row in rows]
    by_name = {row["name"]: row for row in rows}
    remembered = remembered_run()
    index = names.index(remembered.name) if remembered is not None and remembered.name in names else 0
    name = st.selectbox(label, names, index=index, key=key, format_func=lambda n: describe_run(by_name[n]))
    attach_run(paths.default_runs_dir() / name)
    return paths.default_runs_dir() / name


def describe_run(row: dict, with_outcome: bool = True) -> str:
    """One line naming a run for people: when, which data, which model (and how it ended)."""
    data = dataset_name(row["data"]) if row.get("data") else "?"
    when = row["name"][:15]
    when = f"{when[6:8]}/{when[4:6]} {when[9:11]}:{when[11:13]}" if len(when) == 15 and when[8] == "-" else row["name"]
    text = f"{when} · {data} · {backbone_title(row.get('backbone'))}"
    if not with_outcome:
        return text
    best = row.get("best_val_accuracy")
    score = f" · {best:.0%} right" if best is not None else ""
    return f"{text} · {STATE_WORDS.get(row.get('status'), row.get('status'))}{score}"


def has_model(row: dict) -> bool:
    return bool(row.get("has_model"))


def backbone_title(name: str | None) -> str:
    for row in tlcore.list_backbones():
        if row["name"] == name:
            return row["title"]
    return name or "?"


# ----------------------------------------------------------------- numbers for people


def format_count(count: int | float | None) -> str:
    """1234 -> "1,234"; 2_257_984 -> "2.3 million"."""
    if count is None:
        return "?"
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f} million"
    return f"{int(count):,}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return run_history.format_duration(seconds)


def percent(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"


# ----------------------------------------------------------------- charts and pictures


def curve_figures(rows: list[dict], planned_epochs: int | None = None):
    """Plotly figures of loss and accuracy per epoch, training vs validation.

    With `planned_epochs`, the epoch axis spans the whole planned run, so the
    curves visibly fill it as training goes on.
    """
    import plotly.graph_objects as go

    epochs = [row["epoch"] for row in rows]
    figures = []
    for metric, title, y_title in (
        ("loss", "Loss (lower is better)", "loss"),
        ("accuracy", "Accuracy (higher is better)", "share right"),
    ):
        figure = go.Figure()
        for prefix, name, colour in (("", "training pictures", TRAIN_COLOUR), ("val_", "validation pictures", VAL_COLOUR)):
            figure.add_trace(
                go.Scatter(
                    x=epochs,
                    y=[row.get(prefix + metric) for row in rows],
                    mode="lines+markers",
                    name=name,
                    line={"color": colour},
                )
            )
        figure.update_layout(
            title=title,
            height=320,
            margin={"l": 10, "r": 10, "t": 40, "b": 10},
            xaxis_title="epoch (one pass over the training pictures)",
            yaxis_title=y_title,
            legend={"orientation": "h", "y": -0.3},
        )
        last = max([planned_epochs or 0, *epochs, 1])
        figure.update_xaxes(range=[0.5, last + 0.5], dtick=1 if last <= 15 else None, tickformat="d")
        if metric == "accuracy":
            figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
        figures.append(figure)
    return figures


def show_curves(rows: list[dict], key: str, planned_epochs: int | None = None) -> None:
    loss_figure, accuracy_figure = curve_figures(rows, planned_epochs)
    left, right = st.columns(2)
    left.plotly_chart(loss_figure, key=f"{key}_loss", config={"displayModeBar": False})
    right.plotly_chart(accuracy_figure, key=f"{key}_accuracy", config={"displayModeBar": False})


@st.cache_data(show_spinner=False, max_entries=2000)
def thumbnail(path: str, size: int = 160) -> bytes | None:
    """A small JPEG of an image file, upright as training sees it; None if unreadable."""
    from tlcore.data.images import load_rgb

    try:
        image = load_rgb(path)
    except Exception:
        return None
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def show_thumbnails(files: list[str], captions: list[str] | None = None, size: int = 120) -> None:
    """A wrapping row of thumbnails (with captions if given); unreadable files are left out."""
    pictures, texts = [], []
    for index, file in enumerate(files):
        data = thumbnail(str(file))
        if data is not None:
            pictures.append(data)
            texts.append(captions[index] if captions else None)
    if pictures:
        st.image(pictures, caption=texts if captions else None, width=size)
