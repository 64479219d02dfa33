"""What the command line prints: strict JSON (no NaN), any file name on any console, names as text.

A class or file name can hold a line break, a terminal escape or a Unicode
direction override; printed raw it would split a table row or make a line read
as something else. Lines for people go through `say`, JSON through
`print_json`: both show such characters as escapes (`tlcore.text`).
"""

from __future__ import annotations

import json
import math
import sys

from tlcore.text import HIDDEN_CHARACTERS, terminal_text


def json_safe(value):
    """The value with every NaN or infinity replaced by None: strict JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def say(text: object = "", *, file=None, flush: bool = False) -> None:
    """Print one line for people (to stdout, or `file`), its names unable to break it (`tlcore.text.terminal_text`).

    The CLI's own words hold no control characters, so escaping the whole line
    escapes exactly what the names brought in.
    """
    print(terminal_text(text), file=file or sys.stdout, flush=flush)


def print_json(value) -> None:
    """One line of strict JSON; control and direction characters in names as \\u escapes, which decode back to them."""
    value = json_safe(value)
    # json.dumps escapes C0 controls itself, but with ensure_ascii=False leaves C1 controls, line separators
    # and direction overrides as they are; their \\u escapes are the same JSON value.
    text = HIDDEN_CHARACTERS.sub(lambda hidden: f"\\u{ord(hidden[0]):04x}",
                                 json.dumps(value, ensure_ascii=False, default=str, allow_nan=False))
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except UnicodeEncodeError:
        # A file name that is not valid UTF-8, or a console that is not UTF-8:
        # \u escapes are valid JSON and decode back to the same name.
        text = json.dumps(value, ensure_ascii=True, default=str, allow_nan=False)
    print(text)


def tolerate_unprintable_names() -> None:
    """Print any file name instead of failing on one the console cannot encode.

    A name that is not valid UTF-8 (common in old zips and memory cards) would
    otherwise end a command with UnicodeEncodeError on a strict UTF-8 console.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
