"""Run an exported file the way a user outside the app would: with that format's own runtime.

- keras: `keras.saving.load_model(path, safe_mode=True)` and `predict_on_batch`;
- savedmodel: `tf.saved_model.load(path).serve`;
- tflite, tflite-int8: the LiteRT interpreter (`ai_edge_litert`), which
  replaces TensorFlow's deprecated `tf.lite.Interpreter`;
- onnx: ONNX Runtime (`onnxruntime`) on the CPU.

These are the calls the snippets in `tlcore.export.snippets` make.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from tlcore.errors import InputError
from tlcore.export.formats import export_format

Runner = Callable[[np.ndarray], np.ndarray]  # float32 batch (N, size, size, 3) -> probabilities (N, classes)


def load_exported(path: str | os.PathLike, format: str) -> Runner:
    """Load an exported file with its runtime.

    Args:
        path: the exported file (or SavedModel folder).
        format: its format's name.

    Returns:
        A function from a float32 batch of prepared pictures to class probabilities.

    Raises:
        InputError: an unknown format, or its runtime is not installed.
    """
    spec = export_format(format)
    loaders = {"keras": _keras, "tensorflow": _saved_model, "ai_edge_litert": _litert, "onnxruntime": _onnx}
    return loaders[spec.runtime](str(path))


def run_exported(path: str | os.PathLike, format: str, batch: np.ndarray) -> np.ndarray:
    """Class probabilities from an exported file for a batch of prepared pictures."""
    return load_exported(path, format)(np.asarray(batch, dtype="float32"))


def runtime_version(format: str) -> str:
    """The runtime package and its version, as the parity report names it ("onnxruntime 1.32.0")."""
    from importlib import metadata

    package = {"keras": "keras", "tensorflow": "tensorflow", "ai_edge_litert": "ai-edge-litert",
               "onnxruntime": "onnxruntime"}[export_format(format).runtime]
    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return package


def _keras(path: str) -> Runner:
    import keras

    model = keras.saving.load_model(path, safe_mode=True)
    # One compiled step per batch: `predict` sets up a dataset per call (some 130 ms for one picture on a
    # 2-core CPU), and calling the model runs it eagerly (some 230 ms); this takes 25 ms.
    return lambda batch: np.asarray(model.predict_on_batch(batch))


def _saved_model(path: str) -> Runner:
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    return lambda batch: np.asarray(loaded.serve(tf.constant(batch)))


def _litert(path: str) -> Runner:
    interpreter_module = _import("ai_edge_litert.interpreter", "ai-edge-litert", "TensorFlow Lite files")
    interpreter = interpreter_module.Interpreter(model_path=path)
    given, result = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    shapes = {}

    def run(batch: np.ndarray) -> np.ndarray:
        if shapes.get("now") != batch.shape:  # a new batch size: resize once, not per call
            interpreter.resize_tensor_input(given["index"], batch.shape)
            interpreter.allocate_tensors()
            shapes["now"] = batch.shape
        interpreter.set_tensor(given["index"], batch.astype(given["dtype"]))
        interpreter.invoke()
        return np.array(interpreter.get_tensor(result["index"]))

    return run


def _onnx(path: str) -> Runner:
    onnxruntime = _import("onnxruntime", "onnxruntime", "ONNX files")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: np.asarray(session.run(None, {name: batch})[0])


def _import(module: str, package: str, purpose: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"running {purpose} needs the Python package {package!r}, which is not installed; "
            f'install the export tools with `pip install "tlcore[export]"` (or `pip install {package}`).'
        ) from None
