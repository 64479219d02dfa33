"""Export a run's model for use outside the app, and check it agrees with the app.

Formats:
- `keras`       the .keras file (load with `keras.saving.load_model`).
- `savedmodel`  a TensorFlow SavedModel folder (TF Serving, TF.js converter).
- `tflite`      a float32 TensorFlow Lite file (phones, Raspberry Pi).
- `tflite-int8` weights and activations quantised to int8, about 4x smaller;
                its inputs and outputs stay float32 so it is used the same way.

Every export takes raw RGB images (0-255) of the run's image size: scaling is
inside the model. A `labels.json` is written beside the exported model.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from tlcore.errors import InputError
from tlcore.runs import folder as run_folder

FORMATS = ("keras", "savedmodel", "tflite", "tflite-int8")
_SUFFIX = {"keras": ".keras", "savedmodel": "", "tflite": ".tflite", "tflite-int8": ".int8.tflite"}
REPRESENTATIVE_IMAGES = 100


def default_export_path(run_dir: pathlib.Path, format: str) -> pathlib.Path:
    return pathlib.Path(run_dir) / "export" / f"model{_SUFFIX[format]}" if format != "savedmodel" else pathlib.Path(run_dir) / "export" / "saved_model"


def export_run(run_dir: str | os.PathLike, format: str = "keras", out: str | os.PathLike | None = None) -> pathlib.Path:
    """Export a run's best model.

    Args:
        run_dir: a run folder with a model.keras.
        format: one of "keras", "savedmodel", "tflite", "tflite-int8".
        out: where to write (a file, or a folder for savedmodel); defaults to
            `RUN_DIR/export/`.

    Returns:
        The path written. `labels.json` is written beside it.

    Raises:
        InputError: unknown format, or a run without a model.
    """
    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r}; expected one of: {', '.join(FORMATS)}.")
    from tlcore.results.prediction import load_run_model

    run_path = run_folder.require_run_dir(run_dir)
    model, labels = load_run_model(run_path)
    target = pathlib.Path(out) if out else default_export_path(run_path, format)
    if target.is_dir() and format != "savedmodel":
        target = target / f"model{_SUFFIX[format]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if format == "keras":
        _copy_atomic(run_path / run_folder.MODEL_FILE, target)
    elif format == "savedmodel":
        _export_saved_model(model, target)
    else:
        _export_tflite(model, target, run_path if format == "tflite-int8" else None)
    labels_path = (target if format == "savedmodel" else target.parent) / "labels.json"
    labels_path.write_text(json.dumps(labels, ensure_ascii=False, indent=2), encoding="utf-8")
    return target


def _copy_atomic(source: pathlib.Path, target: pathlib.Path) -> None:
    temporary = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def _export_saved_model(model, target: pathlib.Path) -> None:
    from tlcore.model.build import inference_model

    staging = pathlib.Path(tempfile.mkdtemp(prefix=".saved_model.", dir=target.parent))
    try:
        inference_model(model).export(str(staging / "model"), format="tf_saved_model", verbose=False)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / "model", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_tflite(model, target: pathlib.Path, run_dir_for_calibration: pathlib.Path | None) -> None:
    import tensorflow as tf

    # Find the calibration images first: a run whose dataset is gone fails at once.
    samples = None if run_dir_for_calibration is None else _calibration_images(run_dir_for_calibration, model.input_shape[1])
    with tempfile.TemporaryDirectory() as folder:
        saved = pathlib.Path(folder) / "saved_model"
        _export_saved_model(model, saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if samples is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([sample[None]] for sample in samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.float32
            converter.inference_output_type = tf.float32
        payload = converter.convert()
    temporary = target.with_name(f".{target.name}.partial")
    temporary.write_bytes(payload)
    os.replace(temporary, target)


def _calibration_images(run_dir: pathlib.Path, image_size: int) -> np.ndarray:
    """Up to 100 training images to calibrate int8 ranges (what real inputs look like)."""
    from tlcore.results.prediction import prepare_images

    split = run_folder.read_json(run_dir / run_folder.SPLIT_FILE, {}) or {}
    files = [entry[2] for entry in split.get("train", []) if os.path.isfile(entry[2])]
    if not files:
        raise InputError(
            f"int8 export needs some of the training images to calibrate, but none of run {run_dir.name}'s "
            "training files can be found any more; export as 'tflite' instead, or restore the dataset folder."
        )
    step = max(1, len(files) // REPRESENTATIVE_IMAGES)
    return prepare_images(files[::step][:REPRESENTATIVE_IMAGES], image_size)


def run_exported(path: str | os.PathLike, format: str, batch: np.ndarray) -> np.ndarray:
    """Class probabilities from an exported model, run as a user outside the app would."""
    batch = np.asarray(batch, dtype="float32")
    if format == "keras":
        import keras


        return np.asarray(keras.saving.load_model(path, safe_mode=True).predict(batch, verbose=0))
    if format == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return np.asarray(loaded.serve(tf.constant(batch)))
    if format in ("tflite", "tflite-int8"):
        return _run_tflite(path, batch)
    raise InputError(f"unknown export format {format!r}; expected one of: {', '.join(FORMATS)}.")


def _run_tflite(path, batch: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(input_detail["index"], batch.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], batch.astype(input_detail["dtype"]))
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(output_detail["index"]))
