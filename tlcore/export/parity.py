"""Proof that an exported file scores like the app's model: the parity check.

The exported file re-scores the run's validation pictures the way a user
outside the app would run it: loaded with its own runtime
(`tlcore.export.runtimes`), each picture prepared by the snippet's code
(`tlcore.export.pictures`) and run on its own. The app's model scores the same
pictures as the app does (`tlcore.results.prediction`). The report gives the
file's accuracy, how often its top class is the app's, the largest difference
in any probability, its size and its median time per picture on this machine,
and lists the pictures where the two disagree. A file that disagrees on more
than 1% of the pictures is flagged.

Reports are kept in `RUN_DIR/export/parity.json`, valid while neither the
model nor the exported file changes, so the Export page can show them again
without measuring again. When the pictures are gone (the dataset folder was
cleared), `recorded_reports` gives the last check of each file of the same
model, marked as not re-checked, for a bundle to carry with that said.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from tlcore.errors import InputError, PicturesGoneError
from tlcore.export import pictures
from tlcore.export.formats import default_export_path, export_format, exported_size
from tlcore.export.runtimes import load_exported, runtime_version
from tlcore.runs import folder as run_folder

MAX_DISAGREEMENT = 0.01  # more than 1% of the pictures answered differently: flagged
PARITY_FILE = "parity.json"
_SPLITS_CHECKED = ("val", "test", "train")  # the first one the run has


@dataclass(frozen=True)
class ParityReport:
    """How one exported file scores against the app's model on the same pictures.

    Attributes:
        format: the export format's name.
        path: the exported file (or folder) that was checked.
        runtime: the package and version that ran it ("onnxruntime 1.32.0").
        split: which of the run's pictures were used ("val", or "test"/"train" for a run without).
        pictures: how many pictures were scored.
        agreement: share of pictures (0-1) whose top class is the app model's.
        accuracy: the file's share of right answers (0-1).
        app_accuracy: the app model's, on the same pictures.
        max_probability_difference: the largest difference in any class's probability.
        size_bytes: the file's size (a folder's: all its files).
        latency_ms: median time to score one prepared picture, on this machine.
        differing: the pictures whose top class differs: file, true class, the
            app's and the file's answer with their probabilities.
        checked_at: when the check ran (seconds since the epoch; None in reports
            kept before this was recorded).
        rechecked: False when this file was not checked itself: the report is the
            last check of an earlier export of the same model, the pictures being
            gone to check this one.
    """

    format: str
    path: str
    runtime: str
    split: str
    pictures: int
    agreement: float
    accuracy: float
    app_accuracy: float
    max_probability_difference: float
    size_bytes: int
    latency_ms: float
    differing: list[dict] = field(default_factory=list)
    checked_at: float | None = None
    rechecked: bool = True

    @property
    def flagged(self) -> bool:
        """True when the file answers differently from the app on more than 1% of the pictures."""
        return 1.0 - self.agreement > MAX_DISAGREEMENT

    @property
    def check_date(self) -> str:
        """When it was checked, for people: "2026-12-07 14:05", or "an earlier date" for old reports."""
        if not isinstance(self.checked_at, (int, float)):
            return "an earlier date"
        return datetime.datetime.fromtimestamp(self.checked_at).strftime("%Y-%m-%d %H:%M")

    def to_dict(self) -> dict:
        return {**asdict(self), "flagged": self.flagged}

    @classmethod
    def from_dict(cls, data: dict) -> "ParityReport":
        """A report from its dict; fields added since a report was kept take their defaults."""
        optional = {f.name for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data or name not in optional})


@dataclass(frozen=True)
class _AppAnswers:
    """The run's pictures, their true classes and the app model's probabilities for them."""

    split: str
    files: list[str]
    truth: np.ndarray
    probabilities: np.ndarray
    labels: list[str]
    image_size: int


def check_exports(run_dir: str | os.PathLike, exports: dict[str, str | os.PathLike]) -> list[ParityReport]:
    """Check several exported files of one run; the app's model scores the pictures once.

    Args:
        run_dir: the run folder the files were exported from.
        exports: {format name: exported path}.

    Returns:
        One `ParityReport` per file, in the order given; each is also saved in
        `RUN_DIR/export/parity.json`.

    Raises:
        PicturesGoneError: the run's pictures are gone (its dataset folder was cleared).
        InputError: an unknown format, a missing file, a run without a model,
            a runtime not installed.
    """
    run_path = run_folder.require_run_dir(run_dir)
    for format, path in exports.items():
        export_format(format)
        if not pathlib.Path(path).exists():
            raise InputError(f"there is no exported {format} file at {str(path)!r}; export it first (`tlcore export`).")
    app = _app_answers(run_path)
    reports = [_check_one(app, format, pathlib.Path(path)) for format, path in exports.items()]
    for report in reports:
        _save_report(run_path, report)
    return reports


def check_export(run_dir: str | os.PathLike, format: str, path: str | os.PathLike | None = None) -> ParityReport:
    """Check one exported file against the app's model (see `check_exports`).

    Args:
        run_dir: the run folder.
        format: the export format's name.
        path: the exported file; defaults to where `export_run` puts it.

    Example:
        >>> report = check_export(run_dir, "onnx", "model.onnx")
        >>> report.agreement, report.flagged
        (1.0, False)
    """
    target = pathlib.Path(path) if path else default_export_path(run_dir, format)
    return check_exports(run_dir, {format: target})[0]


def _app_answers(run_path: pathlib.Path) -> _AppAnswers:
    """The app model's probabilities for the run's validation pictures (or test, or training ones)."""
    from tlcore.results.prediction import load_run_model, prepare_images

    model, labels = load_run_model(run_path)
    split_name, entries = _pictures_to_check(run_path, labels)
    files = [entry[2] for entry in entries]
    truth = np.array([labels.index(entry[1]) for entry in entries], dtype=int)
    image_size = int(model.input_shape[1])
    probabilities = np.asarray(model.predict(prepare_images(files, image_size), verbose=0))
    return _AppAnswers(split_name, files, truth, probabilities, labels, image_size)


def _pictures_to_check(run_path: pathlib.Path, labels: list[str]) -> tuple[str, list]:
    split = run_folder.run_split(run_path)
    for name in _SPLITS_CHECKED:
        listed = [entry for entry in split.get(name, []) if entry[1] in labels]
        present = [entry for entry in listed if os.path.isfile(entry[2])]
        if present:
            return name, present
        if listed:
            raise PicturesGoneError(f"the {name} pictures of run {run_path.name} are gone (e.g. {listed[0][2]}); "
                                    "restore the dataset folder to check an export.")
    raise InputError(f"run {run_path.name} lists no pictures to check an export on (its split.json is empty).")


def _check_one(app: _AppAnswers, format: str, path: pathlib.Path) -> ParityReport:
    run = load_exported(path, format)
    batches = [pictures.prepare_picture(file, app.image_size)[None] for file in app.files]
    run(batches[0])  # the first call sets things up (graphs, memory): not what a picture costs
    outputs, seconds = [], []
    for batch in batches:
        started = time.perf_counter()
        outputs.append(run(batch)[0])
        seconds.append(time.perf_counter() - started)
    probabilities = np.asarray(outputs, dtype="float64")
    ours, theirs = app.probabilities.argmax(axis=1), probabilities.argmax(axis=1)
    return ParityReport(
        format=format,
        path=str(path),
        runtime=runtime_version(format),
        split=app.split,
        pictures=len(app.files),
        agreement=float(np.mean(ours == theirs)),
        accuracy=float(np.mean(theirs == app.truth)),
        app_accuracy=float(np.mean(ours == app.truth)),
        max_probability_difference=float(np.abs(probabilities - app.probabilities).max()),
        size_bytes=exported_size(path),
        latency_ms=1000 * statistics.median(seconds),
        differing=[_difference(app, index, probabilities[index]) for index in np.flatnonzero(ours != theirs)],
        checked_at=time.time(),
    )


def _difference(app: _AppAnswers, index: int, exported: np.ndarray) -> dict:
    ours, theirs = int(app.probabilities[index].argmax()), int(exported.argmax())
    return {
        "file": app.files[index],
        "true": app.labels[app.truth[index]],
        "app": app.labels[ours],
        "app_probability": float(app.probabilities[index, ours]),
        "exported": app.labels[theirs],
        "exported_probability": float(exported[theirs]),
    }


def _stamp(run_path: pathlib.Path, path: pathlib.Path) -> list[int]:
    """What a report is valid for: the model's and the exported file's modification times."""
    return [(run_path / run_folder.MODEL_FILE).stat().st_mtime_ns, path.stat().st_mtime_ns]


def _save_report(run_path: pathlib.Path, report: ParityReport) -> None:
    target = run_path / "export" / PARITY_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    kept = run_folder.read_json(target, {}) or {}
    kept[report.format] = {"stamp": _stamp(run_path, pathlib.Path(report.path)), "report": report.to_dict()}
    run_folder.write_json_atomic(target, kept)


def saved_reports(run_dir: str | os.PathLike) -> dict[str, ParityReport]:
    """The parity reports kept for a run that are still valid: {format: report}."""
    run_path = pathlib.Path(run_dir)
    kept = run_folder.read_json(run_path / "export" / PARITY_FILE, {}) or {}
    valid = {}
    for format, entry in kept.items():
        try:
            report = ParityReport.from_dict(entry["report"])
            if entry["stamp"] == _stamp(run_path, pathlib.Path(report.path)):
                valid[format] = report
        except (OSError, KeyError, TypeError):
            continue
    return valid


def recorded_reports(run_dir: str | os.PathLike) -> dict[str, ParityReport]:
    """The last check of each format for the run's current model: {format: report}.

    A report whose exported file has changed since (exported again) comes
    with `rechecked=False`: it speaks for the same model, not for this very
    file. Reports of an earlier model (training continued since) are left out.
    """
    run_path = pathlib.Path(run_dir)
    kept = run_folder.read_json(run_path / "export" / PARITY_FILE, {}) or {}
    recorded = {}
    for format, entry in (kept.items() if isinstance(kept, dict) else ()):
        try:
            report = ParityReport.from_dict(entry["report"])
            model_stamp = (run_path / run_folder.MODEL_FILE).stat().st_mtime_ns
            if entry["stamp"][0] != model_stamp:
                continue
            current = pathlib.Path(report.path).exists() and entry["stamp"] == _stamp(run_path, pathlib.Path(report.path))
            recorded[format] = report if current else dataclasses.replace(report, rechecked=False)
        except (OSError, KeyError, TypeError, IndexError):
            continue
    return recorded
