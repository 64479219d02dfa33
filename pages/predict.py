"""Predict: classify new pictures (uploads or the camera) with a trained model.

Each picture is classified and shown on its own: one that cannot be read,
classified or shown gets a line saying so, and the others still get their answers.
"""


import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import charts, gate, messages, models, run_picker

PICTURE_WIDTH = 220  # pixels on the page

IMAGE_TYPES = ["jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp", "heic", "heif", "avif"]

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Predict: try it on new pictures")
st.markdown("Show the model pictures it has never seen, and it says what it thinks each one is, and how sure it is.")


def probabilities_chart(top: list[tuple[str, float]]) -> go.Figure:
    names = [tlcore.html_text(name) for name, _ in top][::-1]  # Plotly reads a few HTML tags in its labels
    values = [value for _, value in top][::-1]
    figure = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=charts.TRAIN_COLOUR,
                              text=[f"{value:.0%}" for value in values], textposition="auto"))
    figure.update_layout(height=60 + 40 * len(top), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         xaxis={"range": [0, 1], "tickformat": ".0%", "title": "how sure"})
    return figure


def show_picture(where, name: str, shown: bytes, size: tuple[int, int] | None) -> None:
    """The picture (or its heatmap) with its name; a line instead when it is too thin to show."""
    if not charts.show_picture(where, shown, name, PICTURE_WIDTH):
        width, height = size or ("?", "?")
        where.caption(tlcore.markdown_text(f"{name}: {width}×{height} pixels, too thin to show."))


def show_prediction(index: int, name: str, data: bytes, run_dir, top_k: int, heatmap: bool) -> None:
    picture, chart = st.columns([1, 3], vertical_alignment="center")
    try:
        explanation = explained(str(run_dir), name, data, models.stamp(run_dir))
    except tlcore.TlcoreError as error:
        charts.show_picture(picture, data, name, PICTURE_WIDTH)  # if it can be shown at all; the error says why not
        chart.error(tlcore.markdown_text(error))  # it names the upload as the user gave it
        return
    size = tlcore.picture_size(data)
    show_picture(picture, name, explanation.overlay_png if heatmap else data, size)
    best, confidence = explanation.top[0]
    chart.markdown(f"**{tlcore.markdown_text(best)}** ({confidence:.0%} sure)")
    warning = tlcore.shape_warning(name, size)
    if warning:
        chart.warning(tlcore.markdown_text(warning))
    if explanation.doubt is not None and explanation.doubt.unfamiliar:
        chart.warning(tlcore.markdown_text(
            f"This picture may be none of the {len(explanation.top)} classes the model knows: "
            f"{explanation.doubt.reason}. The model always answers with one of its classes, so doubt this {best!r}."))
    chart.plotly_chart(probabilities_chart(list(explanation.top[:top_k])), key=f"predict_chart_{index}",
                       config={"displayModeBar": False})


@st.cache_data(max_entries=64, show_spinner="Looking at the picture…")
def explained(run_dir: str, name: str, data: bytes, model_stamp: float):
    """The picture's classes, heatmap and doubt, once per picture and model (reruns do not redo it)."""
    model, labels = models.loaded(run_dir)
    return tlcore.explain_bytes(run_dir, model, labels, data, name)


with messages.shown_errors():
    run_dir = run_picker.choose_run("predict_run", "Which trained model?", run_picker.has_model)
    if run_dir is None:
        st.info("No trained model yet: train one first.")
        messages.link("pages/train.py", "Go to Train")
        st.stop()

    labels_count = len(tlcore.run_labels(run_dir))
    top_k = st.slider("How many guesses to show per picture", 1, max(2, min(5, labels_count)),
                      min(3, max(1, labels_count)), key="predict_top_k")
    files = st.file_uploader("Pictures to classify", type=IMAGE_TYPES, accept_multiple_files=True, key="predict_upload")
    photo = None
    if st.toggle("Use the camera", key="predict_use_camera", help="Your browser asks for permission first."):
        photo = st.camera_input("Take a picture", key="predict_camera")

    pictures = [(file.name, file.getvalue()) for file in files or []]
    if photo is not None:
        pictures.append(("camera", photo.getvalue()))
    if not pictures:
        st.info("Add one or more pictures above.")
        st.stop()

    heatmap = st.toggle("Show where it looked", value=True, key="predict_heatmap",
                        help="Colours the places that made the model say its answer (red: most), a Grad-CAM heatmap.")
    for index, (name, data) in enumerate(pictures):
        with messages.shown_here(st, name):  # one picture's trouble is its own line; the others still show
            show_prediction(index, name, data, run_dir, top_k, heatmap)
