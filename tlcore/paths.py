"""Where tlcore keeps its files: runs, caches, the demo dataset.

Everything lives under `$TLCORE_HOME` (default `~/.tlcore`), so the app and the
CLI see the same runs, and one folder holds all a user has to back up or delete.
"""

from __future__ import annotations

import os
import pathlib


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
