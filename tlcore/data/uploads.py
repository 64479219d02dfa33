"""Save files uploaded through the browser safely under `$TLCORE_HOME/uploads/`.

A browser folder upload hands the app a list of names such as
`photos/cats/tabby.jpg` with their bytes. Those names come from the user's
machine and are not to be trusted as paths: they may hold `..`, start with `/`
or a Windows drive letter, or carry hidden and system clutter (`.DS_Store`,
`__MACOSX/`). This module turns each name into a safe path inside a fresh
folder `$TLCORE_HOME/uploads/<id>/`, keeps the class folders the user made, and
reports every file it left out and why.

Layout kept: when every name starts with the same folder (the folder the user
picked), that folder is dropped, so `photos/cats/tabby.jpg` is saved as
`uploads/<id>/cats/tabby.jpg` and `uploads/<id>` is the dataset folder. A
file with no class folder above it has no class and is left out.

This module imports only the standard library, so the app stays light.

Example:
    saved = save_uploaded_files([("photos/cats/a.jpg", data_a), ("photos/dogs/b.jpg", data_b)])
    tlcore.audit_dataset(saved.root)
"""

from __future__ import annotations

import datetime as _datetime
import os
import pathlib
import re
import secrets
import shutil
from dataclasses import dataclass
from typing import BinaryIO, Sequence

from tlcore import paths
from tlcore.classroom import quotas
from tlcore.data.images import is_ignored_name
from tlcore.errors import InputError

MAX_UPLOAD_FILES = 20_000
MAX_UPLOAD_TOTAL_BYTES = 4 * 1024**3
MAX_UPLOAD_FILE_BYTES = 100 * 1024**2
MAX_NAME_BYTES = 200  # below the usual 255-byte limit, leaving room for a "-2" suffix

_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# Lone surrogates (a name decoded with errors="surrogateescape", or crafted) cannot be written as a file name.
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")

UploadData = bytes | bytearray | memoryview | BinaryIO


@dataclass(frozen=True)
class SavedUpload:
    """Where an upload was saved, and which files were left out.

    Attributes:
        root: the new dataset folder, `$TLCORE_HOME/uploads/<id>`.
        saved: how many files were written.
        skipped: `(name as uploaded, plain reason)` for every file left out,
            except hidden and system files, which are dropped silently.
    """

    root: pathlib.Path
    saved: int
    skipped: tuple[tuple[str, str], ...]


def safe_parts(name: str) -> tuple[str, ...]:
    """Split an uploaded name into safe folder and file names.

    Backslashes count as separators, a Windows drive letter and leading
    slashes are dropped, and `.`, `..` and empty parts are removed, so the
    result can only ever name something inside the upload folder.

    Args:
        name: the name the browser sent, e.g. "photos/cats/a.jpg".

    Returns:
        The remaining parts, e.g. ("photos", "cats", "a.jpg"); empty when
        nothing usable is left.
    """
    text = _UNSAFE_CHARACTERS.sub("", str(name).replace("\\", "/"))
    text = _LONE_SURROGATES.sub("_", text)
    text = paths.DRIVE_LETTER.sub("", text)
    return tuple(part.strip() for part in text.split("/") if part.strip() not in ("", ".", ".."))


DEFAULT_DATASET_NAME = "pictures"  # the name of an upload whose files share no top folder


def new_upload_dir() -> pathlib.Path:
    """Create a fresh, uniquely named folder under `$TLCORE_HOME/uploads/`."""
    stamp = _datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return paths.create_unique_folder(paths.uploads_dir(), (f"{stamp}-{secrets.token_hex(3)}" for _ in range(100)), "upload")


