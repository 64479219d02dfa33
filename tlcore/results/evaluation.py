"""Measure a trained classifier: accuracy, loss, per-class metrics, confusions, mistakes.

The metric arithmetic is plain NumPy on (true labels, predicted probabilities),
so it is the same whether the probabilities came from the full model on images
or from the trained head on cached features, and it is easy to test by hand.
"""

from __future__ import annotations

import pathlib

import numpy as np

from tlcore.errors import DamagedRunError
from tlcore.runs import folder as run_folder

MAX_MISTAKES_LISTED = 200


def classification_report(
    true_labels: np.ndarray, probabilities: np.ndarray, class_names: list[str], files: list[str] | None = None
) -> dict:
    """Accuracy, loss, per-class precision/recall/F1, confusion matrix, mistakes.

    Args:
        true_labels: integer class per image, shape (N,).
        probabilities: predicted probabilities, shape (N, classes).
        class_names: names in output order.
        files: the image files, in the same order, to list the mistakes.

    Returns:
        A JSON-friendly dict. `confusion[i][j]` counts images of class i
        predicted as class j. `pictures` lists every image (file, true and
        predicted class, confidence) when `files` is given, so any cell of the
        matrix can be shown; `mistakes` the wrong ones, most confident first.
    """
    true_labels = np.asarray(true_labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    count = len(true_labels)
    num_classes = len(class_names)
    predicted = probabilities.argmax(axis=1) if count else np.zeros(0, dtype=int)
    confusion = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(confusion, (true_labels, predicted), 1)
    per_class = []
    for index, name in enumerate(class_names):
        true_positive = confusion[index, index]
        predicted_total = confusion[:, index].sum()
        actual_total = confusion[index, :].sum()
        precision = true_positive / predicted_total if predicted_total else 0.0
        recall = true_positive / actual_total if actual_total else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {"class": name, "precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(actual_total)}
        )
    picked = probabilities[np.arange(count), true_labels] if count else np.zeros(0)
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0)))) if count else None
    rows = [
        {"file": files[index] if files else None, "true": class_names[true_labels[index]],
         "predicted": class_names[predicted[index]], "confidence": float(probabilities[index, predicted[index]])}
        for index in range(count)
    ]
    mistakes = sorted((row for row in rows if row["true"] != row["predicted"]), key=lambda item: -item["confidence"])
    pictures = rows if files else []
    supported = [row for row in per_class if row["support"]]
    return {
        "images": count,
        "accuracy": float((predicted == true_labels).mean()) if count else None,
        "loss": loss,
        "macro_f1": float(np.mean([row["f1"] for row in supported])) if supported else None,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
        "mistakes": mistakes[:MAX_MISTAKES_LISTED],
        "mistakes_total": len(mistakes),
        "pictures": pictures,
    }


def cell_pictures(report: dict, cells: list[tuple[str, str]] | None = None) -> list[dict]:
    """The pictures of some cells of the confusion matrix, most confident first.

    Args:
        report: a `classification_report`.
        cells: (true class, predicted class) pairs; None or empty means every mistake.

    Returns:
        Rows {"file", "true", "predicted", "confidence"}. A report written
        before pictures were listed has only its mistakes, so a diagonal cell
        of such a report has none.
    """
    rows = report.get("pictures") or report.get("mistakes") or []
    if cells:
        wanted = set(cells)
        chosen = [row for row in rows if (row["true"], row["predicted"]) in wanted]
    else:
        chosen = [row for row in rows if row["true"] != row["predicted"]]
    return sorted(chosen, key=lambda row: (-row["confidence"], row["file"] or ""))


def write_evaluation(run_dir: pathlib.Path, reports: dict[str, dict]) -> dict:
    """Save {"val": report, "test": report} as evaluation.json."""
    run_folder.write_json_atomic(pathlib.Path(run_dir) / run_folder.EVALUATION_FILE, reports)
    return reports


