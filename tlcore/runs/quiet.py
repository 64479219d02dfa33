"""Import TensorFlow for a command-line process: without its start-up chatter, and lean.

TensorFlow's native libraries print several lines (oneDNN, CUDA stubs) while
loading and while first looking for devices, before any logging setting can
take effect. For a command-line tool
whose stderr is for the user's messages, that noise buries the one `error:`
line that matters, so the import runs with file descriptor 2 pointed at
/dev/null. Python exceptions still propagate normally.

Keras and TensorFlow also import some packages merely because they are
installed, to accept their objects as inputs: pandas (DataFrames for `fit`) and
IPython (notebook display) for Keras; JAX (to convert JAX functions to TFLite)
and SciPy's sparse matrices (for the legacy tf.keras) for TensorFlow. No tlcore
command hands them any of these, and on a machine that has them installed
importing them costs over a second of a three-second start-up on a 2-core
laptop, so a command's import hides them. They stay importable afterwards
(Keras on the JAX backend imports JAX itself, after TensorFlow); only the
modules that probed for them keep believing they are absent, in that process.

The import also runs with Python's cyclic garbage collector paused. TensorFlow's
import creates some 440,000 objects, and the collector walks all of them several
times while they are being created: about 0.35 s of a 2-second import on a
2-core laptop, with nothing to collect (modules live as long as the process).
Afterwards those objects are frozen out of later collections (`gc.freeze`), so
building, tracing and training, which create many objects, do not keep walking
them either.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys

OPTIONAL_IMPORTS_KERAS_DOES_NOT_NEED = ("pandas", "IPython")
OPTIONAL_IMPORTS_TENSORFLOW_DOES_NOT_NEED = ("pandas", "IPython", "jax", "scipy.sparse")


def import_tensorflow_quietly() -> None:
    """Import tensorflow and keras once, with native stderr output silenced and the collector paused."""
    if "tensorflow" in sys.modules:
        return
    with collector_paused(), native_stderr_silenced():
        # TensorFlow's import may import Keras, and Keras its backend, which
        # may need JAX and SciPy: hide them only under the TensorFlow backend.
        tensorflow_backend = keras_backend_name() == "tensorflow"
        hidden = OPTIONAL_IMPORTS_TENSORFLOW_DOES_NOT_NEED if tensorflow_backend else OPTIONAL_IMPORTS_KERAS_DOES_NOT_NEED
        with hidden_modules(hidden):
            import tensorflow

            # Finding the devices loads the CUDA libraries, which complain (on
            # stderr) on a machine without a GPU; do it now, while stderr is
            # silenced, rather than at the first model, after it is restored.
            tensorflow.config.list_physical_devices()
        with hidden_modules(OPTIONAL_IMPORTS_KERAS_DOES_NOT_NEED):
            import keras  # noqa: F401


@contextlib.contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at /dev/null within the block (native libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def collector_paused():
    """Pause the cyclic garbage collector within the block; then freeze what exists out of later collections."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def keras_backend_name() -> str:
    """The backend Keras will load, found as Keras finds it, without importing Keras."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(keras_home, "keras.json"), encoding="utf-8") as handle:
            return json.load(handle).get("backend") or "tensorflow"
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


@contextlib.contextmanager
def hidden_modules(names):
    """Within the block, `import name` raises ImportError for each name not yet imported."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # what Python itself uses to mark a module as absent
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
