"""What is worth a look in a dataset before training, each finding in plain words.

The audit decides what can be used; the findings say what might still hurt the
model or mislead the user: files left out, tiny or oddly shaped pictures, classes
too small to check, imbalance, mixed or misnamed formats, duplicates. Each
`Finding` has a machine-readable `kind`, a `severity` ("warning": likely to hurt
accuracy or its measurement; "info": good to know), the files or classes it is
about, and a message that says why it matters and what to do.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING

from tlcore.data.records import ACROSS_CLASSES, ACROSS_SPLITS, EXACT, INFO, WARNING, WITHIN_CLASS, Finding, FindingKind

if TYPE_CHECKING:  # imported for type hints only: tlcore.data imports this module
    from tlcore.data.records import DatasetAudit, ImageRecord



TINY_IMAGE_MIN_SIDE = 32  # the smallest input any backbone takes; smaller pictures are mostly blur


EXTREME_ASPECT_RATIO = 4.0  # longer side / shorter side; squeezing such a picture square distorts it


MIN_IMAGES_TO_SPLIT = 2  # one for training, one for validation


SMALL_CLASS_IMAGES = 10


IMBALANCE_RATIO = 3.0


EXCLUDED_REASON = "excluded by you"


_EXAMPLES_SHOWN = 3


# Extensions and the formats (as Pillow names them) their names promise.
_EXTENSION_FORMATS = {
    ".jpg": {"JPEG", "MPO"},
    ".jpeg": {"JPEG", "MPO"},
    ".jpe": {"JPEG", "MPO"},
    ".jfif": {"JPEG", "MPO"},
    ".png": {"PNG"},
    ".gif": {"GIF"},
    ".bmp": {"BMP"},
    ".tif": {"TIFF"},
    ".tiff": {"TIFF"},
    ".webp": {"WEBP"},
    ".heic": {"HEIF"},
    ".heif": {"HEIF"},
    ".hif": {"HEIF"},
    ".avif": {"AVIF"},
}


def dataset_findings(audit: DatasetAudit) -> list[Finding]:
    """Everything worth a look in an audited dataset, warnings first.

    Kinds: skipped_files, excluded_files, exclusions_not_found,
    relabeled_files, relabels_not_found, class_too_small, small_class, class_not_validated, class_imbalance,
    tiny_images, extreme_aspect_ratio, duplicates_across_classes,
    duplicates_across_splits, duplicates_within_class, mixed_formats,
    misnamed_files, needs_conversion, animated_images.

    Args:
        audit: the audit, with its duplicate groups if they were looked for.

    Returns:
        The findings; an empty list for a clean dataset.
    """
    found = [
        *_skipped_findings(audit),
        *_relabel_findings(audit),
        *_class_findings(audit),
        *_picture_findings(audit.records),
        *_duplicate_findings(audit),
        *_format_findings(audit.records),
    ]
    found = [finding for finding in found if finding is not None]
    return sorted(found, key=lambda finding: finding.severity != WARNING)


def _skipped_findings(audit: DatasetAudit) -> list[Finding | None]:
    unusable = [item for item in audit.skipped if item.reason != EXCLUDED_REASON]
    excluded = [item.relative for item in audit.skipped if item.reason == EXCLUDED_REASON]
    missing = sorted(set(audit.excluded_files) - set(excluded))
    findings: list[Finding | None] = []
    if unusable:
        reasons = Counter(item.reason.split(":")[0] for item in unusable)
        summary = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
        findings.append(Finding(
            FindingKind.SKIPPED_FILES, WARNING,
            f"{_count(len(unusable), 'file')} could not be used and {_are(len(unusable))} left out ({summary}). "
            "Each is listed with its reason; replace a file with a working copy if you need it.",
            files=tuple(item.relative for item in unusable),
        ))
    if excluded:
        findings.append(Finding(
            FindingKind.EXCLUDED_FILES, INFO,
            f"{_count(len(excluded), 'file')} {_are(len(excluded))} left out because you excluded them; "
            "the files themselves are untouched.",
            files=tuple(excluded),
        ))
    if missing:
        findings.append(Finding(
            FindingKind.EXCLUSIONS_NOT_FOUND, INFO,
            f"{_count(len(missing), 'excluded path')} {'matches' if len(missing) == 1 else 'match'} no file "
            f"in the dataset ({_examples(missing)}), so {'it has' if len(missing) == 1 else 'they have'} no "
            "effect. Check the spelling, or whether the file was moved or renamed.",
            files=tuple(missing),
        ))
    return findings


def _relabel_findings(audit: DatasetAudit) -> list[Finding | None]:
    moved = [record for record in audit.records if record.relabeled_from]
    used = {record.relative for record in audit.records}
    excluded = set(audit.excluded_files)
    missing = sorted(name for name in audit.relabels if name not in used and name not in excluded)
    findings: list[Finding | None] = []
    if moved:
        findings.append(Finding(
            FindingKind.RELABELED_FILES, INFO,
            f"{_count(len(moved), 'picture')} {_are(len(moved))} counted in another class than the folder "
            f"{'it is' if len(moved) == 1 else 'they are'} in, because you moved {'it' if len(moved) == 1 else 'them'} "
            f"({_examples([f'{r.relative} as {r.label!r}' for r in moved])}); the files themselves stay where they are.",
            files=tuple(record.relative for record in moved),
            classes=tuple(sorted({record.label for record in moved})),
        ))
    if missing:
        findings.append(Finding(
            FindingKind.RELABELS_NOT_FOUND, INFO,
            f"{_count(len(missing), 'moved file')} {'matches' if len(missing) == 1 else 'match'} no usable picture "
            f"in the dataset ({_examples(missing)}), so {'its' if len(missing) == 1 else 'their'} new class has no "
            "effect. Check the spelling, or whether the file was moved, renamed or cannot be read.",
            files=tuple(missing),
        ))
    return findings


def _class_findings(audit: DatasetAudit) -> list[Finding | None]:
    counts = audit.counts()
    totals = {name: sum(split_counts.values()) for name, split_counts in counts.items()}
    too_small = [name for name, total in totals.items() if total < MIN_IMAGES_TO_SPLIT]
    small = [name for name, total in totals.items() if MIN_IMAGES_TO_SPLIT <= total < SMALL_CLASS_IMAGES]
    findings: list[Finding | None] = []
    if too_small:
        findings.append(Finding(
            FindingKind.CLASS_TOO_SMALL, WARNING,
            f"The {_class_list(too_small)} {'has' if len(too_small) == 1 else 'have'} a single image, so it cannot be "
            "split: there is nothing left to check the model on for "
            f"{'it' if len(too_small) == 1 else 'them'}. Add more images ({SMALL_CLASS_IMAGES * 2} or more is good).",
            files=_files_of(audit.records, too_small),
            classes=tuple(too_small),
        ))
    if small:
        findings.append(Finding(
            FindingKind.SMALL_CLASS, WARNING,
            f"The {_class_list(small)} {'has' if len(small) == 1 else 'have'} fewer than {SMALL_CLASS_IMAGES} images, "
            "so the model has little to learn from and the accuracy measured on "
            f"{'it' if len(small) == 1 else 'them'} is unreliable. Aim for {SMALL_CLASS_IMAGES * 2} or more per class.",
            files=_files_of(audit.records, small),
            classes=tuple(small),
        ))
    if audit.layout == "split_folders":
        unvalidated = [name for name in audit.class_names if counts[name]["val"] == 0]
        if unvalidated:
            findings.append(Finding(
                FindingKind.CLASS_NOT_VALIDATED, WARNING,
                f"The {_class_list(unvalidated)} {'has' if len(unvalidated) == 1 else 'have'} no images in val/, so "
                "the accuracy shown does not cover it. Move or add a few of its images to val/.",
                classes=tuple(unvalidated),
            ))
    findings.append(_imbalance_finding(totals))
    return findings


def _imbalance_finding(totals: dict[str, int]) -> Finding | None:
    if not totals:
        return None
    largest_name = max(totals, key=totals.get)
    smallest_name = min(totals, key=totals.get)
    largest, smallest = totals[largest_name], totals[smallest_name]
    if not smallest or largest / smallest < IMBALANCE_RATIO:
        return None
    minority = sorted(name for name, total in totals.items() if total * IMBALANCE_RATIO <= largest)
    return Finding(
        FindingKind.CLASS_IMBALANCE, WARNING,
        f"The classes are imbalanced: {largest_name!r} has {largest} images, {smallest_name!r} only {smallest} "
        f"({largest / smallest:.0f} to 1). The model will lean towards the big classes and may rarely predict "
        "the small ones. Add images to the small classes; until then the presets of the app and of `tlcore train` "
        "turn on class weights by themselves ('Balance the classes' on the Train page), which makes each class "
        "count equally.",
        classes=tuple(minority),
    )


def is_stretched(width: int, height: int) -> bool:
    """True when a picture is more than `EXTREME_ASPECT_RATIO` times as wide as tall, or as tall as wide.

    Squeezed into the model's square, such a picture is distorted: the audit warns
    about it in the training pictures, Predict about an answer for it.
    """
    return min(width, height) > 0 and max(width, height) / min(width, height) > EXTREME_ASPECT_RATIO


def _picture_findings(records: list[ImageRecord]) -> list[Finding | None]:
    tiny = [r for r in records if min(r.width, r.height) < TINY_IMAGE_MIN_SIDE]
    stretched = [r for r in records if is_stretched(r.width, r.height)]
    findings: list[Finding | None] = []
    if tiny:
        findings.append(Finding(
            FindingKind.TINY_IMAGES, WARNING,
            f"{_count(len(tiny), 'image')} {_are(len(tiny))} smaller than {TINY_IMAGE_MIN_SIDE} pixels on a side "
            f"({_examples([_sized(r) for r in tiny])}). Every picture is scaled up to the model's input size "
            "(e.g. 224×224), so pictures this small become blurs with little to learn from. Check they are not "
            "icons or thumbnails; use the full-size photos if you have them.",
            files=tuple(r.relative for r in tiny),
        ))
    if stretched:
        findings.append(Finding(
            FindingKind.EXTREME_ASPECT_RATIO, WARNING,
            f"{_count(len(stretched), 'image')} {_are(len(stretched))} more than {EXTREME_ASPECT_RATIO:.0f} times "
            f"as wide as tall, or as tall as wide ({_examples([_sized(r) for r in stretched])}). Pictures are "
            "squeezed into a square for the model, which distorts what is in them. Crop them around the subject.",
            files=tuple(r.relative for r in stretched),
        ))
    return findings


def _duplicate_findings(audit: DatasetAudit) -> list[Finding | None]:
    advice = {
        ACROSS_CLASSES: (
            "filed under more than one class (label conflicts): the model is told one picture is two different "
            "things. For each, decide which class is right and exclude the other copies."
        ),
        ACROSS_SPLITS: (
            "in training and in validation or test (leakage): the model is graded on pictures it has already "
            "seen, so the accuracy shown is better than it will be on new photos. Exclude the copies outside training."
        ),
        WITHIN_CLASS: (
            "repeated within a class: extra copies make the model see those pictures more often, which quietly "
            "inflates the class. Keep one of each and exclude the others."
        ),
    }
    findings: list[Finding | None] = []
    for scope, why in advice.items():
        groups = [group for group in audit.duplicates if group.scope == scope]
        if not groups:
            continue
        exact = sum(group.kind == EXACT for group in groups)
        kinds = ", ".join(part for part in (
            f"{exact} exact" if exact else "", f"{len(groups) - exact} near" if len(groups) > exact else ""
        ) if part)
        findings.append(Finding(
            FindingKind.of_duplicates(scope), WARNING,
            f"{_count(len(groups), 'picture')} ({kinds}) {_are(len(groups))} {why} "
            "The groups are listed under duplicates; your files are never deleted.",
            files=tuple(file for group in groups for file in group.files),
            classes=tuple(sorted({name for group in groups for name in group.classes})),
        ))
    return findings


def _format_findings(records: list[ImageRecord]) -> list[Finding | None]:
    formats = Counter(_format_name(r.format) for r in records)
    findings: list[Finding | None] = []
    if len(formats) > 1:
        main_format = formats.most_common(1)[0][0]
        mix = ", ".join(f"{count} {name}" for name, count in formats.most_common())
        message = (
            f"The images come in several formats ({mix}). tlcore reads each file by its content, so all of them "
            "are used."
        )
        shortcuts = _formats_of_one_class(records, main_format)
        if shortcuts:
            message += (
                f" But {shortcuts}: if a class's pictures come from a different source, the model may learn the "
                "source (its compression, size or colours) instead of the subject. Mix sources across classes."
            )
        findings.append(Finding(
            FindingKind.MIXED_FORMATS, INFO, message,
            files=tuple(r.relative for r in records if _format_name(r.format) != main_format),
        ))
    misnamed = [r for r in records if _misnamed(r)]
    if misnamed:
        findings.append(Finding(
            FindingKind.MISNAMED_FILES, INFO,
            f"{_count(len(misnamed), 'file')} {'has a name that says' if len(misnamed) == 1 else 'have names that say'}"
            f" one format but {'holds' if len(misnamed) == 1 else 'hold'} another "
            f"({_examples([f'{r.relative} is a {_format_name(r.format)}' for r in misnamed])}). tlcore uses them "
            "as they are; other tools may reject them, so renaming them to match is good practice.",
            files=tuple(r.relative for r in misnamed),
        ))
    converted = [r for r in records if r.needs_conversion]
    if converted:
        findings.append(Finding(
            FindingKind.NEEDS_CONVERSION, INFO,
            f"{_count(len(converted), 'image')} (e.g. HEIC, CMYK, 16-bit, TIFF, WebP, BMP or rotated by their camera "
            f"data) {'is' if len(converted) == 1 else 'are'} converted once to PNG in tlcore's cache before "
            "training, so the first run takes a little longer. Your files are not changed.",
            files=tuple(r.relative for r in converted),
        ))
    animated = [r for r in records if getattr(r, "frames", 1) > 1]
    if animated:
        findings.append(Finding(
            FindingKind.ANIMATED_IMAGES, INFO,
            f"{_count(len(animated), 'image')} {_are(len(animated))} animated ({_examples([r.relative for r in animated])}); "
            "only the first frame is used.",
            files=tuple(r.relative for r in animated),
        ))
    return findings


def _formats_of_one_class(records: list[ImageRecord], main_format: str) -> str:
    """Describe minority formats found in one class only, e.g. "all 12 PNG files are in 'rain'"."""
    labels_by_format: dict[str, set[str]] = {}
    for record in records:
        labels_by_format.setdefault(_format_name(record.format), set()).add(record.label)
    class_count = len({record.label for record in records})
    notes = []
    for name, labels in sorted(labels_by_format.items()):
        count = sum(_format_name(r.format) == name for r in records)
        if name != main_format and len(labels) == 1 and class_count > 1 and count >= 2:
            notes.append(f"all {count} {name} files are in {next(iter(labels))!r}")
    return "; ".join(notes)


def _misnamed(record: ImageRecord) -> bool:
    expected = _EXTENSION_FORMATS.get(os.path.splitext(record.relative)[1].lower())
    return expected is not None and record.format not in expected


def _format_name(format_name: str) -> str:
    return "JPEG" if format_name == "MPO" else format_name  # MPO is a camera's multi-picture JPEG


def _files_of(records: list[ImageRecord], classes: list[str]) -> tuple[str, ...]:
    wanted = set(classes)
    return tuple(record.relative for record in records if record.label in wanted)


def _sized(record: ImageRecord) -> str:
    return f"{record.relative}: {record.width}×{record.height}"


def _class_list(names: list[str]) -> str:
    quoted = [repr(name) for name in names]
    return ("class " if len(names) == 1 else "classes ") + _examples(quoted, limit=5)


def _examples(items: list[str], limit: int = _EXAMPLES_SHOWN) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _are(count: int) -> str:
    return "is" if count == 1 else "are"
