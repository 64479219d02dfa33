"""Import TensorFlow without its C++ start-up chatter on stderr.

TensorFlow's native libraries print several lines (oneDNN, CUDA stubs) while
loading, before any logging setting can take effect. For a command-line tool
whose stderr is for the user's messages, that noise buries the one `error:`
line that matters, so the import runs with file descriptor 2 pointed at
/dev/null. Python exceptions still propagate normally.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """Import tensorflow and keras once, with native stderr output silenced."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
