"""One zip to hand on: the chosen model files, labels.json, MODEL_CARD.md, the snippets, the web page.

    tlcore-<run>/
        MODEL_CARD.md          what the model is, its data, metrics, settings, limits, the parity table
        labels.json            the classes, in the order of the model's outputs
        model.keras, saved_model/, model.tflite, model.int8.tflite, model.onnx   (the chosen ones)
        predict_<format>.py    a script per file: python3 predict_onnx.py photo.jpg
        web/index.html, web/pictures.js   with model.onnx: the model in a web browser

Every file is exported (or reused: an export newer than the model) and
checked (`tlcore.export.parity`) before it goes in, and the bundle is
remembered in `RUN_DIR/export/bundle.json`, so the Export page offers it again
while the model is unchanged.

None of that needs the run's pictures but the check. When they are gone (the
serving guide clears uploads between classes), the bundle is made all the same,
with the last check of each file of this model if one was made, and a note
saying so (`Bundle.note`, in the card and the command's output).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import zipfile
from dataclasses import dataclass

from tlcore.errors import InputError, PicturesGoneError
from tlcore.export.formats import FORMATS, default_export_path, export_format
from tlcore.export.model_card import model_card
from tlcore.export.parity import ParityReport, check_exports, recorded_reports, saved_reports
from tlcore.export.snippets import javascript_snippet, python_snippet, script_name, web_page_files
from tlcore.export.writers import export_run
from tlcore.runs import folder as run_folder

DEFAULT_BUNDLE_FORMATS = ("keras", "tflite", "tflite-int8", "onnx")
BUNDLE_FILE = "bundle.json"


@dataclass(frozen=True)
class Bundle:
    """A zip made by `make_bundle`.

    Attributes:
        path: the zip file.
        formats: the formats inside, in the order chosen.
        reports: each file's parity report, in the same order; without the
            pictures, only the files checked before (see `note`).
        note: "" when every file was checked now or while unchanged; else what
            was not re-checked and why ("not re-checked: the pictures are gone ...").
    """

    path: pathlib.Path
    formats: tuple[str, ...]
    reports: tuple[ParityReport, ...]
    note: str = ""

    def to_dict(self) -> dict:
        return {"path": str(self.path), "formats": list(self.formats), "reports": [r.to_dict() for r in self.reports],
                "note": self.note}


def make_bundle(run_dir: str | os.PathLike, formats: tuple[str, ...] | list[str] = DEFAULT_BUNDLE_FORMATS,
                out: str | os.PathLike | None = None) -> Bundle:
    """Export, check and zip a run's model in the chosen formats.

    Args:
        run_dir: a run folder with a model.
        formats: the formats to include (names from `tlcore.export.FORMATS`).
        out: the zip to write; defaults to `RUN_DIR/export/tlcore-<run>.zip`.

    Returns:
        The `Bundle`, with the parity report of every file in it.

    Raises:
        InputError: no or unknown formats, a run without a model, or an export
            tool not installed. Pictures that are gone are not an error: the
            bundle says which files were not re-checked.

    Example:
        >>> bundle = make_bundle(run_dir, ["tflite", "onnx"])
        >>> [report.agreement for report in bundle.reports]
        [1.0, 1.0]
    """
    chosen = _chosen_formats(formats)
    run_path = run_folder.require_run_dir(run_dir)
    exports = {format: _fresh_export(run_path, format) for format in chosen}
    kept = saved_reports(run_path)
    to_check = {format: path for format, path in exports.items()
                if format not in kept or pathlib.Path(kept[format].path) != path}
    note = ""
    try:
        checked = {report.format: report for report in check_exports(run_path, to_check)} if to_check else {}
    except PicturesGoneError:
        checked, note = _earlier_checks(run_path, list(to_check))
    reports = tuple(checked.get(format) or kept[format] for format in chosen if format in checked or format in kept)
    target = pathlib.Path(out) if out else run_path / "export" / f"tlcore-{run_path.name}.zip"
    _write_zip(run_path, target, exports, reports, note)
    bundle = Bundle(target, chosen, reports, note)
    run_folder.write_json_atomic(run_path / "export" / BUNDLE_FILE, {
        "model_mtime_ns": (run_path / run_folder.MODEL_FILE).stat().st_mtime_ns, **bundle.to_dict()})
    return bundle


def saved_bundle(run_dir: str | os.PathLike) -> Bundle | None:
    """The last bundle made for this run, if its zip is there and the model has not changed since."""
    run_path = pathlib.Path(run_dir)
    kept = run_folder.read_json(run_path / "export" / BUNDLE_FILE, None)
    try:
        path = pathlib.Path(kept["path"])
        if not path.is_file() or kept["model_mtime_ns"] != (run_path / run_folder.MODEL_FILE).stat().st_mtime_ns:
            return None
        return Bundle(path, tuple(kept["formats"]), tuple(ParityReport.from_dict(r) for r in kept["reports"]),
                      str(kept.get("note") or ""))
    except (OSError, KeyError, TypeError):
        return None


def _earlier_checks(run_path: pathlib.Path, formats: list[str]) -> tuple[dict, str]:
    """The last recorded check of each format (marked not re-checked), and the note that says so."""
    recorded = recorded_reports(run_path)
    earlier = {format: dataclasses.replace(recorded[format], rechecked=False) for format in formats if format in recorded}
    parts = [f"{export_format(format).title}: parity from the check of {report.check_date}"
             for format, report in earlier.items()]
    parts += [f"{export_format(format).title}: never checked" for format in formats if format not in earlier]
    return earlier, ("Not re-checked: the pictures are gone (the run's dataset folder was moved or cleared), so "
                     "these files could not be scored against the app again (" + "; ".join(parts) + "). Put the "
                     "pictures back and make the bundle again to check them.")


def _chosen_formats(formats) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(formats or ()))
    if not chosen:
        raise InputError(f"choose at least one format for the bundle: {', '.join(FORMATS)}.")
    for format in chosen:
        export_format(format)
    return chosen


def _fresh_export(run_path: pathlib.Path, format: str) -> pathlib.Path:
    """The format's export in RUN_DIR/export/, made again unless it is newer than the model."""
    path = default_export_path(run_path, format)
    model = run_path / run_folder.MODEL_FILE
    if path.exists() and model.is_file() and path.stat().st_mtime_ns >= model.stat().st_mtime_ns:
        return path
    return export_run(run_path, format, path)


