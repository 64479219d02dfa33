"""What the command line prints: strict JSON (no NaN), any file name on any console.
"""

from __future__ import annotations

import json
import math
import sys


def json_safe(value):
    """The value with every NaN or infinity replaced by None: strict JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def print_json(value) -> None:
    value = json_safe(value)
    text = json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
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
