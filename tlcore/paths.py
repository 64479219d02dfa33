"""Where tlcore keeps its files: runs, caches, the demo dataset.

Everything lives under `$TLCORE_HOME` (default `~/.tlcore`), so the app and the
CLI see the same runs, and one folder holds all a user has to back up or delete.
"""

from __future__ import annotations

import os
import pathlib
import re
from typing import Iterable

from tlcore.errors import InputError

# A Windows drive letter at the start of a name (`C:`): never a place to write to.
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


def tlcore_home() -> pathlib.Path:
    """`$TLCORE_HOME`, or `~/.tlcore` when it is not set."""
    return pathlib.Path(os.environ.get("TLCORE_HOME") or pathlib.Path.home() / ".tlcore").expanduser()


def default_runs_dir() -> pathlib.Path:
    return tlcore_home() / "runs"


def cache_dir() -> pathlib.Path:
    return tlcore_home() / "cache"


def zip_cache_dir() -> pathlib.Path:
    """Where uploaded or given .zip datasets are extracted."""
    return cache_dir() / "zips"


def converted_images_dir() -> pathlib.Path:
    """Where images TensorFlow cannot decode are kept as plain PNG copies."""
    return cache_dir() / "converted"


def uploads_dir() -> pathlib.Path:
    """Where the app stores datasets uploaded through the browser."""
    return tlcore_home() / "uploads"


def locks_dir() -> pathlib.Path:
    return tlcore_home() / "locks"


def create_unique_folder(root: pathlib.Path, names: Iterable[str], what: str) -> pathlib.Path:
    """Create and return the first folder of `names` that does not exist yet under `root`.

    `mkdir` without `exist_ok` is the test, so two processes asking at once
    never get the same folder.

    Raises:
        InputError: every name is taken, or `root` cannot be written.
    """
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        candidate = root / name
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise InputError(f"cannot create a new {what} folder in {str(root)!r}; too many were made this second, or it is not writable.")


def format_size(byte_count: int) -> str:
    """A byte count for people: '2.0 GB', '1.0 MB', '512 bytes'."""
    for unit_name, unit_bytes in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if byte_count >= unit_bytes:
            return f"{byte_count / unit_bytes:.1f} {unit_name}"
    return f"{byte_count} bytes"
