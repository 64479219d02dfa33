"""The CLI's TensorFlow import: silent on stderr, without the optional packages Keras does not need."""

import subprocess
import sys

SCRIPT = """
import sys
from tlcore.runs.quiet import import_tensorflow_quietly
import gc
import_tensorflow_quietly()
print("pandas" in sys.modules, "IPython" in sys.modules, "jax" in sys.modules, "scipy.sparse" in sys.modules)
# The collector runs again, and TensorFlow's objects are out of its way.
print(gc.isenabled(), gc.get_freeze_count() > 100_000)
import keras, numpy as np
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.compile(loss="mse")
model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)  # Keras still trains on arrays
import pandas  # and pandas stays importable for anything else
print(pandas.DataFrame({"a": [1]}).shape)
import importlib.util
for name in ("jax", "scipy"):  # the others stay importable too, where installed
    if importlib.util.find_spec(name):
        importlib.import_module(name + (".sparse" if name == "scipy" else ""))
print("ok")
"""


def test_import_is_silent_and_leaves_out_optional_packages_yet_they_stay_importable():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["False False False False", "True True", "(1, 1)", "ok"]
    assert "oneDNN" not in result.stderr  # printed by the native libraries while loading


def test_the_backend_is_found_as_keras_finds_it(tmp_path, monkeypatch):
    from tlcore.runs.quiet import keras_backend_name

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_backend_name() == "tensorflow"
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    assert keras_backend_name() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert keras_backend_name() == "torch"
    (tmp_path / "keras.json").write_text("not json")
    monkeypatch.delenv("KERAS_BACKEND")
    assert keras_backend_name() == "tensorflow"


def test_a_paused_collector_stays_off_if_it_was_off(monkeypatch):
    import gc

    from tlcore.runs.quiet import collector_paused

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))  # not this test process's objects
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled() and frozen == [True]
    finally:
        gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() and frozen == [True, True]
