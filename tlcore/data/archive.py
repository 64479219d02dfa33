"""Unpack a user's .zip of photos safely into a cache folder.

A zip is the easiest way for a user to hand over a dataset, and also a way to
hand over trouble: entries named `../../something` or `/etc/something` that
would land outside the target folder, symbolic links, and "zip bombs" that
expand a few kilobytes into gigabytes. `extract_zip` writes only inside its own
folder, unpacks only pictures, counts the bytes it really writes, and reports
what it refused.

The space it may fill is also the user's: on a shared server the operator's
limit per person (`tlcore.classroom.quotas`) counts what is unpacked. A zip is
refused before anything is written when the sizes it declares (each file at
least one disk block) do not fit what the user has left, and unpacking stops
as soon as the bytes really written do not, since declared sizes can lie.

Extraction is cached by the zip's content: the same zip given twice is
unpacked once. A finished extraction is renamed into place in one step with a
`.complete` marker inside, so an interrupted run never leaves a half-unpacked
folder that a later run would mistake for a finished one.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import pathlib
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass

from PIL import Image

from tlcore import paths
from tlcore.classroom import quotas
from tlcore.data.image_formats import starts_like_image
from tlcore.data.images import file_sha256, is_ignored_name
from tlcore.errors import InputError, QuotaExceededError

MAX_ZIP_TOTAL_BYTES_DEFAULT = 2 * 1024**3  # uncompressed bytes written, over all entries
MAX_ZIP_GIGABYTES = MAX_ZIP_TOTAL_BYTES_DEFAULT / 1024**3  # as the app tells users
MAX_ZIP_ENTRIES_DEFAULT = 100_000

MAX_ZIP_CACHE_BYTES = 4 * 1024**3  # all unpacked zips together; the least recently used go first
_COMPLETE_MARKER = ".complete"
_REFUSED_SUFFIX = ".refused.json"  # why a zip was refused, so that it is not unpacked again
# The rules a remembered refusal was made under; 2: only pictures are unpacked (a zip refused for its
# filler before may be usable now), so refusals remembered under other rules are forgotten.
_REFUSAL_RULES = 2
_DIGEST_LENGTH = 16
_COPY_CHUNK_BYTES = 1024 * 1024
_ENCRYPTED_FLAG = 0x1
_DISK_FULL_ERRORS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_UNZIP_YOURSELF = "unzip it yourself and give the folder instead"
_HEADER_BYTES = 16  # enough to tell a picture format by its first bytes (starts_like_image)
_PHONE_PICTURE_SUFFIXES = (".heic", ".heif", ".avif")  # unpacked so the audit can say how to convert them
NOT_A_PICTURE = "not a picture (neither its name nor its first bytes are a picture's), so it was not unpacked"


@dataclass(frozen=True)
class ExtractedArchive:
    """Where a zip's dataset now lies, and which entries were refused.

    Attributes:
        root: The dataset folder. When everything in the zip sits in one
            top-level folder (the usual result of zipping a folder), that
            folder; otherwise the extraction folder itself.
        skipped_entries: `(entry name, plain reason)` for every entry that was
            refused, in zip order. Hidden and system entries (`__MACOSX/`,
            `.DS_Store`, ...) are left out silently and are not listed.
    """

    root: pathlib.Path
    skipped_entries: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _PlannedEntry:
    """One zip entry that passed the safety checks, and its path parts inside the target."""

    info: zipfile.ZipInfo
    parts: tuple[str, ...]


class _ArchiveTooLarge(Exception):
    """Internal: the bytes written passed the limit while an entry was being copied."""


class _SpaceUsedUp(Exception):
    """Internal: the disk space written passed what the user has left while an entry was being copied."""


@dataclass
class _Budget:
    """What an extraction may still write: content bytes (the zip-bomb limit) and disk space (the user's space left).

    Attributes:
        content_bytes: bytes of file content still allowed.
        disk_bytes: disk space still allowed, each file counted in whole blocks;
            None where the operator set no limit.
    """

    content_bytes: int
    disk_bytes: int | None

    def check(self, entry_bytes: int) -> None:
        """Raise as soon as an entry of `entry_bytes` written so far no longer fits."""
        if entry_bytes > self.content_bytes:
            raise _ArchiveTooLarge()
        if self.disk_bytes is not None and quotas.disk_bytes(entry_bytes) > self.disk_bytes:
            raise _SpaceUsedUp()

    def charge(self, entry_bytes: int) -> None:
        """Count a finished entry."""
        self.content_bytes -= entry_bytes
        if self.disk_bytes is not None:
            self.disk_bytes -= quotas.disk_bytes(entry_bytes)


def extract_zip(
    zip_path: str | os.PathLike,
    cache_root: str | os.PathLike,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES_DEFAULT,
    max_entries: int = MAX_ZIP_ENTRIES_DEFAULT,
) -> ExtractedArchive:
    """Safely unpack a zip into `cache_root / <first 16 hex digits of its SHA-256>`.

    A finished earlier extraction of the same zip is reused as it is.
    Otherwise the zip is unpacked into a hidden temporary folder beside the
    final one, which is renamed into place only once everything is written.

    Args:
        zip_path: The user's .zip file.
        cache_root: Folder that holds extractions; created if missing.
        max_total_bytes: Most uncompressed bytes to write, counted while
            copying rather than trusted from the zip's own size fields.
            Defaults to 2 GiB.
        max_entries: Most entries the zip may list. Defaults to 100,000.

    Returns:
        An `ExtractedArchive` with the dataset folder and the refused entries.

    Raises:
        InputError: If the file is missing, not a zip, damaged, password
            protected, uses an unsupported compression method, has too many
            entries or expands past `max_total_bytes`, or the disk fills up.
            Nothing partial is left behind.
        QuotaExceededError: If its pictures do not fit the space the current
            user has left (`quotas.space_left()`): before unpacking when the
            declared sizes say so, else as soon as the written bytes do. Not
            remembered as a refusal: the same zip fits once space is freed.
    """
    zip_path = pathlib.Path(zip_path)
    cache_root = pathlib.Path(cache_root)
    extraction_dir = cache_root / _zip_digest(zip_path)[:_DIGEST_LENGTH]
    finished = _read_finished_extraction(extraction_dir)
    if finished is not None:
        _touch(extraction_dir / _COMPLETE_MARKER)  # recently used: evicted last
        return finished
    _raise_if_refused_before(extraction_dir)
    cache_root.mkdir(parents=True, exist_ok=True)
    budget = _Budget(content_bytes=max_total_bytes, disk_bytes=quotas.space_left())
    try:
        temporary_dir = _extract_to_temporary(zip_path, cache_root, extraction_dir.name, budget, max_entries)
    except QuotaExceededError:
        raise  # the user's space, not the zip: the same zip fits once space is freed
    except InputError as error:
        _remember_refusal(extraction_dir, error)
        raise
    finished = _move_into_place(temporary_dir, extraction_dir)
    evict_least_recently_used(cache_root, MAX_ZIP_CACHE_BYTES, keep=extraction_dir)
    return finished


def _extract_to_temporary(zip_path: pathlib.Path, cache_root: pathlib.Path, final_name: str, budget: _Budget,
                          max_entries: int) -> pathlib.Path:
    """Unpack into a hidden folder beside the final one; nothing partial is left when it fails."""
    with _open_zip(zip_path) as archive:
        entries, skipped = _plan_extraction(archive, zip_path.name, budget, max_entries)
        temporary_dir = _make_temporary_dir(cache_root, final_name)
        try:
            skipped += _write_entries(archive, entries, temporary_dir, zip_path.name, budget)
            _write_complete_marker(temporary_dir, skipped)
        except BaseException:
            shutil.rmtree(temporary_dir, ignore_errors=True)
            raise
    return temporary_dir


def _raise_if_refused_before(extraction_dir: pathlib.Path) -> None:
    """The same zip was refused before (too big, damaged, ...): say so at once instead of unpacking it again."""
    refusal = _refusal_file(extraction_dir)
    try:
        remembered = json.loads(refusal.read_text(encoding="utf-8"))
        message = remembered["message"] if remembered.get("rules") == _REFUSAL_RULES else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return
    if message is None:
        return
    raise InputError(str(message))


def _remember_refusal(extraction_dir: pathlib.Path, error: InputError) -> None:
    if "disk" in str(error).lower():  # a full disk is not the zip's fault: try again next time
        return
    refusal = _refusal_file(extraction_dir)
    try:
        refusal.parent.mkdir(parents=True, exist_ok=True)
        refusal.write_text(json.dumps({"message": str(error), "rules": _REFUSAL_RULES}, ensure_ascii=False), encoding="utf-8")
    except OSError:
        pass


def _refusal_file(extraction_dir: pathlib.Path) -> pathlib.Path:
    """Where the refusal of a zip is remembered: beside the cache, so the cache holds only finished extractions."""
    cache_root = extraction_dir.parent
    return cache_root.with_name(cache_root.name + "-refused") / (extraction_dir.name + _REFUSED_SUFFIX)


def evict_least_recently_used(cache_root: pathlib.Path, max_bytes: int, keep: pathlib.Path | None = None) -> list[str]:
    """Delete the least recently used extractions until the cache holds at most `max_bytes`.

    Returns:
        The names of the extractions deleted. `keep` (the one just made) is never deleted.
    """
    finished = []
    for folder in pathlib.Path(cache_root).iterdir() if pathlib.Path(cache_root).is_dir() else []:
        marker = folder / _COMPLETE_MARKER
        if folder.is_dir() and marker.is_file():
            finished.append((marker.stat().st_mtime, _extraction_bytes(folder), folder))
    total = sum(size for _, size, _ in finished)
    deleted = []
    for _, size, folder in sorted(finished, key=lambda item: item[0]):
        if total <= max_bytes:
            break
        if keep is not None and folder == keep:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
        deleted.append(folder.name)
    return deleted


def _extraction_bytes(folder: pathlib.Path) -> int:
    try:
        return int(json.loads((folder / _COMPLETE_MARKER).read_text(encoding="utf-8")).get("bytes", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def _touch(path: pathlib.Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _make_temporary_dir(cache_root: pathlib.Path, final_name: str) -> pathlib.Path:
    """Create a hidden, uniquely named folder beside the final one, on the same file system.

    Hidden so dataset scans skip it; on the same file system so the final
    rename is a single atomic step.
    """
    return pathlib.Path(tempfile.mkdtemp(prefix=f".{final_name}.partial-", dir=cache_root))


def _zip_digest(zip_path: pathlib.Path) -> str:
    """Hash the zip, turning a missing or unreadable file into an `InputError`."""
    if zip_path.is_dir():
        raise InputError(
            f"'{zip_path.name}' is a folder, not a zip file: give the folder itself as the dataset instead"
        )
    if not zip_path.is_file():
        raise InputError(f"the zip '{zip_path}' was not found: check the path and try again")
    try:
        return file_sha256(zip_path)
    except OSError as error:
        raise InputError(
            f"the zip '{zip_path.name}' cannot be read ({error.strerror or error}): "
            f"check that the file is yours to read and try again"
        ) from None


def _open_zip(zip_path: pathlib.Path) -> zipfile.ZipFile:
    """Open the zip's table of contents, or explain why it is not a zip."""
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise InputError(
            f"'{zip_path.name}' is not a valid zip file (it is damaged or another kind of file): "
            f"create the zip again, or give the folder instead"
        ) from None
    except OSError as error:
        raise InputError(
            f"the zip '{zip_path.name}' cannot be read ({error.strerror or error}): "
            f"check that the file is yours to read and try again"
        ) from None


def _plan_extraction(
    archive: zipfile.ZipFile,
    zip_name: str,
    budget: _Budget,
    max_entries: int,
) -> tuple[list[_PlannedEntry], list[tuple[str, str]]]:
    """Decide, before writing anything, which entries to extract and which to refuse.

    Only pictures are extracted: an entry whose name ends like a picture's, or
    whose first bytes are a picture's (a photo saved without its extension).
    Anything else (`.bin` filler, documents) is listed as refused, unwritten.

    Returns:
        The entries to extract and the `(name, reason)` of refused ones.

    Raises:
        InputError: On too many entries, an encrypted entry, or declared
            sizes already over the limit (failing fast on an honest but
            oversized zip; the real limit is enforced while copying).
        QuotaExceededError: the declared sizes do not fit the user's space left.
    """
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise InputError(
            f"the zip '{zip_name}' holds {len(infos):,} entries (limit {max_entries:,}): "
            f"it may be a zip bomb; {_UNZIP_YOURSELF}"
        )
    entries: list[_PlannedEntry] = []
    skipped: list[tuple[str, str]] = []
    for info in infos:
        name = info.filename.replace("\\", "/")  # zips made on Windows may use backslashes
        if name.endswith("/"):
            continue  # folders are created as the files inside them need them
        problem = _entry_problem(name, info)
        if problem is not None:
            skipped.append((info.filename, problem))
            continue
        parts = _path_parts(name)
        if not parts or any(is_ignored_name(part) for part in parts):
            continue
        if info.flag_bits & _ENCRYPTED_FLAG:
            raise InputError(
                f"the zip '{zip_name}' is password-protected (entry '{info.filename}'): {_UNZIP_YOURSELF}"
            )
        if not _may_be_picture(archive, info, parts[-1]):
            skipped.append((info.filename, NOT_A_PICTURE))
            continue
        entries.append(_PlannedEntry(info=info, parts=parts))
    if _declared_total_bytes(entries) > budget.content_bytes:
        raise _too_large_error(zip_name, budget.content_bytes)
    declared_disk_bytes = _declared_disk_bytes(entries)
    if budget.disk_bytes is not None and declared_disk_bytes > budget.disk_bytes:
        raise _space_error(zip_name, declared_disk_bytes)
    return entries, skipped


@functools.cache
def _picture_suffixes() -> frozenset[str]:
    """File name endings of the formats Pillow opens, and of phone photos the audit explains."""
    readable = {suffix for suffix, format_name in Image.registered_extensions().items() if format_name in Image.OPEN}
    return frozenset(readable | set(_PHONE_PICTURE_SUFFIXES))


def _may_be_picture(archive: zipfile.ZipFile, info: zipfile.ZipInfo, file_name: str) -> bool:
    """True for an entry named like a picture, or starting like one; the audit checks each picture fully later."""
    if pathlib.PurePosixPath(file_name).suffix.lower() in _picture_suffixes():
        return True
    if info.file_size < _HEADER_BYTES:
        return False
    try:
        with archive.open(info) as source:
            header = source.read(_HEADER_BYTES)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError, RuntimeError):
        return True  # unreadable: writing it says why, in words (a damaged zip, a method this tool cannot read)
    return starts_like_image(header)