_NUMBER_OR_NONE = {"type": ["number", "null"]}
_PICTURE_ROWS = {"type": "array", "items": {
    "type": "object", "required": ["true", "predicted"],
    "properties": {"file": {"type": ["string", "null"]}, "true": {"type": "string"}, "predicted": {"type": "string"},
                   "confidence": _NUMBER_OR_NONE}}}
# What `classification_report` writes, as far as the pages and the model card read it.
REPORT_SCHEMA = {
    "type": "object",
    "required": ["images", "accuracy", "per_class", "confusion", "class_names"],
    "properties": {
        "images": {"type": "integer", "minimum": 0},
        "accuracy": _NUMBER_OR_NONE, "loss": _NUMBER_OR_NONE, "macro_f1": _NUMBER_OR_NONE,
        "per_class": {"type": "array", "items": {
            "type": "object", "required": ["class", "precision", "recall", "f1", "support"],
            "properties": {"class": {"type": "string"}, "precision": {"type": "number"}, "recall": {"type": "number"},
                           "f1": {"type": "number"}, "support": {"type": "integer", "minimum": 0}}}},
        "confusion": {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
        "class_names": {"type": "array", "items": {"type": "string"}},
        "mistakes": _PICTURE_ROWS, "pictures": _PICTURE_ROWS, "mistakes_total": {"type": "integer"},
    },
}
_MEASURE_AGAIN = "Measure the model again (Evaluate page, or `tlcore evaluate --recompute`) to replace it"
EVALUATION_SCHEMA = {"type": "object", "properties": {"val": REPORT_SCHEMA, "test": REPORT_SCHEMA}}


def read_evaluation(run_dir) -> dict | None:
    """The run's saved evaluation.json ({"val": report, "test": report}), or None before it was measured.

    Raises:
        DamagedRunError: the file is there but is not a report tlcore wrote
            (not JSON, or a field of the wrong kind); `evaluate_run(recompute=True)`
            measures the model again and replaces it.
    """
    import jsonschema

    try:
        reports = run_folder.read_run_file(run_dir, run_folder.EVALUATION_FILE, dict, None)
    except DamagedRunError as error:
        raise DamagedRunError(error.run_dir, error.file_name, error.reason, fix=_MEASURE_AGAIN) from None
    if reports is None:
        return None
    problem = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(EVALUATION_SCHEMA).iter_errors(reports))
    if problem is not None:
        where = "/".join(str(part) for part in problem.absolute_path) or "the top level"
        raise DamagedRunError(pathlib.Path(run_dir), run_folder.EVALUATION_FILE,
                              f"is not a report tlcore wrote (at {where}: {problem.message[:120]})", fix=_MEASURE_AGAIN)
    return reports


def evaluate_run(run_dir, recompute: bool = False) -> dict:
    """The run's evaluation report; computed from its model if not saved yet.

    Args:
        run_dir: a run folder.
        recompute: ignore a saved evaluation.json and measure again.

    Returns:
        {"val": report, "test": report (if the data had a test/ folder)}.
    """
    from tlcore.results.prediction import load_run_model, prepare_images

    path = run_folder.require_run_dir(run_dir)
    saved = None if recompute else read_evaluation(path)
    if saved:
        return saved
    model, labels = load_run_model(path)
    split = run_folder.run_split(path)
    index = {name: i for i, name in enumerate(labels)}
    reports = {}
    for name in ("val", "test"):
        entries = [entry for entry in split.get(name, []) if entry[1] in index]
        if not entries:
            continue
        missing = [entry[2] for entry in entries if not pathlib.Path(entry[2]).is_file()]
        if missing:
            from tlcore.errors import InputError

            raise InputError(
                f"{len(missing)} {name} image(s) of run {path.name} are gone (e.g. {missing[0]}); "
                "restore the dataset folder to evaluate again."
            )
        batch = prepare_images([entry[2] for entry in entries], model.input_shape[1])
        probabilities = model.predict(batch, verbose=0)
        reports[name] = classification_report(
            [index[entry[1]] for entry in entries], probabilities, labels, [entry[2] for entry in entries]
        )
    return write_evaluation(path, reports)
