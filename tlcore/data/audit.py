"""Find a dataset's images, check each one, and split them: the audit.

Users bring real folders: phone photos, downloads named .jpg that are PNG or
HTML, hidden `.ipynb_checkpoints` folders, zip files. The audit walks the folder
once, decides what is an image by its content, and reports every file it skips
and why, so training never meets a file it cannot read.

Layouts understood:
- `DATA/<class>/...`: a stratified, seeded validation split is made.
- `DATA/train/<class>` + `DATA/val/<class>` (or `validation/`), optional `test/`.
- a `.zip` of either, extracted safely into a cache first.

After the split, the audit looks for duplicates (`tlcore.duplicates`) and lists
what is worth a look before training (`tlcore.findings`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from tlcore import paths
from tlcore.data import archive, checking, images
from tlcore.data import duplicates as duplicate_search
from tlcore.data.edits import normalise_relative, relabel_pairs
from tlcore.data.findings import EXCLUDED_REASON, IMBALANCE_RATIO, SMALL_CLASS_IMAGES, dataset_findings
from tlcore.data.records import DatasetAudit, ImageRecord, SkippedFile
from tlcore.data.split import split_records
from tlcore.errors import InputError

_VAL_FOLDER_NAMES = ("val", "validation", "valid")


MIN_IMAGES_PER_CLASS_WARNING = SMALL_CLASS_IMAGES


IMBALANCE_RATIO_WARNING = IMBALANCE_RATIO


VAL_SPLIT_RANGE = (0.05, 0.5)  # the same range `TrainConfig` accepts


_LINKED_FOLDER_REASON = "a link to a folder, which is not followed; copy the pictures into the dataset instead"


def audit_dataset(
    source: str | os.PathLike,
    val_split: float = 0.2,
    seed: int = 42,
    excluded_files: tuple[str, ...] = (),
    find_duplicates: bool = True,
    progress=None,
    relabels=None,
) -> DatasetAudit:
    """Audit a dataset folder or zip, split it, and list what is worth a look.

    Args:
        source: a folder (class folders, or train/val[/test] folders) or a .zip.
        val_split: fraction of each class held out when there is no val/ folder,
            from 0.05 to 0.5. Defaults to 0.2.
        seed: makes the split repeatable. Defaults to 42.
        excluded_files: relative paths the user chose to leave out; they are
            skipped before anything else, so an excluded duplicate is no longer
            reported. The files themselves are never touched.
        find_duplicates: report exact and near duplicates (about a second
            per few hundred photos the first time; hashes are kept for the
            next audit); training can turn it off. Class folders are always
            searched, because the split keeps every copy of a picture on one
            side. Defaults to True.
        progress: called as `progress(done, total)` while pictures are checked
            (the CLI and the app show it); only pictures not checked before count.
        relabels: {file: class} (or (file, class) pairs) the user chose: the
            file keeps its path and counts in that class (`DatasetEdits.relabels`).
            An excluded file stays excluded.

    Returns:
        A `DatasetAudit` with every usable image, every skipped file, the
        findings and (when looked for) the duplicate groups.

    Raises:
        InputError: the path is missing, is not a folder or zip, or holds fewer
            than two classes with images; `val_split` is out of range; or a
            relabel names a class the dataset has no folder for.

    Example:
        audit = audit_dataset("photos/")
        for finding in audit.findings:
            print(finding.severity, finding.message)
        config = TrainConfig(data="photos/", excluded_files=tuple(suggested_exclusions(audit)))
    """
    _check_val_split(val_split)
    audit = _usable_images(source, _excluded_set(excluded_files), dict(relabel_pairs(relabels)), progress)
    # Found before the split, which keeps each group's copies in a class on one side.
    groups = duplicate_search.find_duplicates(audit.records) if find_duplicates else None
    if audit.layout == "class_folders":
        audit.records = _sorted(split_records(audit.records, val_split, seed, groups))
    _drop_empty_classes(audit)
    _validate_trainable(audit)
    audit.warnings.extend(dataset_warnings(audit))
    if find_duplicates:
        audit.duplicates = duplicate_search.with_current_places(groups, audit.records)
        audit.duplicates_checked = True
    audit.findings = dataset_findings(audit)
    return audit


def _excluded_set(excluded_files) -> set[str]:
    if isinstance(excluded_files, (str, os.PathLike)):
        excluded_files = (excluded_files,)  # one path, not a sequence of characters
    return {normalise_relative(os.fspath(name)) for name in excluded_files}


def _usable_images(source, excluded: set[str], relabels: dict[str, str], progress=None) -> DatasetAudit:
    """Walk the dataset, check every file and apply the relabels: the audit before its split and findings."""
    root, skipped = _resolve_root(source)
    shown = paths.shown_path(source)  # an upload by its own name, not the server folder it was saved in
    layout, class_dirs = _find_layout(root, shown=shown)
    candidates, skipped_walk = _collect_candidates(root, class_dirs, excluded)
    class_names = sorted({label for (_, _, label, _) in candidates if label})
    _check_relabels(relabels, {name for classes in class_dirs.values() for name, _ in classes}, shown)
    records, skipped_bad = _check_candidates(candidates, progress)
    records = [_relabelled(record, relabels) for record in records]
    return DatasetAudit(
        source=str(source),
        root=str(root),
        layout=layout,
        class_names=sorted(set(class_names) | {record.label for record in records}),
        records=_sorted(records),
        skipped=sorted(skipped + skipped_walk + skipped_bad, key=lambda s: s.relative),
        excluded_files=sorted(excluded),
        relabels=relabels,
    )


def _sorted(records: list[ImageRecord]) -> list[ImageRecord]:
    return sorted(records, key=lambda r: (r.split, r.label, r.relative))


def _check_relabels(relabels: dict[str, str], class_names: set[str], shown: str) -> None:
    unknown = sorted({label for label in relabels.values() if label not in class_names})
    if unknown:
        raise InputError(
            f"a relabel moves a picture to class {', '.join(map(repr, unknown))}, which {shown!r} has no folder for; "
            f"its classes are {', '.join(map(repr, sorted(class_names)))}. Use one of those (the file stays where it is)."
        )


def _relabelled(record: ImageRecord, relabels: dict[str, str]) -> ImageRecord:
    label = relabels.get(record.relative)
    if label is None or label == record.label:
        return record
    return dataclasses.replace(record, label=label, relabeled_from=record.label)


def _check_val_split(val_split: float) -> None:
    low, high = VAL_SPLIT_RANGE
    if isinstance(val_split, bool) or not isinstance(val_split, (int, float)) or not low <= val_split <= high:
        raise InputError(
            f"val_split must be a number from {low} to {high} (the fraction of each class kept for "
            f"validation), got {val_split!r}; e.g. 0.2."
        )


def _resolve_root(source: str | os.PathLike) -> tuple[pathlib.Path, list[SkippedFile]]:
    if source is None or not isinstance(source, (str, os.PathLike)) or not os.fspath(source).strip():
        # An empty path would silently mean the current folder.
        raise InputError(
            f"no dataset given (got {source!r}); expected the path of a folder that holds one folder per class, "
            "or a .zip of such a folder."
        )
    path = pathlib.Path(source).expanduser()
    if not path.exists():
        raise InputError(
            f"the dataset path {str(source)!r} does not exist; give a folder that holds one folder per class "
            "(or a .zip of such a folder)."
        )
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise InputError(
                f"{str(source)!r} is a file, not a folder; give a folder with one sub-folder per class, or a .zip of it."
            )
        extracted = archive.extract_zip(path, paths.zip_cache_dir())
        skipped = [SkippedFile(relative=name, reason=reason) for name, reason in extracted.skipped_entries]
        return extracted.root, skipped
    if not path.is_dir():
        raise InputError(f"{str(source)!r} is neither a folder nor a .zip file.")
    return path.resolve(), []


def _visible_subdirs(folder: pathlib.Path) -> list[pathlib.Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except PermissionError:
        raise InputError(f"cannot read the folder {str(folder)!r} (permission denied); check its permissions.") from None
    return [entry for entry in entries if entry.is_dir() and not entry.is_symlink() and not images.is_ignored_name(entry.name)]


def _find_layout(root: pathlib.Path, shown: str) -> tuple[str, dict[str, list[tuple[str, pathlib.Path]]]]:
    """Decide the layout; return {split: [(class name, folder), ...]}.

    `shown` is what the user gave (their folder or zip), named in errors
    rather than the cache folder a zip was unpacked into.
    """
    subdirs = {entry.name.lower(): entry for entry in _visible_subdirs(root)}
    val_name = next((name for name in _VAL_FOLDER_NAMES if name in subdirs), None)
    if "train" in subdirs and val_name:
        layout = {"train": subdirs["train"], "val": subdirs[val_name]}
        if "test" in subdirs:
            layout["test"] = subdirs["test"]
        class_dirs = {split: [(d.name, d) for d in _visible_subdirs(folder)] for split, folder in layout.items()}
        _check_split_classes(class_dirs)
        return "split_folders", class_dirs
    if "train" in subdirs and not val_name and len(subdirs) <= 2:
        raise InputError(
            f"{shown!r} has a train/ folder but no val/ folder; add val/ with the same class folders, "
            "or move the class folders up so tlcore makes the validation split itself."
        )
    classes = [(entry.name, entry) for entry in _visible_subdirs(root)]
    if not classes:
        raise InputError(
            f"no class folders found in {shown!r}; expected one sub-folder per class with its images inside "
            "(e.g. photos/cats/*.jpg and photos/dogs/*.jpg)."
        )
    return "class_folders", {"train": classes}


def _check_split_classes(class_dirs: dict[str, list[tuple[str, pathlib.Path]]]) -> None:
    train_classes = {name for name, _ in class_dirs["train"]}
    for split in ("val", "test"):
        extra = sorted({name for name, _ in class_dirs.get(split, [])} - train_classes)
        if extra:
            raise InputError(
                f"the {split}/ folder has class folder(s) {', '.join(extra)} that train/ does not have; "
                f"train/ has {', '.join(sorted(train_classes)) or 'none'}. Use the same class folder names in both."
            )


def _collect_candidates(
    root: pathlib.Path, class_dirs: dict[str, list[tuple[str, pathlib.Path]]], excluded: set[str]
) -> tuple[list[tuple[pathlib.Path, str, str, str]], list[SkippedFile]]:
    """Walk each class folder: (path, relative, label, split) for every visible file.

    Links to folders are not followed (a link back up would loop forever) and,
    like unreadable folders, are reported as skipped rather than passed over.
    """
    candidates, skipped = [], []

    def report_unreadable(error: OSError) -> None:
        relative = pathlib.Path(error.filename or root).relative_to(root).as_posix()
        skipped.append(SkippedFile(relative, f"folder cannot be read ({error.strerror or error}); its files were left out"))

    for split, classes in class_dirs.items():
        for label, folder in classes:
            for directory, subdirs, files in os.walk(folder, followlinks=False, onerror=report_unreadable):
                for linked in sorted(d for d in subdirs if (pathlib.Path(directory) / d).is_symlink()):
                    relative = (pathlib.Path(directory) / linked).relative_to(root).as_posix()
                    skipped.append(SkippedFile(relative, _LINKED_FOLDER_REASON))
                subdirs[:] = sorted(
                    d for d in subdirs if not images.is_ignored_name(d) and not (pathlib.Path(directory) / d).is_symlink()
                )
                for file_name in sorted(files):
                    if images.is_ignored_name(file_name):
                        continue
                    path = pathlib.Path(directory) / file_name
                    relative = path.relative_to(root).as_posix()
                    if path.is_symlink() and not _inside(path, root):
                        # A link must not let a dataset read files from elsewhere on
                        # the server (the app's server-path feature relies on this).
                        skipped.append(SkippedFile(relative, "a link to a file outside the dataset folder (not followed)"))
                    elif relative in excluded:
                        skipped.append(SkippedFile(relative, EXCLUDED_REASON))
                    else:
                        candidates.append((path, relative, label, split))
    holders = {root} | {folder.parent for classes in class_dirs.values() for _, folder in classes}
    for holder in sorted(holders):
        skipped += _loose_entries(holder, root)
    return candidates, skipped


def _inside(path: pathlib.Path, root: pathlib.Path) -> bool:
    """True when a (linked) path really lies inside root.

    A link that loops cannot be resolved; it counts as inside, so the image
    check reports it as unreadable rather than as pointing elsewhere.
    """
    try:
        path.resolve().relative_to(root.resolve())
    except (OSError, RuntimeError):
        return True
    except ValueError:
        return False
    return True


def _loose_entries(folder: pathlib.Path, root: pathlib.Path) -> list[SkippedFile]:
    """Files beside the class folders (they have no class), and links to class folders."""
    skipped = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if images.is_ignored_name(entry.name):
            continue
        relative = entry.relative_to(root).as_posix()
        if entry.is_symlink() and entry.is_dir():
            skipped.append(SkippedFile(relative, _LINKED_FOLDER_REASON))
        elif entry.is_file() and entry.suffix.lower() != ".zip":
            skipped.append(SkippedFile(relative, "not inside a class folder, so it has no class"))
    return skipped


def _check_candidates(candidates, progress=None) -> tuple[list[ImageRecord], list[SkippedFile]]:
    """Check every candidate file's content, on every core, reusing the checks of unchanged files."""
    checks = checking.check_images([str(path) for path, _, _, _ in candidates], progress)
    records, skipped = [], []
    for (path, relative, label, split), check in zip(candidates, checks, strict=False):
        if not check.ok:
            skipped.append(SkippedFile(relative, check.reason or "not a readable image"))
            continue
        records.append(
            ImageRecord(
                path=str(path),
                relative=relative,
                label=label,
                split=split,
                format=check.format or "unknown",
                width=check.width or 0,
                height=check.height or 0,
                needs_conversion=check.needs_conversion,
                frames=check.frames,
            )
        )
    return records, skipped


