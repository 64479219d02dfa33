"""Classify new images with a run's model: top-k classes with probabilities."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
import weakref
import zipfile
from dataclasses import dataclass

import numpy as np

from tlcore import paths
from tlcore.data import images
from tlcore.errors import DamagedRunError, InputError
from tlcore.results import doubt as doubt_rule
from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record
from tlcore.training import pipeline


@dataclass(frozen=True)
class Prediction:
    file: str
    top: list[tuple[str, float]]  # (class, probability), most likely first
    doubt: object = None  # a `doubt.Doubt`: whether the picture looks like none of the classes

    def to_dict(self) -> dict:
        data = {"file": self.file, "top": [{"class": name, "probability": p} for name, p in self.top]}
        if self.doubt is not None:
            data["unfamiliar"] = self.doubt.unfamiliar
            data["doubt"] = self.doubt.to_dict()
        return data


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
    labels = run_folder.read_run_file(path, run_folder.LABELS_FILE, list, None)
    if labels and not all(isinstance(label, str) for label in labels):
        raise DamagedRunError(path, run_folder.LABELS_FILE, "lists classes that are not text")
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


def prepare_images(files: list[str | os.PathLike], image_size: int, shown: list[str] | None = None) -> np.ndarray:
    """Check and decode image files exactly as training did.

    Args:
        files: the image files.
        image_size: the model's square input size.
        shown: what to call each file in a message, when not its path: an
            upload's own name rather than the temporary file it was saved in.

    Raises:
        InputError: a file is missing or is not an image (names the file and why).
    """
    decodable = []
    for file, name in zip(files, shown or files, strict=True):
        check = images.check_image(file)
        if not check.ok:
            raise InputError(f"cannot classify {str(name)!r}: {check.reason}. Give a JPEG, PNG, GIF, BMP, TIFF, WebP, HEIC or AVIF image.")
        decodable.append(str(images.convert_to_png(file, paths.converted_images_dir(), image_size=image_size))
                         if check.needs_conversion else str(file))
    return pipeline.load_images(decodable, image_size)


def predict_arrays(model, labels: list[str], batch: np.ndarray, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """Top-k (class, probability) for each image in a prepared batch."""
    return _ranked(np.asarray(model.predict(batch, verbose=0)), labels, top_k)


def _ranked(probabilities: np.ndarray, labels: list[str], top_k: int) -> list[list[tuple[str, float]]]:
    top_k = max(1, min(top_k, len(labels)))
    result = []
    for row in probabilities:
        order = np.argsort(-row)[:top_k]
        result.append([(labels[i], float(row[i])) for i in order])
    return result


_FEATURE_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _features_and_probabilities_model(model):
    """raw image -> [pooled features, probabilities], sharing the model's layers (built once per model)."""
    import keras

    from tlcore.model.build import POOL_LAYER

    try:
        return _FEATURE_MODELS[model]
    except (KeyError, TypeError):
        pass
    built = keras.Model(model.inputs, [model.get_layer(POOL_LAYER).output, model.outputs[0]], name=model.name + "_pooled")
    with contextlib.suppress(TypeError):
        _FEATURE_MODELS[model] = built
    return built


def pooled_features(model, batch: np.ndarray) -> np.ndarray:
    """The pooled backbone features (what the classifier sees) of a prepared batch, (N, channels)."""
    return np.asarray(_features_and_probabilities_model(model).predict(batch, verbose=0)[0])


def doubt_reference(run_dir, model, labels: list[str]) -> tuple[dict, np.ndarray] | None:
    """The run's reference for the doubt rule (`tlcore.results.doubt`): kept in the run folder, else computed and kept.

    Returns:
        (facts with the threshold, the reference pictures' unit features), or
        None when the run lists fewer than two training pictures that are still there.
    """
    path = pathlib.Path(run_dir)
    model_file = path / run_folder.MODEL_FILE
    stamp = model_file.stat().st_mtime_ns if model_file.exists() else 0
    wanted = {"version": doubt_rule.REFERENCE_VERSION, "model_stamp": stamp, "quantile": doubt_rule.DISTANCE_QUANTILE,
              "neighbours": doubt_rule.NEIGHBOURS}
    facts = run_folder.read_json(path / doubt_rule.DOUBT_FILE, None)
    if isinstance(facts, dict) and all(facts.get(key) == value for key, value in wanted.items()):
        with contextlib.suppress(OSError, ValueError):
            return facts, np.load(path / doubt_rule.DOUBT_FEATURES_FILE, allow_pickle=False)
    files, _ = doubt_rule.reference_files(path, labels)
    if len(files) < 2:
        return None
    facts, features = doubt_rule.build_reference(pooled_features(model, prepare_images(files, model.input_shape[1])), labels)
    facts["model_stamp"] = stamp
    with contextlib.suppress(OSError):  # keeping it is a shortcut; the reference is still good for this call
        np.save(path / doubt_rule.DOUBT_FEATURES_FILE, features, allow_pickle=False)
        run_folder.write_json_atomic(path / doubt_rule.DOUBT_FILE, facts)  # last: its presence says both are complete
    return facts, features


def predict_files(run_dir: str | os.PathLike, files: list[str | os.PathLike], top_k: int = 3,
                  with_doubt: bool = True) -> list[Prediction]:
    """Classify image files with a run's best model, saying when a picture looks like none of the classes.

    Args:
        run_dir: a run folder with a model.keras.
        files: image files, any format the audit accepts.
        top_k: how many classes to return per image.
        with_doubt: also apply the doubt rule (`tlcore.results.doubt`); the
            first time for a run, its reference is computed from training pictures.

    Returns:
        One `Prediction` per file, in order.
    """
    if not files:
        raise InputError("no images given; name one or more image files to classify.")
    model, labels = load_run_model(run_dir)
    batch = prepare_images(files, model.input_shape[1])
    pooled, probabilities = (np.asarray(part) for part in _features_and_probabilities_model(model).predict(batch, verbose=0))
    reference = doubt_reference(run_dir, model, labels) if with_doubt else None
    doubts = doubt_rule.assess(*reference, pooled) if reference else [None] * len(files)
    ranked = _ranked(probabilities, labels, top_k)
    return [Prediction(str(file), top, doubt) for file, top, doubt in zip(files, ranked, doubts, strict=True)]


def predict_bytes(model, labels: list[str], data: bytes, top_k: int = 3, name: str = "upload") -> list[tuple[str, float]]:
    """Classify one uploaded image given as bytes (the app's upload and camera); `name` is what messages call it."""
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "upload"
        path.write_bytes(data)
        batch = prepare_images([path], model.input_shape[1], shown=[name])
    return predict_arrays(model, labels, batch, top_k)[0]


def shape_warning(name: str, size: tuple[int, int] | None) -> str | None:
    """Why to doubt the answer for a picture of this shape; None for an ordinary one.

    The model sees every picture squeezed into a square, so a picture far wider
    than tall (or taller than wide) reaches it distorted, as the audit warns
    for training pictures (`tlcore.data.findings.is_stretched`).

    Args:
        name: the picture's name as the user gave it.
        size: its (width, height), e.g. from `tlcore.picture_size`.
    """
    from tlcore.data.findings import EXTREME_ASPECT_RATIO, is_stretched

    if size is None or not is_stretched(*size):
        return None
    width, height = size
    return (f"{name} is {width}×{height} pixels: the model squeezes every picture into a square, so this one reaches "
            f"it badly distorted and its answer means little. Crop it around the thing to classify (sides within "
            f"{EXTREME_ASPECT_RATIO:.0f} times each other).")
