"""The run directory: the single source of truth about one training run.

A run lives in its own folder, written by the training process and read by
anyone (the CLI, the app's pages, a notebook):

- `config.json`     the `TrainConfig`
- `status.json`     state and message, replaced atomically (never half-written)
- `metrics.jsonl`   append-only; one JSON object per line (epoch and progress rows)
- `labels.json`     class names in output order
- `split.json`      which files were used for training, validation and test
- `model.keras`     the best model so far, replaced atomically
- `evaluation.json` metrics on the validation (and test) images
- `STOP`            present when a stop was requested

A run's state (status.json "state"): waiting (in line for a training slot,
`tlcore.runs.queue`), queued (its training process is starting), running,
then completed, stopped, failed or interrupted (its process died). A run
whose files cannot be read is `damaged` (`DamagedRunError` says which file
and why); listings show it as one line, and the other runs as before.

Whether the training process is alive is told by a lock it holds on
`.worker.lock`: the operating system releases the lock when the process dies,
however it dies (even SIGKILL), so a dead run is never reported as running.
"""

from __future__ import annotations

import datetime as _datetime
import json
import os
import pathlib
import re
import threading

from tlcore import paths
from tlcore.errors import DamagedRunError, InputError

try:
    import fcntl
except ImportError:  # Windows: fall back to checking the process id
    fcntl = None



CONFIG_FILE = "config.json"


STATUS_FILE = "status.json"


METRICS_FILE = "metrics.jsonl"


LABELS_FILE = "labels.json"


SPLIT_FILE = "split.json"


MODEL_FILE = "model.keras"
MODEL_FACTS_FILE = "model.json"  # the saved model's epoch and validation scores, written after each save


EVALUATION_FILE = "evaluation.json"


STOP_FILE = "STOP"


WORKER_LOCK_FILE = ".worker.lock"


LOG_FILE = "worker.log"


PID_FILE = "worker.pid"


QUEUED_GRACE_S = 60
MAX_RUN_NAME = 200  # longer than any folder `new_run_dir` makes; a longer name is not looked up


# waiting: in line for a training slot; queued: its training process is starting; running: it trains.
ACTIVE_STATES = ("waiting", "queued", "running")
# A run whose status.json or config.json cannot be read (`DamagedRunError`): listed with the reason, never trained on.
DAMAGED = "damaged"




def write_json_atomic(path: pathlib.Path, data) -> None:
    """Write JSON so readers see the old file or the new one, never a mix."""
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a file name that is not valid UTF-8: \u escapes load back the same
        text = json.dumps(data, indent=2, ensure_ascii=True, default=str)
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk must not leave stray temporary files behind
        raise


