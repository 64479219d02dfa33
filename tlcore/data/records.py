"""What an audit is made of: image records, skipped files, findings, duplicate groups and the audit itself.

These plain dataclasses live apart from the code that fills them, so that the
audit, the duplicate search and the findings can all import them without
importing each other. Imports nothing from tlcore.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageRecord:
    """One usable image: where it is, its class and split, what it is."""

    path: str  # absolute path of the user's file
    relative: str  # path relative to the dataset root, as shown to the user
    label: str
    split: str
    format: str
    width: int
    height: int
    needs_conversion: bool
    frames: int = 1  # more than 1 for an animated GIF or WebP; training uses the first frame
    relabeled_from: str = ""  # the class folder the file is in, when the user moved it to `label`


@dataclass(frozen=True)
class SkippedFile:
    """A file the audit left out, with the reason in plain words."""

    relative: str
    reason: str


@dataclass
class DatasetAudit:
    """What the audit found: classes, images per split, skipped files, findings, duplicates."""

    source: str  # what the user gave (folder or zip)
    root: str  # the folder the images are in (the extraction folder for a zip)
    layout: str  # "class_folders" or "split_folders"
    class_names: list[str]
    records: list[ImageRecord]
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # short sentences, kept for older callers
    findings: list[Finding] = field(default_factory=list)  # each with kind, severity, files, message
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    duplicates_checked: bool = False  # False when the audit was asked not to look for duplicates
    excluded_files: list[str] = field(default_factory=list)  # as the user asked, normalised
    relabels: dict[str, str] = field(default_factory=dict)  # {file: class} as the user asked, normalised

    def has_finding(self, kind: str) -> bool:
        """True when a finding of this `FindingKind` was made."""
        return any(finding.kind == kind for finding in self.findings)

    def split_records(self, split: str) -> list[ImageRecord]:
        return [record for record in self.records if record.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class and split: {class: {"train": n, "val": n, "test": n}}."""
        table = {name: dict.fromkeys(SPLITS, 0) for name in self.class_names}
        for record in self.records:
            table[record.label][record.split] += 1
        return table

    def to_dict(self, with_records: bool = True) -> dict:
        """The audit as JSON-ready data; `with_records=False` leaves out the per-picture rows (a run's audit.json)."""
        summary = {
            "source": self.source,
            "root": self.root,
            "layout": self.layout,
            "class_names": self.class_names,
            "counts": self.counts(),
            "total_images": len(self.records),
            "split_sizes": {split: len(self.split_records(split)) for split in SPLITS},
            "formats": dict(Counter(record.format for record in self.records)),
            "skipped": [asdict(item) for item in self.skipped],
            "warnings": self.warnings,
            "findings": [finding.to_dict() for finding in self.findings],
            "duplicates_checked": self.duplicates_checked,
            "duplicates": [group.to_dict() for group in self.duplicates],
            "suggested_exclusions": suggested_exclusions(self),
            "excluded_files": self.excluded_files,
            "relabels": self.relabels,
        }
        if with_records:
            summary["records"] = [asdict(record) for record in self.records]
        return summary


class FindingKind:
    """The kinds of finding, as `Finding.kind` holds them: pages and tests compare kinds, never message text."""

    SKIPPED_FILES = "skipped_files"
    EXCLUDED_FILES = "excluded_files"
    EXCLUSIONS_NOT_FOUND = "exclusions_not_found"
    RELABELED_FILES = "relabeled_files"
    RELABELS_NOT_FOUND = "relabels_not_found"
    CLASS_TOO_SMALL = "class_too_small"
    SMALL_CLASS = "small_class"
    CLASS_NOT_VALIDATED = "class_not_validated"
    CLASS_IMBALANCE = "class_imbalance"
    TINY_IMAGES = "tiny_images"
    EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
    MIXED_FORMATS = "mixed_formats"
    MISNAMED_FILES = "misnamed_files"
    NEEDS_CONVERSION = "needs_conversion"
    ANIMATED_IMAGES = "animated_images"
    DUPLICATES_WITHIN_CLASS = "duplicates_within_class"
    DUPLICATES_ACROSS_CLASSES = "duplicates_across_classes"
    DUPLICATES_ACROSS_SPLITS = "duplicates_across_splits"

    @staticmethod
    def of_duplicates(scope: str) -> str:
        """The kind of a duplicate finding for a group's scope ("within_class", "across_classes", "across_splits")."""
        return f"duplicates_{scope}"


WARNING, INFO = "warning", "info"


