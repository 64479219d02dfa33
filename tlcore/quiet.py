"""Import TensorFlow for a command-line process: without its start-up chatter, and lean.

TensorFlow's native libraries print several lines (oneDNN, CUDA stubs) while
loading and while first looking for devices, before any logging setting can
take effect. For a command-line tool
whose stderr is for the user's messages, that noise buries the one `error:`
line that matters, so the import runs with file descriptor 2 pointed at
/dev/null. Python exceptions still propagate normally.

Keras also imports some packages merely because they are installed, to accept
their objects as inputs: pandas (DataFrames for `fit`) and IPython (notebook
display). No tlcore command hands Keras either, and importing them costs about
half a second of a three-second start-up on a 2-core laptop, so a command's
import hides them from Keras. They stay importable afterwards; only Keras
keeps believing they are absent, in that process.
"""

from __future__ import annotations

import os
import sys

OPTIONAL_IMPORTS_KERAS_DOES_NOT_NEED = ("pandas", "IPython")


def import_tensorflow_quietly() -> None:
    """Import tensorflow and keras once, with native stderr output silenced."""
    if "tensorflow" in sys.modules:
        return
    hidden = [name for name in OPTIONAL_IMPORTS_KERAS_DOES_NOT_NEED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # makes `import name` raise ImportError, which Keras handles
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
            import tensorflow

            # Finding the devices loads the CUDA libraries, which complain (on
            # stderr) on a machine without a GPU; do it now, while stderr is
            # silenced, rather than at the first model, after it is restored.
            tensorflow.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
