"""Write a run's model in each export format, with `labels.json` beside it.

Every export takes raw RGB pictures (0-255) of the run's picture size, as
`tlcore.export.pictures` prepares them: scaling for the backbone is inside
the model; augmentation layers are left out.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
import warnings

from tlcore.errors import InputError
from tlcore.export.formats import default_export_path, export_format
from tlcore.runs import folder as run_folder


def export_run(run_dir: str | os.PathLike, format: str = "keras", out: str | os.PathLike | None = None) -> pathlib.Path:
    """Export a run's best model.

    Args:
        run_dir: a run folder with a model.keras.
        format: one of `tlcore.export.FORMATS`: "keras", "savedmodel",
            "tflite", "tflite-int8", "onnx".
        out: where to write (a file, or a folder for savedmodel; an existing
            folder for the others gets the format's file name inside it).
            Defaults to `RUN_DIR/export/`.

    Returns:
        The path written. `labels.json` is written beside it (inside the
        folder for savedmodel).

    Raises:
        InputError: an unknown format, a run without a model, or a converter not installed.

    Example:
        >>> export_run("runs/20260101-flowers", "onnx", "model.onnx")
    """
    spec = export_format(format)
    from tlcore.results.prediction import load_run_model

    run_path = run_folder.require_run_dir(run_dir)
    if out is None:
        _check_space_for_export(run_path, spec.title)
    model, labels = load_run_model(run_path)
    target = pathlib.Path(out) if out else default_export_path(run_path, format)
    if target.is_dir() and not spec.is_folder:
        target = target / spec.file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    if format == "keras":
        _copy_atomic(run_path / run_folder.MODEL_FILE, target)
    elif format == "savedmodel":
        _export_saved_model(model, target)
    elif format == "onnx":
        _export_onnx(model, target)
    else:
        _export_tflite(model, target, eight_bit=spec.quantised)
    labels_path = (target if spec.is_folder else target.parent) / run_folder.LABELS_FILE
    labels_path.write_text(json.dumps(labels, ensure_ascii=False, indent=2), encoding="utf-8")
    return target


def _check_space_for_export(run_path: pathlib.Path, title: str) -> None:
    """Refuse an export into the user's space that would take them past their limit (its size: about the model's)."""
    from tlcore.classroom import quotas

    model_file = run_path / run_folder.MODEL_FILE
    size = model_file.stat().st_size if model_file.is_file() else 0
    quotas.check_space(quotas.disk_bytes(size), f"exporting the model as {title}")


def _copy_atomic(source: pathlib.Path, target: pathlib.Path) -> None:
    temporary = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def _write_atomic(payload: bytes, target: pathlib.Path) -> None:
    temporary = target.with_name(f".{target.name}.partial")
    temporary.write_bytes(payload)
    os.replace(temporary, target)


@contextlib.contextmanager
def _converter_quiet():
    """tf2onnx and the TFLite converter warn about NumPy and TensorFlow internals; none of it is for the user.

    (Their native output on stderr is silenced by the command line, not here: in
    the app's server that would silence every thread's log for as long.)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _export_saved_model(model, target: pathlib.Path) -> None:
    from tlcore.model.build import inference_model

    staging = pathlib.Path(tempfile.mkdtemp(prefix=".saved_model.", dir=target.parent))
    try:
        with _converter_quiet():
            inference_model(model).export(str(staging / "model"), format="tf_saved_model", verbose=False)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / "model", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_onnx(model, target: pathlib.Path) -> None:
    """Keras's own ONNX export (tf2onnx underneath), batch size left free."""
    for package in ("tf2onnx", "onnx"):
        _require(package, "ONNX export")
    import tensorflow as tf

    from tlcore.model.build import inference_model

    size = model.input_shape[1]
    signature = [tf.TensorSpec((None, size, size, 3), tf.float32, name="image")]
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".onnx.") as folder:
        staging = pathlib.Path(folder) / "model.onnx"
        with _converter_quiet():
            inference_model(model).export(str(staging), format="onnx", input_signature=signature, verbose=False)
        os.replace(staging, target)


def _require(package: str, purpose: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise InputError(
            f"{purpose} needs the Python package {package!r}, which is not installed; "
            'install the export tools with `pip install "tlcore[export]"` (or `pip install ' + package + "`)."
        )


def _export_tflite(model, target: pathlib.Path, eight_bit: bool) -> None:
    """A LiteRT file: float32, or with 8-bit weights (dynamic-range quantization).

    The 8-bit file keeps every weight in 8 bits (a quarter of the size) and
    computes in float, quantizing activations on the fly. Full-integer
    quantization (8-bit activations too, calibrated on training pictures) was
    the first choice, but on these thin MobileNets its depthwise convolutions
    changed the answer on 7 % of the flowers5 validation photos (93.3 %
    agreement against 98.3 % for this file, on the same run), so it is not
    offered: a file that answers differently from the app is not the app's model.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        saved = pathlib.Path(folder) / "saved_model"
        _export_saved_model(model, saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if eight_bit:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: weights only
        with _converter_quiet():
            payload = converter.convert()
    _write_atomic(payload, target)