def read_json(path: pathlib.Path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


_KINDS = {dict: "an object ({...})", list: "a list ([...])"}


def read_run_file(run_dir: str | os.PathLike, file_name: str, expected: type, default=None):
    """One JSON file of a run folder, checked to be what tlcore writes there.

    Args:
        run_dir: the run folder.
        file_name: the file in it (`CONFIG_FILE`, `STATUS_FILE`, ...).
        expected: the JSON type it must hold (`dict` or `list`).
        default: what a missing file reads as (a run that has not written it yet).

    Returns:
        The file's content, or `default` when there is no such file.

    Raises:
        DamagedRunError: the file is there but cannot be read, is not UTF-8 JSON,
            or holds another type; the run shows as damaged with that reason.
    """
    path = pathlib.Path(run_dir) / file_name
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return default
    except UnicodeDecodeError:
        raise DamagedRunError(pathlib.Path(run_dir), file_name, "is not text (it holds bytes that are not UTF-8)") from None
    except json.JSONDecodeError as error:
        raise DamagedRunError(pathlib.Path(run_dir), file_name,
                              f"is not valid JSON (line {error.lineno}: {error.msg.lower()})") from None
    except (OSError, ValueError) as error:
        raise DamagedRunError(pathlib.Path(run_dir), file_name, f"cannot be read ({error.__class__.__name__})") from None
    if not isinstance(data, expected):
        found = _KINDS.get(type(data), f"a {type(data).__name__}")
        raise DamagedRunError(pathlib.Path(run_dir), file_name,
                              f"holds {found} where {_KINDS.get(expected, expected.__name__)} was expected")
    return data


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return slug[:40] or "data"


def new_run_dir(runs_dir: str | os.PathLike | None, backbone: str, data: str) -> pathlib.Path:
    """Create a fresh, uniquely named run folder like `20261122-143005-mobilenetv2_035-flowers`."""
    root = pathlib.Path(runs_dir) if runs_dir else paths.default_runs_dir()
    stamp = _datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{backbone}-{_slug(pathlib.Path(data).stem)}"
    return paths.create_unique_folder(root, (base + suffix for suffix in [""] + [f"-{n}" for n in range(2, 1000)]), "run")


def require_run_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """Check that a path is a run folder, with a helpful message if not."""
    path = pathlib.Path(run_dir).expanduser()
    if not (path / CONFIG_FILE).is_file():
        raise InputError(
            f"{str(run_dir)!r} is not a tlcore run folder (no {CONFIG_FILE} in it); "
            "`tlcore runs` lists the runs there are."
        )
    return path


# The settings every listing reads from a config.json, and the type each must have (None is allowed: not given).
_LISTED_SETTINGS = {"data": str, "backbone": str}


def run_config(run_dir: str | os.PathLike) -> dict:
    """The run's `config.json` as a dict ({} when it is missing); `TrainConfig.from_run` validates every setting.

    Raises:
        DamagedRunError: config.json is not a JSON object, or a setting that
            listings show (`data`, `backbone`) is not text.
    """
    config = read_run_file(run_dir, CONFIG_FILE, dict, {})
    for name, kind in _LISTED_SETTINGS.items():
        if config.get(name) is not None and not isinstance(config[name], kind):
            raise DamagedRunError(pathlib.Path(run_dir), CONFIG_FILE,
                                  f"gives {name} as {repr(config[name])[:60]}, where text was expected")
    return config


def run_split(run_dir: str | os.PathLike) -> dict[str, list[list[str]]]:
    """The run's `split.json`: {"train"|"val"|"test": [[relative path, class, path], ...]} ({} before it was written).

    Raises:
        DamagedRunError: the file cannot be read, or lists pictures in another form.
    """
    split = read_run_file(run_dir, SPLIT_FILE, dict, {})
    for name, entries in split.items():
        if not isinstance(entries, list) or not all(
                isinstance(entry, list) and len(entry) == 3 and all(isinstance(part, str) for part in entry)
                for entry in entries):
            raise DamagedRunError(pathlib.Path(run_dir), SPLIT_FILE,
                                  f"lists its {str(name)[:20]} pictures in a form tlcore does not write")
    return split


def run_labels(run_dir: str | os.PathLike) -> list[str]:
    """The run's class names in output order ([] before training wrote them)."""
    labels = read_json(pathlib.Path(run_dir) / LABELS_FILE, []) or []
    return [str(label) for label in labels] if isinstance(labels, list) else []


def has_evaluation(run_dir: str | os.PathLike) -> bool:
    return (pathlib.Path(run_dir) / EVALUATION_FILE).is_file()


def find_run(name: str | None, runs_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """The run folder called `name` in the runs folder, or None; never a path outside it.

    A name from the address bar or a form is untrusted: anything that is not a
    plain folder name (a path, `..`, a hidden name, a name too long for the
    file system) is simply not found.
    """
    if not isinstance(name, str) or not name or len(name) > MAX_RUN_NAME or name != pathlib.PurePath(name).name:
        return None
    if name.startswith(".") or "\x00" in name:
        return None
    candidate = (pathlib.Path(runs_dir) if runs_dir else paths.default_runs_dir()) / name
    try:
        return candidate if (candidate / CONFIG_FILE).is_file() else None
    except (OSError, ValueError):
        return None


def write_model_facts(run_dir: str | os.PathLike, facts: dict) -> None:
    """Record what the model.keras just saved scored, so listings show the model that is kept, not a later epoch."""
    write_json_atomic(pathlib.Path(run_dir) / MODEL_FACTS_FILE, facts)


def model_facts(run_dir: str | os.PathLike) -> dict:
    """The saved model's epoch and scores ({} when no model was saved by this version)."""
    facts = read_json(pathlib.Path(run_dir) / MODEL_FACTS_FILE, {}) or {}
    return facts if isinstance(facts, dict) else {}
