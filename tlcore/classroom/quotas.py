"""What each person may keep on a shared server, as the operator set it: uploaded bytes and kept runs.

Set with environment variables where the app starts (unset: no limit):

- `TLCORE_MAX_UPLOAD_MB`: megabytes of uploads a person may keep (all their
  uploaded datasets together, `uploads/` of their space);
- `TLCORE_MAX_RUNS`: runs a person may keep (their `runs/`; deleting one on the
  Export page frees its place).

The limits count the current user's space (`tlcore.paths.tlcore_home()`), so in
personal mode they count the one person's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tlcore import paths
from tlcore.errors import InputError, QuotaExceededError

UPLOAD_ENV_VAR = "TLCORE_MAX_UPLOAD_MB"
RUNS_ENV_VAR = "TLCORE_MAX_RUNS"


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


def uploaded_bytes() -> int:
    """Bytes in the current user's uploads."""
    total = 0
    for folder, _, files in os.walk(paths.uploads_dir()):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def kept_runs() -> int:
    """Runs in the current user's runs folder."""
    root = paths.default_runs_dir()
    if not root.is_dir():
        return 0
    return sum(1 for child in root.iterdir() if (child / "config.json").is_file())


def check_upload(incoming_bytes: int) -> None:
    """Refuse an upload that would take the current user past their upload limit.

    Raises:
        QuotaExceededError: with what is used, what is allowed and what to do.
    """
    limit = current_quotas().upload_bytes
    if limit is None:
        return
    used = uploaded_bytes()
    if used + incoming_bytes > limit:
        raise QuotaExceededError(
            f"this upload ({paths.format_size(incoming_bytes)}) would take your uploads to "
            f"{paths.format_size(used + incoming_bytes)}, more than the {paths.format_size(limit)} each person may keep "
            f"here (you keep {paths.format_size(used)}). Upload fewer or smaller pictures, or ask your teacher to "
            f"remove old uploads or raise the limit ({UPLOAD_ENV_VAR}).")


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
    return {"upload_bytes": uploaded_bytes(), "upload_limit_bytes": quotas.upload_bytes,
            "runs": kept_runs(), "runs_limit": quotas.runs}
