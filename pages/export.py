"""Export: download a run's model in four formats with labels.json; the history of all runs."""

import pathlib
import shutil

import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import gate, messages, run_picker, words

FORMATS = {
    "keras": {
        "title": "Keras (.keras)",
        "what": "For Python with Keras or TensorFlow: load it and keep training or predicting.",
        "file": "model.keras",
        "snippet": '''import json, keras, numpy as np
from PIL import Image
# The model expects RGB pixels 0-255 at its own size; scaling is inside the model,
# built from stock Keras layers, so plain Keras loads it.
model = keras.saving.load_model("model.keras")
labels = json.load(open("labels.json"))
size = model.input_shape[1]
image = np.asarray(Image.open("photo.jpg").convert("RGB").resize((size, size), Image.Resampling.BOX), dtype="float32")
probabilities = model.predict(image[None])[0]
print(labels[int(probabilities.argmax())], probabilities.max())''',
    },
    "savedmodel": {
        "title": "TensorFlow SavedModel (.zip)",
        "what": "For TensorFlow Serving, or to convert to TensorFlow.js for a web page. Unzip it first.",
        "file": "saved_model.zip",
        "snippet": '''import json, numpy as np, tensorflow as tf
from PIL import Image
model = tf.saved_model.load("saved_model")          # the unzipped folder
labels = json.load(open("saved_model/labels.json"))
size = 224                                          # the run's picture size
image = np.asarray(Image.open("photo.jpg").convert("RGB").resize((size, size), Image.Resampling.BOX), dtype="float32")
probabilities = model.serve(tf.constant(image[None])).numpy()[0]
print(labels[int(probabilities.argmax())], probabilities.max())''',
    },
    "tflite": {
        "title": "TensorFlow Lite (.tflite)",
        "what": "For phones and small computers such as a Raspberry Pi.",
        "file": "model.tflite",
        "snippet": '''import json, numpy as np
from PIL import Image
from ai_edge_litert.interpreter import Interpreter   # or: tf.lite.Interpreter
interpreter = Interpreter(model_path="model.tflite")
interpreter.allocate_tensors()
given, result = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
size = given["shape"][1]
image = np.asarray(Image.open("photo.jpg").convert("RGB").resize((size, size), Image.Resampling.BOX), dtype="float32")
interpreter.set_tensor(given["index"], image[None])
interpreter.invoke()
probabilities = interpreter.get_tensor(result["index"])[0]
labels = json.load(open("labels.json"))
print(labels[int(probabilities.argmax())], probabilities.max())''',
    },
    "tflite-int8": {
        "title": "TensorFlow Lite, 8-bit (.int8.tflite)",
        "what": "About 4 times smaller and faster on small devices, usually almost as accurate. Used exactly like "
        "the TensorFlow Lite file (it still takes and gives ordinary numbers).",
        "file": "model.int8.tflite",
        "snippet": '''# Exactly as for model.tflite, with model_path="model.int8.tflite".''',
    },
}

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Export: take your model with you")


def export_path(run_dir: pathlib.Path, format: str) -> pathlib.Path:
    return run_dir / "export" / FORMATS[format]["file"]


def picture_size(run_dir: pathlib.Path) -> int:
    """The square picture size the run's model takes (224, the usual one, for a config tlcore cannot read)."""
    try:
        return tlcore.TrainConfig.from_run(run_dir).resolved_image_size
    except tlcore.TlcoreError:
        return 224


def is_fresh(path: pathlib.Path, run_dir: pathlib.Path) -> bool:
    model = run_dir / tlcore.MODEL_FILE
    return path.is_file() and model.is_file() and path.stat().st_mtime >= model.stat().st_mtime


def prepare(run_dir: pathlib.Path, format: str) -> None:
    """Export with tlcore (this loads TensorFlow), zipping a SavedModel folder."""
    with st.spinner(f"Preparing {FORMATS[format]['title']}… (up to a minute)"):
        if format == "savedmodel":
            folder = tlcore.export_run(run_dir, "savedmodel", run_dir / "export" / "saved_model")
            archive = shutil.make_archive(str(export_path(run_dir, format).with_suffix("")), "zip", folder.parent, folder.name)
            shutil.rmtree(folder, ignore_errors=True)
            pathlib.Path(archive).touch()
        else:
            tlcore.export_run(run_dir, format, export_path(run_dir, format))


