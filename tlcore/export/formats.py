"""The export formats: what each file is for, what it is called, and which runtime runs it.

One table, so the writers, the runtimes, the snippets, the parity check and
the Export page all name a format the same way.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from tlcore.errors import InputError


@dataclass(frozen=True)
class ExportFormat:
    """One way to take a model out of the app.

    Attributes:
        name: the format's name in the CLI and the API ("onnx").
        title: how the app says it ("ONNX (.onnx)").
        file_name: the exported file's (or, for SavedModel, folder's) name.
        purpose: one sentence saying where it runs, for people.
        runtime: the Python package a user runs it with.
        pip: what to `pip install` to run it outside the app.
    """

    name: str
    title: str
    file_name: str
    purpose: str
    runtime: str
    pip: str

    @property
    def is_folder(self) -> bool:
        return self.name == "savedmodel"

    @property
    def quantised(self) -> bool:
        return self.name == "tflite-int8"


_TABLE = (
    ExportFormat("keras", "Keras (.keras)", "model.keras",
                 "For Python with Keras: load it to keep training it, or to predict.", "keras", "keras tensorflow pillow"),
    ExportFormat("savedmodel", "TensorFlow SavedModel (folder)", "saved_model",
                 "For TensorFlow Serving and other TensorFlow tools.", "tensorflow", "tensorflow pillow"),
    ExportFormat("tflite", "TensorFlow Lite / LiteRT (.tflite)", "model.tflite",
                 "For phones and small computers such as a Raspberry Pi.", "ai_edge_litert", "ai-edge-litert pillow"),
    ExportFormat("tflite-int8", "TensorFlow Lite / LiteRT, 8-bit (.int8.tflite)", "model.int8.tflite",
                 "About 3 times smaller (its weights in 8 bits), usually almost as accurate; used exactly like "
                 "the TensorFlow Lite file (it takes and gives ordinary numbers). Not for integer-only chips "
                 "(microcontrollers, Edge TPU).", "ai_edge_litert",
                 "ai-edge-litert pillow"),
    ExportFormat("onnx", "ONNX (.onnx)", "model.onnx",
                 "For web pages (ONNX Runtime Web: the bundle has a page that runs it), C#, Java, C++ and Python.",
                 "onnxruntime", "onnxruntime pillow"),
)

FORMATS = tuple(item.name for item in _TABLE)
EXPORT_FORMATS = FORMATS  # its name in the public API (tlcore.EXPORT_FORMATS)
_BY_NAME = {item.name: item for item in _TABLE}


def export_format(name: str) -> ExportFormat:
    """The format called `name`.

    Raises:
        InputError: an unknown name (the message lists the formats).
    """
    if name not in _BY_NAME:
        raise InputError(f"unknown export format {name!r}; expected one of: {', '.join(FORMATS)}.")
    return _BY_NAME[name]


def export_formats() -> list[ExportFormat]:
    """Every format, in the order the app lists them."""
    return list(_TABLE)


def default_export_path(run_dir: str | pathlib.Path, name: str) -> pathlib.Path:
    """Where a format is exported when no place is given: `RUN_DIR/export/<file name>`."""
    return pathlib.Path(run_dir) / "export" / export_format(name).file_name


def exported_size(path: str | pathlib.Path) -> int:
    """Bytes of an exported file, or of every file in an exported folder."""
    path = pathlib.Path(path)
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size
