"""Two runs side by side: before and after fixing the data, picture by picture.

After "Train again with these fixes", the user wants to know whether the fixes
helped: the accuracy of each run, how each class changed, which of the old
mistakes are now right, which pictures are newly wrong, and which pictures are
no longer checked (left out, or moved by the split). Pictures are matched by
file, so a picture moved to another class counts as fixed when the new run
gives it its new class.
"""

from __future__ import annotations

import pathlib

from tlcore.errors import InputError
from tlcore.results.evaluation import read_evaluation
from tlcore.runs import folder as run_folder


def _outcomes(run_dir: pathlib.Path, report: dict, split: str) -> dict[str, dict]:
    """{file: {"true", "predicted", "confidence"}} for every checked picture of a run."""
    if report.get("pictures"):
        return {row["file"]: row for row in report["pictures"]}
    # Reports written before every picture was listed: the split and the mistakes tell the same.
    wrong = {row["file"]: row for row in report.get("mistakes", [])}
    entries = run_folder.run_split(run_dir).get(split, [])
    return {entry[2]: wrong.get(entry[2], {"file": entry[2], "true": entry[1], "predicted": entry[1], "confidence": None})
            for entry in entries}


def _report(run_dir: pathlib.Path, split: str) -> dict:
    reports = read_evaluation(run_dir) or {}
    if split not in reports:
        raise InputError(f"run {run_dir.name} has no {split} evaluation yet; wait for it to finish "
                         f"(or measure it: `tlcore evaluate {run_dir}`), then compare.")
    return reports[split]


def _row(file: str, before: dict | None, after: dict | None) -> dict:
    return {
        "file": file,
        "true_before": before["true"] if before else None, "said_before": before["predicted"] if before else None,
        "true_after": after["true"] if after else None, "said_after": after["predicted"] if after else None,
        "confidence_after": after.get("confidence") if after else None,
    }


def _per_class(before: dict, after: dict) -> list[dict]:
    rows_before = {row["class"]: row for row in before["per_class"]}
    rows_after = {row["class"]: row for row in after["per_class"]}
    rows = []
    for name in sorted(set(rows_before) | set(rows_after)):
        old, new = rows_before.get(name, {}), rows_after.get(name, {})
        rows.append({
            "class": name,
            "recall_before": old.get("recall"), "recall_after": new.get("recall"),
            "f1_before": old.get("f1"), "f1_after": new.get("f1"),
            "support_before": old.get("support", 0), "support_after": new.get("support", 0),
            "f1_change": None if old.get("f1") is None or new.get("f1") is None else new["f1"] - old["f1"],
        })
    return rows


def compare_runs(before_dir, after_dir, split: str = "val") -> dict:
    """Compare two runs' evaluations picture by picture.

    Args:
        before_dir: the earlier run (e.g. the one whose mistakes were fixed).
        after_dir: the later run.
        split: "val" or "test".

    Returns:
        A JSON-friendly dict: "before" and "after" ({"run", "accuracy", "images"}),
        "accuracy_change", "same_pictures" (how many pictures both checked, and
        each run's accuracy on just those), "per_class" (recall and F1 before
        and after), "fixed" (wrong before, right after), "new_mistakes" (right
        before, wrong after), "still_wrong", "no_longer_checked" and "newly_checked".

    Raises:
        InputError: a run is not a run folder or has no evaluation for `split`.
    """
    before_path, after_path = run_folder.require_run_dir(before_dir), run_folder.require_run_dir(after_dir)
    before, after = _report(before_path, split), _report(after_path, split)
    old, new = _outcomes(before_path, before, split), _outcomes(after_path, after, split)
    both = sorted(set(old) & set(new))

    def right(row: dict) -> bool:
        return row["true"] == row["predicted"]

    def accuracy(outcomes: dict) -> float | None:
        return sum(right(outcomes[file]) for file in both) / len(both) if both else None

    return {
        "split": split,
        "before": {"run": before_path.name, "accuracy": before.get("accuracy"), "images": before.get("images")},
        "after": {"run": after_path.name, "accuracy": after.get("accuracy"), "images": after.get("images")},
        "accuracy_change": (after["accuracy"] - before["accuracy"])
        if after.get("accuracy") is not None and before.get("accuracy") is not None else None,
        "same_pictures": {"images": len(both), "accuracy_before": accuracy(old), "accuracy_after": accuracy(new)},
        "per_class": _per_class(before, after),
        "fixed": [_row(f, old[f], new[f]) for f in both if not right(old[f]) and right(new[f])],
        "new_mistakes": [_row(f, old[f], new[f]) for f in both if right(old[f]) and not right(new[f])],
        "still_wrong": [_row(f, old[f], new[f]) for f in both if not right(old[f]) and not right(new[f])],
        "no_longer_checked": [_row(f, old[f], None) for f in sorted(set(old) - set(new))],
        "newly_checked": [_row(f, None, new[f]) for f in sorted(set(new) - set(old))],
    }