def save_uploaded_files(
    files: Sequence[tuple[str, UploadData]],
    max_files: int = MAX_UPLOAD_FILES,
    max_total_bytes: int = MAX_UPLOAD_TOTAL_BYTES,
    max_file_bytes: int = MAX_UPLOAD_FILE_BYTES,
) -> SavedUpload:
    """Save a browser folder upload as a dataset folder of class folders.

    Args:
        files: `(name, data)` pairs; the name as the browser sent it (for a
            folder upload, the path inside the picked folder including its
            name), the data as bytes or a readable binary file.
        max_files: most files accepted in one upload. Defaults to 20,000.
        max_total_bytes: most bytes in all. Defaults to 4 GiB.
        max_file_bytes: a larger single file is left out. Defaults to 100 MiB.

    Returns:
        A `SavedUpload`; give its `root` to `audit_dataset`.

    Raises:
        InputError: no files, too many files or bytes, or no file inside a
            class folder. Nothing is left on disk then.
    """
    if not files:
        raise InputError("no files were uploaded; pick a folder that holds one folder per class of pictures.")
    if len(files) > max_files:
        raise InputError(
            f"{len(files):,} files were uploaded, more than the limit of {max_files:,}; "
            "upload fewer pictures, or ask the operator for a folder on the server."
        )
    named = [(name, safe_parts(name), data) for name, data in files]
    named = [(name, parts, data) for name, parts, data in named if parts and not any(is_ignored_name(p) for p in parts)]
    sizes = [_size_of(data) for _, _, data in named]
    total = sum(size for size in sizes if size <= max_file_bytes)
    if total > max_total_bytes:
        raise InputError(
            f"the upload holds {paths.format_size(total)}, more than the limit of {paths.format_size(max_total_bytes)}; "
            "upload fewer or smaller pictures, or zip them."
        )
    # The operator's limit per person (TLCORE_MAX_UPLOAD_MB), as the disk counts: each file at least one block.
    quotas.check_space(sum(quotas.disk_bytes(size) for size in sizes if size <= max_file_bytes), "this upload")
    drop_top = _common_top_folder([parts for _, parts, _ in named])
    upload = new_upload_dir()
    # The dataset keeps the name of the folder the user picked: pages, run names and pickers show it.
    root = upload / unique_dataset_name(named[0][1][0] if drop_top and named else DEFAULT_DATASET_NAME)
    try:
        root.mkdir()
        saved, skipped = _write_files(root, named, sizes, drop_top, max_file_bytes)
    except BaseException:
        shutil.rmtree(upload, ignore_errors=True)
        raise
    if not saved:
        shutil.rmtree(upload, ignore_errors=True)
        example = f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise InputError(
            f"none of the uploaded files could be used{example}; upload a folder that holds one folder per "
            "class, each with its pictures inside (e.g. photos/cats/*.jpg and photos/dogs/*.jpg)."
        )
    return SavedUpload(root=root, saved=saved, skipped=tuple(skipped))


def save_uploaded_file(name: str, data: UploadData, max_bytes: int = MAX_UPLOAD_TOTAL_BYTES,
                       keep_name: bool = False) -> pathlib.Path:
    """Save one uploaded file (a .zip dataset, a weights file) in a fresh upload folder.

    Only the file's own name is kept, made safe; the folder part is dropped.

    Args:
        name: the name the browser sent.
        data: its bytes or a readable binary file.
        max_bytes: the largest file accepted. Defaults to 4 GiB.
        keep_name: keep the name exactly (a weights file, which Keras finds by
            name); otherwise a name an earlier upload uses gets "-2", "-3", ...
            so that pickers tell datasets apart.

    Returns:
        The path of the saved file, `$TLCORE_HOME/uploads/<id>/<name>`.

    Raises:
        InputError: the name is empty once made safe, or the file is too large.
    """
    parts = safe_parts(name)
    if not parts or is_ignored_name(parts[-1]):
        raise InputError(f"the uploaded file name {name!r} cannot be used; rename the file and upload it again.")
    size = _size_of(data)
    if size > max_bytes:
        raise InputError(
            f"the file {parts[-1]!r} is {paths.format_size(size)}, more than the limit of {paths.format_size(max_bytes)}."
        )
    quotas.check_upload(size)
    root = new_upload_dir()
    shortened = _shorten(parts[-1])
    stem, dot, suffix = shortened.rpartition(".")
    if keep_name:
        name = shortened
    else:
        name = f"{unique_dataset_name(stem)}.{suffix}" if dot and stem else unique_dataset_name(shortened)
    target = root / name
    try:
        _write(target, data)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return target


def unique_dataset_name(name: str) -> str:
    """`name`, or `name-2`, `name-3`, ... when an earlier upload already uses it (a zip's name counts without .zip)."""
    taken = set()
    for upload in paths.uploads_dir().glob("*/*"):
        taken.add(upload.stem.lower() if upload.is_file() else upload.name.lower())
    candidate, number = name, 2
    while candidate.lower() in taken:
        candidate, number = f"{name}-{number}", number + 1
    return candidate


