"""Let the app read dataset folders on the server, only under roots the operator chose.

When the app is served to a class, a text box that accepts any path would let
every visitor read any folder the server can. So reading a path on the server is
off unless the operator lists the folders to share in the environment variable
`TLCORE_DATA_ROOTS` (separated by `os.pathsep`, ":" on Linux and macOS, ";" on
Windows), and a path is accepted only when its real location - after following
every symbolic link and `..` - is inside one of those folders.

Example:
    # TLCORE_DATA_ROOTS=/srv/datasets:/home/teacher/pictures
    folder = resolve_server_path("/srv/datasets/flowers")
    tlcore.audit_dataset(folder)
"""

from __future__ import annotations

import os
import pathlib

from tlcore.data.images import is_ignored_name
from tlcore.errors import InputError

DATA_ROOTS_ENV_VAR = "TLCORE_DATA_ROOTS"
MAX_TYPED_PATH = 4096  # the longest path Linux accepts; a longer one is refused before it is resolved
MAX_LISTED_FOLDERS = 500


def configured_roots() -> list[pathlib.Path]:
    """The shared folders from `TLCORE_DATA_ROOTS`, resolved; empty when unset.

    Returns:
        Each listed folder's real path, in the given order, without duplicates.
        Entries that do not exist are kept (they match nothing until created).
    """
    text = os.environ.get(DATA_ROOTS_ENV_VAR, "")
    roots: list[pathlib.Path] = []
    for entry in text.split(os.pathsep):
        entry = entry.strip()
        if not entry:
            continue
        root = pathlib.Path(entry).expanduser().resolve()
        if root not in roots:
            roots.append(root)
    return roots


def server_paths_enabled() -> bool:
    """True when the operator shared at least one folder."""
    return bool(configured_roots())


def resolve_server_path(text: str | os.PathLike) -> pathlib.Path:
    """Turn a path typed by a user into a real path inside a shared folder.

    A relative path is looked up under each shared folder in turn.

    Args:
        text: the path as typed, e.g. "/srv/datasets/flowers" or "flowers".

    Returns:
        The real (fully resolved) path, which exists and lies inside a root.

    Raises:
        InputError: the feature is off, the path is empty, outside every
            shared folder (also through a symbolic link or `..`), or missing.
    """
    roots = configured_roots()
    if not roots:
        raise InputError(
            "reading folders on the server is turned off. The person running the app can turn it on by "
            f"setting {DATA_ROOTS_ENV_VAR} to the folders to share (e.g. {DATA_ROOTS_ENV_VAR}=/srv/datasets) before starting it."
        )
    typed = str(text).strip()
    if not typed:
        raise InputError("no path given; type the path of a folder inside " + _roots_text(roots) + ".")
    if len(typed) > MAX_TYPED_PATH or "\x00" in typed:
        shown = typed[:60] + ("…" if len(typed) > 60 else "")
        raise InputError(f"{shown!r} is not a usable path (longer than {MAX_TYPED_PATH} characters, or holding a NUL "
                         f"character); type the path of a folder inside {_roots_text(roots)}.")
    try:
        inside = _resolved_inside(typed, roots)
        existing = next((real for real in inside if real.exists()), None)
    except (OSError, RuntimeError, ValueError) as error:  # a link loop, a name too long for the file system
        raise InputError(f"{typed!r} cannot be opened ({getattr(error, 'strerror', None) or error}); "
                         f"type the path of a folder inside {_roots_text(roots)}.") from None
    if existing is not None:
        return existing
    if inside:
        raise InputError(f"{typed!r} does not exist; check the spelling. Shared folders: {_roots_text(roots)}.")
    raise InputError(
        f"{typed!r} is outside the folders this server shares, so it cannot be used; "
        f"pick a folder inside {_roots_text(roots)}."
    )


def _resolved_inside(typed: str, roots: list[pathlib.Path]) -> list[pathlib.Path]:
    """The real locations the typed path may mean (itself, or below each root) that lie inside a root."""
    path = pathlib.Path(typed).expanduser()
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    return [real for real in (candidate.resolve(strict=False) for candidate in candidates) if is_inside_roots(real, roots)]


def is_inside_roots(real_path: pathlib.Path, roots: list[pathlib.Path] | None = None) -> bool:
    """True when an already resolved path is a shared folder or lies below one."""
    roots = configured_roots() if roots is None else roots
    return any(real_path == root or real_path.is_relative_to(root) for root in roots)


def list_shared_folders(max_depth: int = 2) -> list[pathlib.Path]:
    """Folders a user may pick: the roots and their visible sub-folders, a few levels down.

    Symbolic links are not followed, hidden folders are left out, and at most
    `MAX_LISTED_FOLDERS` are listed.
    """
    found: list[pathlib.Path] = []
    for root in configured_roots():
        if not root.is_dir():
            continue
        found.append(root)
        level = [root]
        for _ in range(max_depth):
            next_level = []
            for folder in level:
                try:
                    children = sorted(folder.iterdir(), key=lambda p: p.name.lower())
                except OSError:
                    continue
                next_level += [c for c in children if c.is_dir() and not c.is_symlink() and not is_ignored_name(c.name)]
            found += next_level
            level = next_level
            if len(found) >= MAX_LISTED_FOLDERS:
                return found[:MAX_LISTED_FOLDERS]
    return found


def _roots_text(roots: list[pathlib.Path]) -> str:
    return ", ".join(str(root) for root in roots)
