"""Numbers and names said for people: percentages, run states, model titles, dataset names."""

from __future__ import annotations

import pathlib

import tlcore

STATE_WORDS = {
    "waiting": "waiting in line",
    "queued": "starting",
    "running": "training",
    "completed": "finished",
    "stopped": "stopped",
    "failed": "failed",
    "interrupted": "interrupted",
    "unknown": "unknown",
    "damaged": "damaged (cannot be read)",
}


def percent(value: float | None, decimals: int = 0) -> str:
    """0.875 -> "88%" (or "87.5%" with decimals=1); None -> "?"."""
    return "?" if value is None else f"{value:.{decimals}%}"


def count(number: int, noun: str, plural: str | None = None) -> str:
    """1, "picture" -> "1 picture"; 3 -> "3 pictures" (or the plural given, "copies")."""
    return f"{number} {noun}" if number == 1 else f"{number} {plural or noun + 's'}"


def state_word(state: str | None) -> str | None:
    """A run's state as the pages say it ("completed" -> "finished")."""
    return STATE_WORDS.get(state, state)


def dataset_name(path: str) -> str:
    """The folder's own name, as people call their dataset."""
    return pathlib.Path(path).name or str(path)


def shared_folder(path: str) -> str | None:
    """The dataset's path when it lies in a folder the operator shared (the user picked it there); else None.

    An upload or the demo lives in this computer's own folders, whose paths are
    no business of the person using the app.
    """
    try:
        real = pathlib.Path(path).resolve()
    except (OSError, RuntimeError):
        return None
    return str(real) if any(real == root or root in real.parents for root in tlcore.configured_roots()) else None


def backbone_title(name: str | None) -> str:
    """A backbone's title for people ("MobileNetV2 (width 0.35)"); the name itself when unknown."""
    for row in tlcore.list_backbones():
        if row["name"] == name:
            return row["title"]
    return name or "?"
