"""Where tlcore keeps its files: runs, caches, the demo dataset, and whose space they are in.

Everything lives under `$TLCORE_HOME` (default `~/.tlcore`), so the app and the
CLI see the same runs, and one folder holds all a user has to back up or delete.

In classroom mode (`tlcore users add`), each person has their own space,
`$TLCORE_HOME/users/<name>/`, laid out as a personal home is (runs, uploads,
caches, app_state.json). `tlcore_home()` is the space of the current user, and
every function that finds a file asks it, so the rest of tlcore works in a
student's space without knowing it. What belongs to the machine (the training
slots and the queue's locks, the line of waiting runs, the accounts, the spare
processes, the shared demo dataset) lives under `machine_home()`.

Who the current user is, is decided here and only here (`current_user`):
1. `as_user(name)` in this thread or task (a contextvar);
2. else the app's source, registered once with `set_user_source`: the Streamlit
   server has one process for every browser, so it asks the browser session of
   the thread that runs (each session's script runs in its own thread);
3. else `$TLCORE_USER`, which is how a training process started for a student
   learns whose run it trains;
4. else nobody: the personal home (one person on their own computer, or the
   operator at the command line).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import pathlib
import re
from typing import Callable, Iterable, Iterator

from tlcore.errors import InputError

# A Windows drive letter at the start of a name (`C:`): never a place to write to.
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


USER_ENV_VAR = "TLCORE_USER"
USERS_FOLDER = "users"
# A user name is a folder name: lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit.
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")

_NOBODY = ""  # `as_user(None)`: the personal home, whatever the app's source or $TLCORE_USER say
_user: contextvars.ContextVar[str | None] = contextvars.ContextVar("tlcore_user", default=None)
_user_source: Callable[[], str | None] | None = None


def machine_home() -> pathlib.Path:
    """`$TLCORE_HOME`, or `~/.tlcore` when it is not set: the machine's folder, above every user's space."""
    return pathlib.Path(os.environ.get("TLCORE_HOME") or pathlib.Path.home() / ".tlcore").expanduser()


def check_user_name(name: str) -> str:
    """The name, if it can be a user's (and so a folder's) name.

    Raises:
        InputError: anything else, with the rule.
    """
    if not isinstance(name, str) or not USER_NAME.match(name):
        shown = name[:40] if isinstance(name, str) else name
        raise InputError(f"{shown!r} is not a usable user name; use 1 to 32 lower-case letters, digits, '.', '_' "
                         "or '-', starting with a letter or digit (e.g. 'ada' or 'class3b-07').")
    return name


def current_user() -> str | None:
    """Whose space tlcore works in now (None: the personal home); see the module's docstring for the order."""
    name = _user.get()
    if name == _NOBODY:
        return None
    if name is None and _user_source is not None:
        name = _user_source()
    if name is None:
        name = os.environ.get(USER_ENV_VAR) or None
    return check_user_name(name) if name is not None else None


def set_user_source(source: Callable[[], str | None] | None) -> None:
    """Register the function that names the current user where no `as_user` says (the app's browser sessions)."""
    global _user_source
    _user_source = source


@contextlib.contextmanager
def as_user(name: str | None) -> Iterator[None]:
    """Work in `name`'s space inside the block (this thread or task only); None: no one's, the personal home."""
    token = _user.set(check_user_name(name) if name is not None else _NOBODY)
    try:
        yield
    finally:
        _user.reset(token)


def user_home(name: str) -> pathlib.Path:
    """`$TLCORE_HOME/users/<name>`: one person's space in classroom mode."""
    return machine_home() / USERS_FOLDER / check_user_name(name)


def tlcore_home() -> pathlib.Path:
    """The current user's space: `$TLCORE_HOME/users/<name>` in classroom mode, else `$TLCORE_HOME` (`~/.tlcore`)."""
    name = current_user()
    return user_home(name) if name is not None else machine_home()


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


def own_weights_dir() -> pathlib.Path:
    """Where the current user's imported pretrained weights are kept: for their runs only."""
    return tlcore_home() / "weights"


def uploads_dir() -> pathlib.Path:
    """Where the app stores datasets uploaded through the browser."""
    return tlcore_home() / "uploads"


def shown_path(path: str | os.PathLike) -> str:
    """A path as a message names it to its user: an upload by the name it was uploaded with, never its server path.

    Inside the current user's uploads folder (`uploads/<id>/pets.zip`), the part
    below the upload's own folder ("pets.zip", "pets/cats"); the upload folder
    itself is "your upload". Anywhere else (a folder the user typed or picked),
    the path as given.
    """
    text = os.fspath(path)
    try:
        relative = pathlib.Path(text).resolve().relative_to(uploads_dir().resolve())
    except (ValueError, OSError, RuntimeError):
        return text
    return "/".join(relative.parts[1:]) or "your upload"


def demo_dataset_dir() -> pathlib.Path:
    """`$TLCORE_HOME/demo/shapes`: the built-in demo dataset, one for the machine (the class board compares runs on it)."""
    return machine_home() / "demo" / "shapes"


def locks_dir() -> pathlib.Path:
    """The machine's locks (training slots, the queue's dispatch): the same for every user."""
    return machine_home() / "locks"


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