def _drop_empty_classes(audit: DatasetAudit) -> None:
    counts = audit.counts()
    empty = [name for name in audit.class_names if counts[name]["train"] == 0]
    for name in empty:
        audit.warnings.append(f"class '{name}' has no usable training images, so it was left out.")
    audit.class_names = [name for name in audit.class_names if name not in empty]
    audit.records = [record for record in audit.records if record.label in audit.class_names]


def _validate_trainable(audit: DatasetAudit) -> None:
    if len(audit.class_names) < 2:
        found = f"only the class '{audit.class_names[0]}'" if audit.class_names else "no class with usable images"
        reasons = ""
        if audit.skipped:
            reasons = f" ({len(audit.skipped)} file(s) were skipped, e.g. {audit.skipped[0].relative}: {audit.skipped[0].reason})"
        raise InputError(
            f"{paths.shown_path(audit.source)!r} has {found}{reasons}; a classifier needs at least 2 classes, "
            "each a folder with its images inside."
        )
    if not audit.split_records("val"):
        raise InputError(
            f"{paths.shown_path(audit.source)!r} leaves no image for validation; give each class at least 2 different pictures "
            "(10 or more is better; copies of one picture count once, as they are kept together), or add a val/ folder."
        )


def dataset_warnings(audit: DatasetAudit) -> list[str]:
    """Plain-language findings worth a look before training."""
    warnings = []
    counts = audit.counts()
    totals = {name: sum(split_counts.values()) for name, split_counts in counts.items()}
    for name, total in totals.items():
        if total < 2:
            warnings.append(f"class '{name}' has only {total} image, so it cannot be validated; add more images.")
        elif total < MIN_IMAGES_PER_CLASS_WARNING:
            warnings.append(
                f"class '{name}' has only {total} images; accuracy on it will be unreliable. Aim for 20 or more."
            )
    largest, smallest = max(totals.values()), min(totals.values())
    if smallest and largest / smallest >= IMBALANCE_RATIO_WARNING:
        warnings.append(
            f"classes are imbalanced ({largest} vs {smallest} images): the model may favour the big classes. "
            "Add images to the small ones or turn on class weights."
        )
    for name in audit.class_names:
        if audit.layout == "split_folders" and counts[name]["val"] == 0:
            warnings.append(f"class '{name}' has no images in val/, so its accuracy is not measured.")
    return warnings


def with_new_split(audit: DatasetAudit, val_split: float, seed: int = 42) -> DatasetAudit:
    """The same audit with another validation share or seed, reading no file again.

    Moving the validation slider must not re-audit 20,000 pictures: the
    records, their checks and the duplicate groups are kept; only the split,
    the duplicates' splits (and so their scopes) and the findings are redone.
    A dataset with its own train/ and val/ folders keeps its split.

    Raises:
        InputError: `val_split` is out of range, or leaves a class without validation.
    """
    _check_val_split(val_split)
    if audit.layout != "class_folders":
        return audit
    records = split_records(audit.records, val_split, seed, audit.duplicates if audit.duplicates_checked else None)
    old_warnings = set(dataset_warnings(audit))
    new = dataclasses.replace(audit, records=sorted(records, key=lambda r: (r.split, r.label, r.relative)),
                              warnings=[w for w in audit.warnings if w not in old_warnings], findings=[])
    _validate_trainable(new)
    new.warnings.extend(dataset_warnings(new))
    if audit.duplicates_checked:
        new.duplicates = duplicate_search.with_splits(audit.duplicates, {r.relative: r.split for r in new.records})
    new.findings = dataset_findings(new)
    return new
