"""The memory budgets hold on a set made large by small pictures: beyond them, features go to a file and pictures stream.

Measured with `tracemalloc`, which counts numpy's arrays and Python's objects
(not memory-mapped files, nor TensorFlow's own buffers): the same run with the
budgets as they ship, where 2,100 pictures' decoded images and features are
held in memory, and with budgets below that, where neither may be; against a
run on 24 pictures, the tight run may hold only what every run holds (about
11 MB of Keras's and TensorFlow's objects) and a little per picture.
"""

import shutil
import tracemalloc

import numpy as np
from conftest import write_class_folders

from tlcore.runs import folder as run_folder
from tlcore.training import feature_cache, feature_store, features, pipeline
from tlcore.training.run import train

PER_CLASS = 700  # 3 classes: 2,100 pictures of 8 x 8 pixels, trained at 32 px
IMAGE_SIZE = 32
POOLED_FEATURES = 1280  # MobileNetV2's pooled features per picture, when the whole backbone is frozen


def small_pictures(root, per_class):
    return write_class_folders(root, {"circles": per_class, "stripes": per_class, "squares": per_class}, size=8)


def peak_bytes_of_a_run(data, tiny_config, runs_dir):
    shutil.rmtree(feature_store.store_dir(), ignore_errors=True)  # computed anew, not read from an earlier run
    tracemalloc.start()
    try:
        result = train(tiny_config(data, epochs=1, batch_size=64, image_size=IMAGE_SIZE), runs_dir=runs_dir)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_beyond_the_budgets_features_go_to_a_file_pictures_stream_and_memory_stays_low(tiny_config, tmp_path, monkeypatch):
    many_small_pictures = small_pictures(tmp_path / "many", PER_CLASS)
    pictures = 3 * PER_CLASS
    held = pipeline.decoded_bytes(pictures, IMAGE_SIZE) + pictures * POOLED_FEATURES * 4  # 6.5 MB + 10.8 MB
    # First, as shipped: this run also pays the process's one-time costs (imports, first traces).
    as_shipped, peak_as_shipped = peak_bytes_of_a_run(many_small_pictures, tiny_config, tmp_path / "shipped")
    assert as_shipped.status == "completed" and "in memory" in as_shipped.feature_cache
    _, peak_of_a_small_run = peak_bytes_of_a_run(small_pictures(tmp_path / "few", 8), tiny_config, tmp_path / "few_runs")

    monkeypatch.setattr(feature_cache, "MEMORY_BUDGET_BYTES", 1_000_000)
    monkeypatch.setattr(pipeline, "DEFAULT_DECODE_CACHE_BYTES", 1_000_000)
    arrays = []
    allocate = features.allocate
    monkeypatch.setattr(features, "allocate", lambda *a, **k: arrays.append(allocate(*a, **k)) or arrays[-1])
    decodings = []
    monkeypatch.setattr(pipeline, "BackgroundDecoding", lambda *a, **k: decodings.append(a))
    tight, peak_tight = peak_bytes_of_a_run(many_small_pictures, tiny_config, tmp_path / "tight")

    assert tight.status == "completed"
    assert "on disk" in tight.feature_cache, "the run says what it did"
    assert arrays and all(isinstance(array, np.memmap) for array in arrays), "and did it"
    assert not decodings, "pictures beyond the decode budget stream from their files"
    assert not list(run_folder.require_run_dir(tight.run_dir).glob("features_*.npy")), "the files go with the run"
    assert peak_as_shipped - peak_tight > 0.8 * held, (peak_as_shipped, peak_tight)
    grown = peak_tight - peak_of_a_small_run
    assert grown < held / 4, f"{grown / 1e6:.1f} MB more than a 24-picture run, against {held / 1e6:.1f} MB of pictures and features"
