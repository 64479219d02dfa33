"""What each person may keep on a shared server, as the operator set it: the space their actions take, and kept runs.

Set with environment variables where the app starts (unset: no limit):

- `TLCORE_MAX_UPLOAD_MB`: megabytes a person's actions may take on disk: their
  uploads, the zips they unpacked, the features kept for their runs (and
  pictures converted for them), the exports of their runs, the weights they
  imported for themselves;
- `TLCORE_MAX_RUNS`: runs a person may keep (their `runs/`; deleting one on the
  Export page frees its place).

Space is counted as the disk sees it, not as the bytes in the files: every file
takes at least one block (`BLOCK_BYTES`), so 99,000 one-byte files count as the
400 MB they really take, not as 99 KB. Whatever writes for a user asks here
before it writes (`check_space`, `space_left`): an upload before it is saved,
a zip before it is unpacked and again while it is (declared sizes can lie).

The limits count the current user's space (`tlcore.paths.tlcore_home()`), so in
personal mode they count the one person's.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

from tlcore import paths
from tlcore.errors import InputError, QuotaExceededError

UPLOAD_ENV_VAR = "TLCORE_MAX_UPLOAD_MB"
RUNS_ENV_VAR = "TLCORE_MAX_RUNS"
BLOCK_BYTES = 4096  # the usual file-system block: the least a file takes on disk, however small
EXPORT_FOLDER = "export"  # inside a run's folder (tlcore.export writes there)
WHAT_IS_COUNTED = "uploads, unpacked zips, kept features, exports"


@dataclass(frozen=True)
class Quotas:
    """The operator's limits per person; None where there is none."""

    upload_bytes: int | None
    runs: int | None


def _limit(variable: str, what: str) -> float | None:
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise InputError(f"{variable}={text!r} is not a limit on {what}; set a number of 0 or more, or unset it for none.")
    return value


def current_quotas() -> Quotas:
    """The limits in force (read from the environment each time, so a test or a restart can change them).

    Raises:
        InputError: a limit that is not a number.
    """
    upload_mb = _limit(UPLOAD_ENV_VAR, "megabytes of uploads")
    runs = _limit(RUNS_ENV_VAR, "kept runs")
    return Quotas(upload_bytes=int(upload_mb * 1024**2) if upload_mb is not None else None,
                  runs=int(runs) if runs is not None else None)


def disk_bytes(size: int) -> int:
    """What a file of `size` bytes takes on disk: whole blocks, at least one."""
    return max(1, -(-int(size) // BLOCK_BYTES)) * BLOCK_BYTES


def counted_folders() -> list[pathlib.Path]:
    """The folders of the current user's space that their actions fill (runs themselves are limited by number)."""
    folders = [paths.uploads_dir(), paths.cache_dir(), paths.own_weights_dir()]
    runs = paths.default_runs_dir()
    if runs.is_dir():
        folders += sorted(run / EXPORT_FOLDER for run in runs.iterdir() if (run / EXPORT_FOLDER).is_dir())
    return folders


def used_bytes() -> int:
    """The disk space the current user's actions take: every file in `counted_folders()`, each at least one block."""
    total = 0
    for root in counted_folders():
        for folder, _, files in os.walk(root):
            for name in files:
                try:
                    status = os.lstat(os.path.join(folder, name))
                except OSError:
                    continue
                total += max(disk_bytes(status.st_size), getattr(status, "st_blocks", 0) * 512)
    return total


def space_left() -> int | None:
    """Bytes the current user may still fill (0 when over); None when there is no limit."""
    limit = current_quotas().upload_bytes
    if limit is None:
        return None
    return max(0, limit - used_bytes())


def check_space(incoming_bytes: int, what: str = "this upload") -> None:
    """Refuse to write `incoming_bytes` (as the disk counts them) that would take the current user past their limit.

    Args:
        incoming_bytes: the disk space the write takes (`disk_bytes` of each file, summed).
        what: what would be written, for the message ("this upload", "unpacking the zip 'x.zip'").

    Raises:
        QuotaExceededError: with what is used, what is allowed and what to do.
    """
    limit = current_quotas().upload_bytes
    if limit is None:
        return
    used = used_bytes()
    if used + incoming_bytes > limit:
        raise quota_error(what, incoming_bytes, used, limit)


def quota_error(what: str, incoming_bytes: int, used: int, limit: int) -> QuotaExceededError:
    """The refusal of a write past the limit, in words: what it needs, what is kept, what is allowed, what to do."""
    return QuotaExceededError(
        f"{what} ({paths.format_size(incoming_bytes)}) would take what you keep here ({WHAT_IS_COUNTED}) to "
        f"{paths.format_size(used + incoming_bytes)}, more than the {paths.format_size(limit)} each person may keep "
        f"here (you keep {paths.format_size(used)}). Upload fewer or smaller pictures (only pictures are unpacked "
        f"from a zip), delete old trainings, or ask your teacher to remove old uploads or raise the limit "
        f"({UPLOAD_ENV_VAR}).")


def check_upload(incoming_bytes: int) -> None:
    """Refuse an upload of `incoming_bytes` that would take the current user past their limit.

    Raises:
        QuotaExceededError: with what is used, what is allowed and what to do.
    """
    check_space(disk_bytes(incoming_bytes), "this upload")


def kept_runs() -> int:
    """Runs in the current user's runs folder."""
    root = paths.default_runs_dir()
    if not root.is_dir():
        return 0
    return sum(1 for child in root.iterdir() if (child / "config.json").is_file())


def check_new_run() -> None:
    """Refuse a new run when the current user keeps as many runs as they may.

    Raises:
        QuotaExceededError: with the limit and how to free a place.
    """
    limit = current_quotas().runs
    if limit is None:
        return
    kept = kept_runs()
    if kept >= limit:
        raise QuotaExceededError(
            f"you keep {kept} training{'s' if kept != 1 else ''}, and each person may keep {limit} here. Delete one you no longer need "
            f"(Export page, 'Delete a training'), then start again; or ask your teacher to raise the limit ({RUNS_ENV_VAR}).")


def quota_usage() -> dict:
    """What the current user uses and may use, for the CLI and the pages."""
    quotas = current_quotas()
    return {"upload_bytes": used_bytes(), "upload_limit_bytes": quotas.upload_bytes,
            "runs": kept_runs(), "runs_limit": quotas.runs}