def _entry_problem(name: str, info: zipfile.ZipInfo) -> str | None:
    """Give the reason an entry must be refused, or None when it is safe to write."""
    if name.startswith("/"):
        return "absolute path"
    if paths.DRIVE_LETTER.match(name):
        return "absolute path (Windows drive letter)"
    if ".." in name.split("/"):
        return "path escapes the archive (contains ..)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    return None


def _path_parts(name: str) -> tuple[str, ...]:
    """Split an entry name into its folder and file names, dropping empty and '.' parts."""
    return tuple(part for part in name.split("/") if part not in ("", "."))


def _declared_total_bytes(entries: list[_PlannedEntry]) -> int:
    """Sum the uncompressed sizes the zip claims for the planned entries."""
    return sum(entry.info.file_size for entry in entries)


def _declared_disk_bytes(entries: list[_PlannedEntry]) -> int:
    """The disk space the planned entries would take by the sizes the zip claims, each at least one block."""
    return sum(quotas.disk_bytes(entry.info.file_size) for entry in entries)


def _write_entries(
    archive: zipfile.ZipFile,
    entries: list[_PlannedEntry],
    destination: pathlib.Path,
    zip_name: str,
    budget: _Budget,
) -> list[tuple[str, str]]:
    """Copy the planned entries under `destination`, counting every byte written.

    Returns:
        `(name, reason)` of entries the file system refused (a name too long,
        a file where a folder is needed); the rest of the zip is still used.

    Raises:
        InputError: If the total passes the budget's content bytes, the zip is
            damaged or uses an unsupported compression method, or the disk is full.
        QuotaExceededError: If the disk space written passes what the user has left.
    """
    skipped: list[tuple[str, str]] = []
    content_limit, disk_limit = budget.content_bytes, budget.disk_bytes
    resolved_destination = destination.resolve()
    for entry in entries:
        target = destination.joinpath(*entry.parts)
        if not target.resolve().is_relative_to(resolved_destination):
            skipped.append((entry.info.filename, "path escapes the archive"))
            continue
        try:
            budget.charge(_copy_entry(archive, entry.info, target, budget))
        except _ArchiveTooLarge:
            raise _too_large_error(zip_name, content_limit) from None
        except _SpaceUsedUp:
            raise _space_used_up_error(zip_name, disk_limit or 0) from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise InputError(
                f"the zip '{zip_name}' is damaged (entry '{entry.info.filename}': {error}): "
                f"create the zip again, or {_UNZIP_YOURSELF}"
            ) from None
        except NotImplementedError:
            raise InputError(
                f"the zip '{zip_name}' uses a compression method this tool cannot read "
                f"(entry '{entry.info.filename}'): {_UNZIP_YOURSELF}"
            ) from None
        except OSError as error:
            if error.errno in _DISK_FULL_ERRORS:
                raise InputError(
                    f"not enough disk space to unpack the zip '{zip_name}': free some space and try again"
                ) from None
            skipped.append((entry.info.filename, f"could not be written: {error.strerror or error}"))
    return skipped