def keep_if_usable(path: str | os.PathLike) -> pathlib.Path:
    """Check a just-uploaded dataset with a quick audit; if it cannot be used, delete the upload and say why.

    A rejected zip or folder would otherwise stay in `$TLCORE_HOME/uploads/`
    for good, counting against the user's limit. It is removed whatever the
    reason (a refusal in words, or an unexpected failure while checking). Only
    uploads are deleted: a path outside the uploads folder is checked but never
    removed.

    Raises:
        InputError: the audit's reason the dataset cannot be used.
    """
    from tlcore.data.audit import audit_dataset

    path = pathlib.Path(path)
    try:
        audit_dataset(path, find_duplicates=False)
    except Exception:  # not BaseException: a page interrupted by the user's next click keeps the upload
        remove_upload(path)
        raise
    return path


def remove_upload(path: str | os.PathLike) -> None:
    """Delete the upload folder that holds `path` (`$TLCORE_HOME/uploads/<id>`); a path outside the uploads is left alone."""
    root = paths.uploads_dir().resolve()
    try:
        upload = pathlib.Path(path).resolve()
        folder = root / upload.relative_to(root).parts[0]
    except (ValueError, IndexError, OSError):
        return
    shutil.rmtree(folder, ignore_errors=True)


def _common_top_folder(all_parts: list[tuple[str, ...]]) -> bool:
    """True when every name starts with the same folder and class folders lie below it.

    A folder upload names every file `picked/class/file`; dropping `picked`
    makes the class folders the top level. When the user picked a class
    folder itself (`cats/a.jpg` only), there is nothing below it to use as
    classes, so the top folder is kept and becomes the one class.
    """
    if not all_parts or any(len(parts) < 2 for parts in all_parts):
        return False
    if len({parts[0] for parts in all_parts}) != 1:
        return False
    return any(len(parts) >= 3 for parts in all_parts)


def _write_files(root, named, sizes, drop_top: bool, max_file_bytes: int) -> tuple[int, list[tuple[str, str]]]:
    saved, skipped, used = 0, [], set()
    for (name, parts, data), size in zip(named, sizes, strict=True):
        inside = parts[1:] if drop_top else parts
        if len(inside) < 2:
            skipped.append((name, "not inside a class folder, so it has no class"))
            continue
        if size > max_file_bytes:
            skipped.append((name, f"larger than {paths.format_size(max_file_bytes)}"))
            continue
        relative = _unique(tuple(_shorten(part) for part in inside), used)
        target = root.joinpath(*relative)
        if not target.resolve().is_relative_to(root.resolve()):
            skipped.append((name, "the name points outside the upload folder"))
            continue
        try:
            _write(target, data)
        except OSError as error:
            if error.errno == 28:
                raise InputError("the disk is full, so the upload could not be saved; free some space.") from None
            skipped.append((name, f"could not be saved: {error.strerror or error}"))
            continue
        saved += 1
    return saved, skipped


def _unique(relative: tuple[str, ...], used: set) -> tuple[str, ...]:
    """Add "-2", "-3", ... to a file name already used in this upload (case-insensitively)."""
    candidate = relative
    stem, dot, suffix = relative[-1].rpartition(".")
    if not dot:
        stem, suffix = relative[-1], ""
    number = 2
    while "/".join(candidate).lower() in used:
        candidate = relative[:-1] + (f"{stem}-{number}{'.' + suffix if suffix else ''}",)
        number += 1
    used.add("/".join(candidate).lower())
    return candidate


def _shorten(part: str) -> str:
    """Cut a name to `MAX_NAME_BYTES` bytes of UTF-8, keeping its extension."""
    if len(part.encode("utf-8")) <= MAX_NAME_BYTES:
        return part
    stem, dot, suffix = part.rpartition(".")
    suffix = ("." + suffix[:16]) if dot else ""
    stem = stem if dot else part
    budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore") + suffix


def _size_of(data: UploadData) -> int:
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, memoryview):
        return data.nbytes
    getbuffer = getattr(data, "getbuffer", None)
    if getbuffer is not None:
        return getbuffer().nbytes
    position = data.tell()
    data.seek(0, os.SEEK_END)
    size = data.tell()
    data.seek(position)
    return size


def _write(target: pathlib.Path, data: UploadData) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as handle:
        if isinstance(data, (bytes, bytearray, memoryview)):
            handle.write(data)
        else:
            data.seek(0)
            shutil.copyfileobj(data, handle)