def _write_zip(run_path: pathlib.Path, target: pathlib.Path, exports: dict[str, pathlib.Path],
               reports: tuple[ParityReport, ...], note: str = "") -> None:
    from tlcore.training.config import TrainConfig

    size = TrainConfig.from_run(run_path).resolved_image_size
    top = f"tlcore-{run_path.name}"
    texts = {"MODEL_CARD.md": model_card(run_path, list(reports), formats=list(exports), note=note),
             "labels.json": json.dumps(run_folder.run_labels(run_path), ensure_ascii=False, indent=2)}
    for format in exports:
        texts[script_name(format)] = python_snippet(format, size)
    if "onnx" in exports:
        texts.update(web_page_files(size, f"{run_path.name}: try the model"))
        texts["web/classify.js"] = javascript_snippet(size)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in texts.items():
            archive.writestr(f"{top}/{name}", text)
        for format, path in exports.items():
            _add_export(archive, f"{top}/{export_format(format).file_name}", path)
    os.replace(temporary, target)


def _add_export(archive: zipfile.ZipFile, name: str, path: pathlib.Path) -> None:
    if not path.is_dir():
        archive.write(path, name)
        return
    for item in sorted(path.rglob("*")):
        if item.is_file() and item.name != run_folder.LABELS_FILE:
            archive.write(item, f"{name}/{item.relative_to(path).as_posix()}")
