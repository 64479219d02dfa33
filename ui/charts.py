"""Pictures of training: loss and accuracy curves per epoch, and thumbnails of the user's pictures."""

from __future__ import annotations

import streamlit as st

import tlcore

TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#ff7f0e"
THUMBNAIL_PIXELS = 160

CURVES = (
    ("loss", "Loss (lower is better)", "loss"),
    ("accuracy", "Accuracy (higher is better)", "share right"),
)
SERIES = (("", "training pictures", TRAIN_COLOUR), ("val_", "validation pictures", VAL_COLOUR))


def curve_figures(rows: list[dict], planned_epochs: int | None = None):
    """Plotly figures of loss and accuracy per epoch, training vs validation.

    Args:
        rows: the run's epoch rows (`tlcore.epoch_rows`).
        planned_epochs: when given, the epoch axis spans the whole planned run,
            so the curves visibly fill it as training goes on.

    Returns:
        The loss figure and the accuracy figure.
    """
    import plotly.graph_objects as go

    epochs = [row["epoch"] for row in rows]
    last = max([planned_epochs or 0, *epochs, 1])
    figures = []
    for metric, title, y_title in CURVES:
        figure = go.Figure()
        for prefix, name, colour in SERIES:
            figure.add_trace(go.Scatter(x=epochs, y=[row.get(prefix + metric) for row in rows], mode="lines+markers",
                                        name=name, line={"color": colour}))
        figure.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                             xaxis_title="epoch (one pass over the training pictures)", yaxis_title=y_title,
                             legend={"orientation": "h", "y": -0.3})
        figure.update_xaxes(range=[0.5, last + 0.5], dtick=1 if last <= 15 else None, tickformat="d")
        if metric == "accuracy":
            figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
        for epoch in phase_starts(rows):
            # Where the second phase begins the curves jump: say why, on the chart.
            figure.add_vline(x=epoch - 0.5, line_dash="dot", line_color="#888888",
                             annotation_text="blocks learn too", annotation_position="top right")
        figures.append(figure)
    return figures


def phase_starts(rows: list[dict]) -> list[int]:
    """The epochs where a new phase of training begins (the first epoch of the run not counted)."""
    return [row["epoch"] for previous, row in zip(rows, rows[1:], strict=False)
            if row.get("phase") != previous.get("phase") and row.get("phase") == "fine_tune"]


def show_curves(rows: list[dict], key: str, planned_epochs: int | None = None) -> None:
    """The loss and accuracy curves side by side."""
    loss_figure, accuracy_figure = curve_figures(rows, planned_epochs)
    left, right = st.columns(2)
    left.plotly_chart(loss_figure, key=f"{key}_loss", config={"displayModeBar": False})
    right.plotly_chart(accuracy_figure, key=f"{key}_accuracy", config={"displayModeBar": False})


@st.cache_data(show_spinner=False, max_entries=2000)
def thumbnail(path: str, size: int = THUMBNAIL_PIXELS) -> bytes | None:
    """A small JPEG of an image file (None when it has none worth showing); cached per file."""
    return tlcore.thumbnail_jpeg(path, size)


def show_picture(container, data: bytes, caption: str, width: int) -> bool:
    """A picture given as bytes, `width` pixels wide, with its caption as text; False when it is too thin to show.

    The picture goes through `tlcore.thumbnail_jpeg`, which decodes it safely
    and refuses a sliver (60000×1 pixels): `st.image` would fail on it for the
    whole page, as it shrinks it to a height of 0.
    """
    shown = tlcore.thumbnail_jpeg(data, 2 * width)  # twice as sharp as shown; at least 4 pixels on its short side
    if shown is None:
        return False
    container.image(shown, caption=tlcore.markdown_text(caption), width=width)
    return True


def show_thumbnails(files: list[str], captions: list[str] | None = None, size: int = 120) -> None:
    """A wrapping row of thumbnails (with captions if given, shown as text); files without a thumbnail are left out."""
    pictures, texts = [], []
    for index, file in enumerate(files):
        data = thumbnail(str(file))
        if data is not None:
            pictures.append(data)
            texts.append(tlcore.markdown_text(captions[index]) if captions else None)
    if pictures:
        st.image(pictures, caption=texts if captions else None, width=size)
