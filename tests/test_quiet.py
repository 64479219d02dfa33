"""The CLI's TensorFlow import: silent on stderr, without the optional packages Keras does not need."""

import subprocess
import sys

SCRIPT = """
import sys
from tlcore.quiet import import_tensorflow_quietly
import_tensorflow_quietly()
print("pandas" in sys.modules, "IPython" in sys.modules)
import keras, numpy as np
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.compile(loss="mse")
model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)  # Keras still trains on arrays
import pandas  # and pandas stays importable for anything else
print(pandas.DataFrame({"a": [1]}).shape)
"""


def test_import_is_silent_and_leaves_out_pandas_and_ipython_yet_both_stay_importable():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["False False", "(1, 1)"]
    assert "oneDNN" not in result.stderr  # printed by the native libraries while loading