@dataclass(frozen=True)
class Finding:
    """One thing worth a look, with the files or classes it is about.

    Attributes:
        kind: what was found, e.g. "tiny_images", "class_imbalance",
            "duplicates_across_splits" (see `dataset_findings` for all).
        severity: "warning" (likely to hurt accuracy or how it is measured)
            or "info" (good to know).
        message: why it matters and what to do, in plain words.
        files: the files involved, relative to the dataset folder.
        classes: the classes involved.
    """

    kind: str
    severity: str
    message: str
    files: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "files": list(self.files),
            "classes": list(self.classes),
        }


EXACT, NEAR = "exact", "near"


WITHIN_CLASS, ACROSS_CLASSES, ACROSS_SPLITS = "within_class", "across_classes", "across_splits"


_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class DuplicateMember:
    """One file of a duplicate group: where it is, its class and split, its bytes' hash."""

    relative: str
    label: str
    split: str
    sha256: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Files that hold the same picture, and why that matters.

    Attributes:
        kind: "exact" (the same bytes) or "near" (the same picture, resized,
            re-saved or slightly edited).
        scope: "across_classes" (a label conflict), "across_splits" (leakage
            between train and validation/test), or "within_class" (redundant
            copies in one class and split). A group in two classes is a label
            conflict even when it also spans splits; the explanation says both.
        members: the files, training copies first, then by path.
        explanation: why it matters and what to do, in plain words.
    """

    kind: str
    scope: str
    members: tuple[DuplicateMember, ...]
    explanation: str

    @property
    def files(self) -> list[str]:
        """The files' paths relative to the dataset folder."""
        return [member.relative for member in self.members]

    @property
    def classes(self) -> list[str]:
        return sorted({member.label for member in self.members})

    @property
    def splits(self) -> list[str]:
        return sorted({member.split for member in self.members}, key=_SPLIT_ORDER.get)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "scope": self.scope,
            "files": self.files,
            "classes": self.classes,
            "splits": self.splits,
            "members": [asdict(member) for member in self.members],
            "explanation": self.explanation,
        }


def suggested_exclusions(audit: DatasetAudit, near: bool = False) -> list[str]:
    """The duplicate files it is safe to leave out, for `TrainConfig.excluded_files`.

    By default only byte-identical copies are suggested, because they are
    certain; near copies need a person's look (two shots of one scene are
    real data), and the Data page shows them side by side, with one click to
    leave them out too (`near=True`). Within each group, copies in the same
    class are reduced to one, which removes redundant copies and all leakage
    between splits. Which copy is kept:
    - the user's own train/ and val/ (test/) folders: the training copy, so the
      model keeps its example and validation/test hold only unseen pictures;
    - class folders that tlcore splits itself: the first by path. Excluding
      files moves at most a picture or two between the splits, and a single
      copy cannot leak; choosing by name keeps the suggestion the same whatever the seed.

    Label conflicts (one picture in two classes) are not resolved: only the
    user knows which class is right, so one copy per class is kept and the
    conflict stays reported until the user excludes the wrong one.

    The user's files are never deleted or moved; these are paths to list in
    the run's config (the CLI's `--exclude`, the app's one-click exclusion).

    Args:
        audit: an audit made with duplicate detection on.
        near: also suggest near copies (one picture of each group per class is kept).

    Returns:
        Relative paths to exclude, sorted; empty when there is nothing safe to suggest.
    """
    excluded: set[str] = set()
    for group in audit.duplicates:
        if near or group.kind == EXACT:
            excluded.update(group_exclusions(audit, group))
        else:  # a near group can hold exact copies of one another
            excluded.update(group_exclusions(audit, group, exact_only=True))
    return sorted(excluded)


def group_exclusions(audit: DatasetAudit, group: DuplicateGroup, exact_only: bool = False) -> list[str]:
    """The files of one duplicate group to leave out so one copy per class is left (see `suggested_exclusions`).

    Args:
        audit: the audit the group is from (its layout decides which copy is kept).
        group: one of `audit.duplicates`.
        exact_only: reduce only byte-identical copies, leaving near copies be.

    Returns:
        Relative paths, in the group's order.
    """
    users_own_split = audit.layout == "split_folders"
    members = group.members if users_own_split else sorted(group.members, key=lambda m: m.relative)
    kept: set[tuple[str, str]] = set()
    excluded = []
    for member in members:  # in keep-first order
        key = (member.sha256 if exact_only else "", member.label)
        if key in kept:
            excluded.append(member.relative)
        else:
            kept.add(key)
    return excluded


def files_outside_training(groups: list[DuplicateGroup]) -> list[str]:
    """The validation and test copies of pictures that are also in training: what ends leakage when left out."""
    return sorted({member.relative for group in groups if "train" in group.splits
                   for member in group.members if member.split != "train"})
