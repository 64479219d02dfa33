"""The model and training code run on Keras's JAX backend too, not only on TensorFlow.

The lent GPU machines have JAX and PyTorch but no TensorFlow build for their GPU,
so a GPU measurement there goes through `KERAS_BACKEND=jax`. That works only while
the model-building and training code stays backend-neutral (Keras layers, ops and
callbacks; TensorFlow confined to reading images and to export). This trains a
whole run on the JAX backend on the CPU, with the feature cache and augmented
views, and checks that the saved model gives the same answers under TensorFlow.
Skips when JAX is not installed.
"""

import importlib.util
import os

import numpy as np
import pytest
from conftest import assert_clean_success, last_json_line, tlcore_cli

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax (pip install jax) for KERAS_BACKEND=jax")


@pytest.fixture(scope="module")
def jax_run(shared_tiny_dataset, tmp_path_factory):
    home = tmp_path_factory.mktemp("jax_home")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TLCORE_HOME": str(home / "tlcore"), "KERAS_HOME": str(home / "keras")}
    result = tlcore_cli(
        "train", shared_tiny_dataset, "--backbone", "mobilenetv2_035", "--weights", "none", "--image-size", 32,
        "--epochs", 2, "--batch-size", 8, "--learning-rate", 0.01, "--seed", 1,
        "--freeze", "top:2", "--augment", "light", "--json",
        env=env,
    )
    return result, env


def test_a_run_trains_on_cached_augmented_features_on_the_jax_backend(jax_run):
    result, _ = jax_run

    assert_clean_success(result)
    run = last_json_line(result)
    assert run["status"] == "completed" and run["epochs_run"] == 2
    assert run["feature_cache"].startswith("on: before layer block_16_expand, 4 view(s)")
    assert 0.0 <= run["val_accuracy"] <= 1.0


def test_a_model_trained_on_jax_predicts_the_same_under_tensorflow(jax_run, shared_tiny_dataset):
    from tlcore.results.prediction import predict_files

    result, env = jax_run
    run_dir = last_json_line(result)["run_dir"]
    images = [shared_tiny_dataset / "circles" / "circles_00.png", shared_tiny_dataset / "stripes" / "stripes_03.jpg"]

    on_jax = tlcore_cli("predict", run_dir, *images, "--top-k", 3, "--json", env=env)
    on_tensorflow = predict_files(run_dir, images, top_k=3)  # this test process runs the TensorFlow backend

    assert_clean_success(on_jax)
    for jax_prediction, tf_prediction in zip(last_json_line(on_jax), on_tensorflow, strict=True):
        jax_top = {row["class"]: row["probability"] for row in jax_prediction["top"]}
        tf_top = dict(tf_prediction.top)
        assert set(jax_top) == set(tf_top)
        np.testing.assert_allclose([jax_top[name] for name in tf_top], list(tf_top.values()), atol=1e-4)