@messages.shown_errors()  # the message where the button is
def format_card(run_dir: pathlib.Path, format: str) -> None:
    info = FORMATS[format]
    path = export_path(run_dir, format)
    with st.container(border=True):
        st.markdown(f"**{info['title']}** — {info['what']}")
        if is_fresh(path, run_dir):
            st.download_button(f"Download {path.name}", data=path.read_bytes, file_name=path.name,
                               key=f"export_download_{format}", mime="application/octet-stream")
            st.caption(f"{path.stat().st_size / 1e6:.1f} MB")
        elif st.button(f"Prepare {path.name}", key=f"export_prepare_{format}"):
            prepare(run_dir, format)
            st.rerun()
        with st.expander("How to use it in Python"):
            st.code(info["snippet"].replace("size = 224 ", f"size = {picture_size(run_dir)} "), language="python")


def downloads(run_dir: pathlib.Path) -> None:
    labels = run_dir / tlcore.LABELS_FILE
    st.markdown("Every file takes ordinary RGB pictures (pixel values 0 to 255) at the model's picture size and "
                "gives one probability per class, in the order of **labels.json**.")
    st.caption("Each file is made when you ask for it (a few seconds, up to a minute for TensorFlow Lite); "
               "then its Download button appears.")
    st.download_button("Download labels.json", data=labels.read_bytes() if labels.is_file() else b"[]",
                       file_name="labels.json", mime="application/json", key="export_download_labels")
    left, right = st.columns(2)
    for index, format in enumerate(FORMATS):
        with (left if index % 2 == 0 else right):
            format_card(run_dir, format)


def history() -> None:
    st.header("All trainings")
    rows = tlcore.list_runs()
    if not rows:
        st.info("No trainings yet.")
        return
    st.dataframe(
        [
            {
                "training": row["name"],
                "model": words.backbone_title(row["backbone"]),
                "pictures": words.dataset_name(row["data"]) if row.get("data") else "?",
                "status": words.state_word(row["status"]),
                "best validation accuracy": 100 * row["best_val_accuracy"] if row["best_val_accuracy"] is not None else None,
                "epochs": row["epochs_run"],
                "duration": tlcore.format_duration(row["duration_s"]) if row["duration_s"] else "",
            }
            for row in rows
        ],
        hide_index=True,
        key="export_history_table",
        column_config={"best validation accuracy": st.column_config.ProgressColumn(format="%.0f%%", min_value=0, max_value=100)},
    )
    names = [row["name"] for row in rows]
    by_name = {row["name"]: row for row in rows}
    label = {name: run_picker.describe_run(by_name[name]) for name in names}
    picked = st.multiselect("Compare the learning curves of", names, default=names[:3], key="export_compare",
                            format_func=label.get)
    if picked:
        figure = go.Figure()
        for name in picked:
            epochs = tlcore.epoch_rows(by_name[name]["run_dir"])
            figure.add_trace(go.Scatter(x=[r["epoch"] for r in epochs], y=[r.get("val_accuracy") for r in epochs],
                                        mode="lines+markers", name=label[name]))
        figure.update_layout(title="Accuracy on the checking pictures", height=340, xaxis_title="epoch", showlegend=True,
                             legend={"orientation": "h", "y": -0.25},
                             yaxis={"tickformat": ".0%", "range": [0, 1.02]}, margin={"l": 10, "r": 10, "t": 40, "b": 10})
        st.plotly_chart(figure, key="export_compare_chart", config={"displayModeBar": False})
    with st.expander("Delete a training"):
        doomed = st.selectbox("Training to delete", names, key="export_delete_pick",
                              format_func=lambda name: label[name])
        sure = st.checkbox("Yes, delete its model and curves for good", key="export_delete_confirm")
        st.button("Delete", key="export_delete", disabled=not sure, on_click=delete, args=(doomed,))
        if "export_delete_error" in st.session_state:
            st.error(st.session_state.pop("export_delete_error"))


def delete(name: str) -> None:
    """Delete a run (a button callback, so the confirmation can be reset before the page is drawn)."""
    run_dir = tlcore.find_run(name)
    if run_dir is None:
        st.session_state["export_delete_error"] = f"There is no training called {name!r} any more."
        return
    try:
        tlcore.delete_run(run_dir)
    except tlcore.TlcoreError as error:
        st.session_state["export_delete_error"] = str(error)
        return
    st.session_state["export_delete_confirm"] = False
    run_picker.forget_run(name)


with messages.shown_errors():
    run_dir = run_picker.choose_run("export_run", "Which trained model?", run_picker.has_model)
    if run_dir is None:
        st.info("No trained model yet: train one first.")
        messages.link("pages/train.py", "Go to Train")
    else:
        downloads(run_dir)
    history()
