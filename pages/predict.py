"""Predict: classify new pictures (uploads or the camera) with a trained model."""

import pathlib

import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import charts, gate, messages, run_picker

IMAGE_TYPES = ["jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp", "heic", "heif", "avif"]

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Predict: try it on new pictures")
st.markdown("Show the model pictures it has never seen, and it says what it thinks each one is, and how sure it is.")


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def load_model(run_dir: str, model_mtime: float):
    """The run's model and labels, loaded once per model file version (this imports TensorFlow)."""
    return tlcore.load_run_model(run_dir)


def probabilities_chart(top: list[tuple[str, float]]) -> go.Figure:
    names = [name for name, _ in top][::-1]
    values = [value for _, value in top][::-1]
    figure = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=charts.TRAIN_COLOUR,
                              text=[f"{value:.0%}" for value in values], textposition="auto"))
    figure.update_layout(height=60 + 40 * len(top), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         xaxis={"range": [0, 1], "tickformat": ".0%", "title": "how sure"})
    return figure


def show_prediction(index: int, name: str, data: bytes, model, labels, top_k: int) -> None:
    picture, chart = st.columns([1, 3], vertical_alignment="center")
    preview = tlcore.thumbnail_jpeg(data, 360)
    if preview is not None:
        picture.image(preview, caption=name, width=180)
    else:
        picture.caption(f"{name} (no preview)")
    try:
        top = tlcore.predict_bytes(model, labels, data, top_k)
    except tlcore.TlcoreError as error:
        chart.error(str(error))
        return
    best, confidence = top[0]
    chart.markdown(f"**{best}** ({confidence:.0%} sure)")
    chart.plotly_chart(probabilities_chart(top), key=f"predict_chart_{index}", config={"displayModeBar": False})


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

    model_file = pathlib.Path(run_dir) / tlcore.MODEL_FILE
    model, labels = load_model(str(run_dir), model_file.stat().st_mtime if model_file.exists() else 0.0)
    for index, (name, data) in enumerate(pictures):
        show_prediction(index, name, data, model, labels, top_k)
