"""Classify new images with a run's model: top-k classes with probabilities."""

from __future__ import annotations

import os
import pathlib
import tempfile
import zipfile
from dataclasses import dataclass

import numpy as np

from tlcore import paths
from tlcore.data import images
from tlcore.errors import InputError
from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record
from tlcore.training import pipeline


@dataclass(frozen=True)
class Prediction:
    file: str
    top: list[tuple[str, float]]  # (class, probability), most likely first

    def to_dict(self) -> dict:
        return {"file": self.file, "top": [{"class": name, "probability": p} for name, p in self.top]}


def load_run_model(run_dir: str | os.PathLike):
    """Load a run's model.keras safely (no arbitrary code) with its labels."""


    path = run_folder.require_run_dir(run_dir)
    model_path = path / run_folder.MODEL_FILE
    if not model_path.is_file():
        status = run_record.read_status(path)
        raise InputError(
            f"run {path.name} has no model yet (its status is {status.get('state')!r}); "
            "wait for the first epoch to finish, or pick a run that has one (`tlcore runs`)."
        )
    model = load_model_safely(model_path, f"run {path.name}")
    labels = run_folder.read_json(path / run_folder.LABELS_FILE, None)
    if not labels:
        raise InputError(f"run {path.name} has no labels.json; the run folder is incomplete.")
    return model, labels


def load_model_safely(model_path: pathlib.Path, shown: str):
    """Load a .keras file with Keras's safe mode, which refuses to run code stored in a file.

    Raises:
        InputError: the file holds code (a Lambda layer or a custom object)
            that safe mode refuses, or it is not a Keras model file at all.
    """
    import keras

    try:
        return keras.saving.load_model(model_path, safe_mode=True)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise InputError(
                f"the model file of {shown} contains code (e.g. a Lambda layer), which tlcore never runs from a file, "
                "for safety; train the model again with tlcore, or load it yourself if you trust where it came from."
            ) from None
        raise InputError(f"the model file of {shown} cannot be read as a Keras model ({str(error)[:200]}); train it again.") from None
    except (OSError, zipfile.BadZipFile) as error:
        raise InputError(f"the model file of {shown} is damaged or incomplete ({error}); train it again.") from None


def prepare_images(files: list[str | os.PathLike], image_size: int) -> np.ndarray:
    """Check and decode image files exactly as training did.

    Raises:
        InputError: a file is missing or is not an image (names the file and why).
    """
    decodable = []
    for file in files:
        check = images.check_image(file)
        if not check.ok:
            raise InputError(f"cannot classify {str(file)!r}: {check.reason}. Give a JPEG, PNG, GIF, BMP, TIFF or WebP image.")
        decodable.append(str(images.convert_to_png(file, paths.converted_images_dir())) if check.needs_conversion else str(file))
    return pipeline.load_images(decodable, image_size)


def predict_arrays(model, labels: list[str], batch: np.ndarray, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """Top-k (class, probability) for each image in a prepared batch."""
    probabilities = np.asarray(model.predict(batch, verbose=0))
    top_k = max(1, min(top_k, len(labels)))
    result = []
    for row in probabilities:
        order = np.argsort(-row)[:top_k]
        result.append([(labels[i], float(row[i])) for i in order])
    return result


def predict_files(run_dir: str | os.PathLike, files: list[str | os.PathLike], top_k: int = 3) -> list[Prediction]:
    """Classify image files with a run's best model.

    Args:
        run_dir: a run folder with a model.keras.
        files: image files, any format the audit accepts.
        top_k: how many classes to return per image.

    Returns:
        One `Prediction` per file, in order.
    """
    if not files:
        raise InputError("no images given; name one or more image files to classify.")
    model, labels = load_run_model(run_dir)
    batch = prepare_images(files, model.input_shape[1])
    return [Prediction(str(file), top) for file, top in zip(files, predict_arrays(model, labels, batch, top_k), strict=False)]


def predict_bytes(model, labels: list[str], data: bytes, top_k: int = 3) -> list[tuple[str, float]]:
    """Classify one uploaded image given as bytes (the app's upload and camera)."""
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "upload"
        path.write_bytes(data)
        batch = prepare_images([path], model.input_shape[1])
    return predict_arrays(model, labels, batch, top_k)[0]