def _copy_entry(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: pathlib.Path,
    budget: _Budget,
) -> int:
    """Stream one entry to `target` in chunks, stopping as soon as it no longer fits the budget.

    Returns:
        The number of bytes written.

    Raises:
        _ArchiveTooLarge: If the entry holds more content bytes than the budget has left.
        _SpaceUsedUp: If it takes more disk space than the user has left.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    copied_bytes = 0
    with archive.open(info) as source, open(target, "wb") as destination:
        budget.check(0)  # even an empty file takes a block
        while chunk := source.read(_COPY_CHUNK_BYTES):
            copied_bytes += len(chunk)
            budget.check(copied_bytes)
            destination.write(chunk)
    return copied_bytes


def _write_complete_marker(extraction_dir: pathlib.Path, skipped: list[tuple[str, str]]) -> None:
    """Write the marker that says the extraction finished, with the refused entries.

    Storing the refused entries lets a reused extraction report them again.
    """
    written = sum(path.stat().st_size for path in extraction_dir.rglob("*") if path.is_file())
    marker = {"skipped_entries": [list(pair) for pair in skipped], "bytes": written}
    (extraction_dir / _COMPLETE_MARKER).write_text(json.dumps(marker, ensure_ascii=False), encoding="utf-8")


def _read_finished_extraction(extraction_dir: pathlib.Path) -> ExtractedArchive | None:
    """Return a finished extraction, or None if there is none (or its marker is unreadable)."""
    try:
        marker = json.loads((extraction_dir / _COMPLETE_MARKER).read_text(encoding="utf-8"))
        skipped = tuple((str(name), str(reason)) for name, reason in marker["skipped_entries"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ExtractedArchive(root=_dataset_root(extraction_dir), skipped_entries=skipped)


def _move_into_place(temporary_dir: pathlib.Path, extraction_dir: pathlib.Path) -> ExtractedArchive:
    """Rename a finished temporary extraction to its final name.

    A folder already there without a readable marker is debris from outside
    this module and is replaced. If another process finished the same zip
    first, its extraction is used and ours discarded.
    """
    if extraction_dir.exists() and _read_finished_extraction(extraction_dir) is None:
        shutil.rmtree(extraction_dir, ignore_errors=True)
    try:
        os.rename(temporary_dir, extraction_dir)
    except OSError:
        shutil.rmtree(temporary_dir, ignore_errors=True)
    finished = _read_finished_extraction(extraction_dir)
    if finished is None:
        raise InputError(
            f"could not move the unpacked zip into '{extraction_dir}': "
            f"check that the cache folder is writable and try again"
        )
    return finished


def _dataset_root(extraction_dir: pathlib.Path) -> pathlib.Path:
    """Step into the single top-level folder when the zip was made by zipping one folder."""
    visible = [child for child in extraction_dir.iterdir() if not is_ignored_name(child.name)]
    if len(visible) == 1 and visible[0].is_dir():
        return visible[0]
    return extraction_dir


def _space_error(zip_name: str, needed_bytes: int) -> QuotaExceededError:
    """The refusal, before unpacking, of a zip whose pictures do not fit the user's space left."""
    limit = quotas.current_quotas().upload_bytes or 0
    return quotas.quota_error(f"unpacking the pictures of the zip '{zip_name}'", needed_bytes, quotas.used_bytes(), limit)


def _space_used_up_error(zip_name: str, space_left: int) -> QuotaExceededError:
    """The refusal of a zip that held more than it declared, found while unpacking (nothing of it is kept)."""
    limit = quotas.current_quotas().upload_bytes or 0
    return QuotaExceededError(
        f"unpacking the zip '{zip_name}' was stopped: its pictures hold more than it declares, more than the "
        f"{paths.format_size(space_left)} you have left of the {paths.format_size(limit)} each person may keep here "
        f"({quotas.WHAT_IS_COUNTED}). Nothing of it was kept. Zip fewer pictures, or ask your teacher to raise the "
        f"limit ({quotas.UPLOAD_ENV_VAR}).")


def _too_large_error(zip_name: str, max_total_bytes: int) -> InputError:
    """Build the zip-bomb `InputError`."""
    limit = paths.format_size(max_total_bytes)
    return InputError(
        f"the zip '{zip_name}' expands to more than {limit} (limit {limit}): "
        f"it may be a zip bomb; {_UNZIP_YOURSELF}"
    )


