"""Shared fixtures: isolated home folders, a tiny synthetic dataset, the shared weights and photos.

No test may touch the user's `~/.tlcore` or `~/.keras`. Keras reads `KERAS_HOME`
once, when it is imported (for its download cache), and test modules import
Keras while they are collected, so `pytest_configure` points both variables at a
session folder before anything is imported; the autouse fixture then gives every
test its own, fresh pair.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = pathlib.Path(__file__).resolve().parents[2] / "shared"
SHARED_WEIGHTS_DIR = SHARED_DIR / "keras-weights"
SHARED_DATASETS_DIR = SHARED_DIR / "datasets"

# Three classes, each with its own colour and shape: colour alone tells them
# apart, so a pretrained backbone learns them in a few epochs even at 32 px.
TINY_CLASSES = ("circles", "stripes", "squares")
_CLASS_COLOURS = {"circles": (220, 40, 40), "stripes": (40, 200, 40), "squares": (40, 60, 220)}

_session_home: pathlib.Path | None = None


def pytest_configure(config):
    global _session_home
    _session_home = pathlib.Path(tempfile.mkdtemp(prefix="tlcore-tests-"))
    os.environ["TLCORE_HOME"] = str(_session_home / "tlcore")
    os.environ["KERAS_HOME"] = str(_session_home / "keras")
    # No spare training processes (tlcore.spare) but in the tests that start them on purpose.
    os.environ["TLCORE_SPARE"] = "0"
    # Never ask the internet whether weights could be downloaded (the presets' choice of network asks otherwise).
    os.environ["TLCORE_OFFLINE"] = "1"
    # No test times a network: a page or `tlcore train` choosing the preset's network uses recorded figures or
    # first guesses (tests/training/test_backbone_choice.py and tests/cli/test_measure_speed.py test the probe).
    os.environ["TLCORE_SPEED_PROBE"] = "off"


def pytest_unconfigure(config):
    if _session_home is not None:
        shutil.rmtree(_session_home, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_homes(tmp_path_factory, monkeypatch):
    """Give each test its own empty TLCORE_HOME and KERAS_HOME."""
    root = tmp_path_factory.mktemp("homes")
    monkeypatch.setenv("TLCORE_HOME", str(root / "tlcore"))
    monkeypatch.setenv("KERAS_HOME", str(root / "keras"))
    return root


# ----------------------------------------------------------------- synthetic images


def draw_tiny_image(label: str, index: int, size: int = 32) -> Image.Image:
    """One image of a tiny class: its colour, its pattern, a little seeded noise."""
    rng = np.random.default_rng(zlib.crc32(f"{label}:{index}".encode()))
    colour = np.array(_CLASS_COLOURS.get(label, (128, 128, 128)), dtype=float)
    pixels = np.full((size, size, 3), 30.0)
    yy, xx = np.mgrid[0:size, 0:size]
    if label == "circles":
        mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    elif label == "stripes":
        mask = (yy // 4) % 2 == 0
    else:
        mask = (abs(yy - size / 2) < size / 3) & (abs(xx - size / 2) < size / 3)
    pixels[mask] = colour
    pixels += rng.normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"), "RGB")


def write_class_folders(root: pathlib.Path, counts: dict[str, int], size: int = 32) -> pathlib.Path:
    """Write `root/<class>/<class>_NN.{png,jpg}`; every other image is a JPEG."""
    for label, count in counts.items():
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = draw_tiny_image(label, index, size)
            if index % 2:
                image.save(folder / f"{label}_{index:02d}.jpg", quality=95)
            else:
                image.save(folder / f"{label}_{index:02d}.png")
    return root


def smooth_picture(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A smooth random picture; different seeds give unrelated pictures (no accidental duplicates)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def save_image(root: pathlib.Path, relative: str, image: Image.Image, **options) -> pathlib.Path:
    """Save `image` as `root/relative`, making its folders."""
    path = pathlib.Path(root) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def make_tiny_dataset(root: pathlib.Path, per_class: int = 8) -> pathlib.Path:
    return write_class_folders(root, dict.fromkeys(TINY_CLASSES, per_class))


@pytest.fixture
def tiny_dataset(tmp_path) -> pathlib.Path:
    """3 classes x 8 images of 32x32 pixels (PNG and JPEG) in class folders."""
    return make_tiny_dataset(tmp_path / "tiny")


@pytest.fixture(scope="session")
def shared_tiny_dataset(tmp_path_factory) -> pathlib.Path:
    """The same tiny dataset, made once per session for module-scoped runs; do not modify it."""
    return make_tiny_dataset(tmp_path_factory.mktemp("shared") / "tiny")


@pytest.fixture(scope="session")
def image_writer():
    """`write(root, {class: count}, size=32)`: class folders of synthetic images."""
    return write_class_folders


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(data, **overrides)`: a `TrainConfig` that trains in seconds."""
    return make_tiny_config


def make_tiny_config(data, **overrides):
    """A `TrainConfig` that trains in seconds: random weights, 32 px, small batches."""
    from tlcore.training.config import TrainConfig

    options = dict(
        data=str(data),
        backbone="mobilenetv2_035",
        weights="none",
        image_size=32,
        epochs=2,
        batch_size=8,
        learning_rate=0.01,
        early_stopping_patience=0,
        reduce_lr_patience=0,
    )
    options.update(overrides)
    return TrainConfig(**options)


def tiny_image_batch(per_class: int = 4, size: int = 32) -> np.ndarray:
    """Raw float32 RGB images (0-255) of the tiny classes, class by class."""
    return np.stack(
        [np.asarray(draw_tiny_image(label, index, size)) for label in TINY_CLASSES for index in range(per_class)]
    ).astype("float32")


@pytest.fixture(scope="session")
def tiny_images():
    """`tiny_images(per_class=4, size=32)`: a raw float32 batch of the tiny classes."""
    return tiny_image_batch


def calibrate_batch_norm(model, images) -> None:
    """Make a random-weight tlcore classifier's outputs depend on its input.

    With random weights and BatchNormalization in inference mode (moving mean 0,
    variance 1), activations shrink layer after layer until every image gives
    the same output, which would make any comparison of outputs pass trivially.
    One training-mode pass with momentum 0 sets each BatchNormalization's moving
    statistics to those of `images`, as a real pretrained network's are.
    """
    import keras

    from tlcore.model.build import BACKBONE_LAYER, PREPROCESS_LAYER

    backbone = model.get_layer(BACKBONE_LAYER)
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    flags = [layer.trainable for layer in norms]
    trainable = backbone.trainable
    backbone.trainable = True
    for layer in norms:
        # tlcore freezes BatchNormalization at build; a frozen one never updates its statistics.
        layer.trainable = True
        layer.momentum = 0.0
    backbone(model.get_layer(PREPROCESS_LAYER)(images), training=True)
    for layer, momentum, flag in zip(norms, momenta, flags, strict=True):
        layer.momentum = momentum
        layer.trainable = flag
    backbone.trainable = trainable


@pytest.fixture(scope="session")
def batch_norm_calibrator():
    """`calibrate(model, images)`: see `calibrate_batch_norm`."""
    return calibrate_batch_norm


@pytest.fixture(scope="session")
def calibrated_classifier():
    """`calibrated_classifier(backbone, augment="none", seed=0)`: 3-class, 32 px ModelParts with live outputs."""

    def build(backbone_name: str = "mobilenetv2_035", augment: str = "none", seed: int = 0):
        import keras

        from tlcore.model.build import build_classifier

        keras.utils.set_random_seed(seed)
        parts = build_classifier(backbone_name, 3, 32, augment=augment, weights=None, seed=seed)
        calibrate_batch_norm(parts.model, tiny_image_batch(per_class=4))
        return parts

    return build


# ----------------------------------------------------------------- shared assets


SHARED_WEIGHTS_ABSENT = f"needs the offline ImageNet weights in {SHARED_WEIGHTS_DIR}, which are absent"


FULL_WIDTH_WEIGHTS = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def copy_keras_weights(keras_home: pathlib.Path, full_width: bool = False) -> pathlib.Path | None:
    """Copy the shared ImageNet weights into `keras_home/models`; None when they are absent.

    Without `full_width`, MobileNetV2 at full width is left out: the presets would pick it (6x the small
    networks' work), so tests of anything but that network get the small ones, as on a computer without it.
    """
    if not SHARED_WEIGHTS_DIR.is_dir() or not any(SHARED_WEIGHTS_DIR.glob("*.h5")):
        return None
    models = pathlib.Path(keras_home) / "models"
    models.mkdir(parents=True, exist_ok=True)
    for source in SHARED_WEIGHTS_DIR.iterdir():
        if source.name == FULL_WIDTH_WEIGHTS and not full_width:
            continue
        if source.is_file() and source.suffix in (".h5", ".json"):
            shutil.copyfile(source, models / source.name)
    return models


@pytest.fixture(scope="session")
def install_keras_weights():
    """`install(keras_home)`: copy the shared weights into `keras_home/models`; None when absent.

    For module-scoped fixtures, which cannot use the per-test `keras_weights_home`.
    """
    return copy_keras_weights


@pytest.fixture
def keras_weights_home() -> pathlib.Path:
    """$KERAS_HOME/models holding the shared ImageNet weights (skips when they are absent)."""
    models = copy_keras_weights(pathlib.Path(os.environ["KERAS_HOME"]))
    if models is None:
        pytest.skip(SHARED_WEIGHTS_ABSENT)
    return models


@pytest.fixture
def full_width_weights_home() -> pathlib.Path:
    """$KERAS_HOME/models holding all the shared ImageNet weights, MobileNetV2 at full width too (skips when absent)."""
    models = copy_keras_weights(pathlib.Path(os.environ["KERAS_HOME"]), full_width=True)
    if models is None or not (models / FULL_WIDTH_WEIGHTS).is_file():
        pytest.skip(SHARED_WEIGHTS_ABSENT)
    return models


@pytest.fixture(scope="session")
def shared_datasets() -> pathlib.Path:
    """The folder of shared real photo datasets (flowers5, weather4); skips when absent."""
    if not SHARED_DATASETS_DIR.is_dir():
        pytest.skip(f"needs the shared photo datasets in {SHARED_DATASETS_DIR}, which is absent")
    return SHARED_DATASETS_DIR


@pytest.fixture(scope="session")
def flowers_run(shared_datasets, tmp_path_factory):
    """(config, RunResult): a short run with the default settings on flowers5 (5 classes x 60 photos), made once.

    Its weights are the shared ImageNet ones in a KERAS_HOME of its own; skips when they or the photos are absent.
    Tests may add files under its `export/` folder, nothing else.
    """
    from tlcore.training.config import TrainConfig
    from tlcore.training.run import train

    flowers = shared_datasets / "flowers5"
    if not flowers.is_dir():
        pytest.skip(f"needs the flowers5 photos in {flowers}, which are absent")
    keras_home = tmp_path_factory.mktemp("flowers_keras_home")
    if copy_keras_weights(keras_home) is None:
        pytest.skip(SHARED_WEIGHTS_ABSENT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(keras_home))
        patch.setenv("TLCORE_HOME", str(tmp_path_factory.mktemp("flowers_tlcore_home")))
        config = TrainConfig(data=str(flowers), epochs=5)
        result = train(config, runs_dir=tmp_path_factory.mktemp("flowers_runs"))
    return config, result


def wait_for(condition, timeout: float = 120.0, what: str = "condition", interval: float = 0.05):
    """Poll `condition()` until it returns something true, and return that; fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


# ----------------------------------------------------------------- the command line in a subprocess

CLI_TIMEOUT_S = 300


def tlcore_cli(*args, env=None, timeout=CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run `python -m tlcore ARGS` with this test's environment (its TLCORE_HOME and KERAS_HOME)."""
    return subprocess.run(
        [sys.executable, "-m", "tlcore", *map(str, args)],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env or dict(os.environ), timeout=timeout,
    )


def last_json_line(result: subprocess.CompletedProcess):
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"no output; stderr: {result.stderr}"
    return json.loads(lines[-1])


def assert_clean_success(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# ----------------------------------------------------------------- a run made by hand, for the export tests
#
# A 32 px MobileNet whose head is fitted to the tiny images, so outputs differ
# from image to image and a broken export (wrong scaling, augmentation left in,
# dropout active) would show. With the shared ImageNet weights the backbone is
# the real one; without them a random network with calibrated BatchNormalization.

EXPORT_RUN_CLASSES = sorted(TINY_CLASSES)  # the order a run lists them in


def fit_head(model, images, labels) -> None:
    """Set the classifier to a ridge regression fitted on `images`: confident, image-dependent outputs."""
    import keras

    from tlcore.model.build import POOL_LAYER

    features = keras.Model(model.input, model.get_layer(POOL_LAYER).output).predict(images, verbose=0)
    centred = features - features.mean(axis=0)
    targets = np.eye(len(EXPORT_RUN_CLASSES))[labels] * 2 - 1
    gram = centred @ centred.T
    kernel = centred.T @ np.linalg.solve(gram + 1e-3 * np.trace(gram) / len(gram) * np.eye(len(gram)), targets)
    bias = -features.mean(axis=0) @ kernel
    model.get_layer("classifier").set_weights([3 * kernel, 3 * bias])


@pytest.fixture(scope="module")
def make_run(shared_tiny_dataset, install_keras_weights, batch_norm_calibrator, tmp_path_factory):
    """`make_run(backbone)`: (run folder, Keras model, raw images, weights), built once per backbone and module.

    Every picture is a training picture; every other one is also listed as a
    validation picture, so the parity check has pictures to score.
    """
    import keras

    from tlcore.model.build import build_classifier
    from tlcore.results.prediction import prepare_images
    from tlcore.runs import folder as run_folder
    from tlcore.training.callbacks import save_model_atomic

    files = sorted(str(path) for path in shared_tiny_dataset.rglob("*.*"))
    labels = np.array([EXPORT_RUN_CLASSES.index(pathlib.Path(file).parent.name) for file in files])
    images = prepare_images(files, 32)
    made = {}

    def make(backbone_name):
        if backbone_name in made:
            return made[backbone_name]
        keras_home = tmp_path_factory.mktemp("keras_home")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KERAS_HOME", str(keras_home))
            weights = "imagenet" if install_keras_weights(keras_home) else None
            keras.utils.set_random_seed(4)
            parts = build_classifier(backbone_name, 3, 32, augment="light", weights=weights, seed=4)
        if weights is None:
            batch_norm_calibrator(parts.model, images)
        fit_head(parts.model, images, labels)
        run_dir = tmp_path_factory.mktemp("run")
        save_model_atomic(parts.model, run_dir / run_folder.MODEL_FILE)
        config = {"data": str(shared_tiny_dataset), "backbone": backbone_name, "image_size": 32}
        run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config)
        run_folder.write_json_atomic(run_dir / run_folder.LABELS_FILE, EXPORT_RUN_CLASSES)
        entries = [[file, EXPORT_RUN_CLASSES[label], file] for file, label in zip(files, labels, strict=True)]
        run_folder.write_json_atomic(run_dir / run_folder.SPLIT_FILE, {"train": entries, "val": entries[::2]})
        made[backbone_name] = (run_dir, parts.model, images, weights)
        return made[backbone_name]

    return make


@pytest.fixture(scope="module")
def exportable_run(make_run):
    """The run the float formats are checked on (the smallest backbone: exports take seconds)."""
    return make_run("mobilenet_025")


# ----------------------------------------------------------------- a page's home with this computer's speeds recorded

RECORDED_RATES = {"mobilenetv2_100": 150.0, "mobilenetv2_035": 450.0, "mobilenet_025": 700.0}  # pictures per second


def home_with_recorded_speeds(tmp_path: pathlib.Path, monkeypatch, weights_for) -> None:
    """Fresh TLCORE_HOME and KERAS_HOME for a page test: stand-in weight files for `weights_for`, speeds recorded.

    The recorded figures are a probe's (`RECORDED_RATES` at 224 px), so the preset's choice neither measures nor times.
    """
    import streamlit as st

    from tlcore.model.backbones import get_backbone
    from tlcore.training import speed_probe
    from ui import audit_cache

    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.chdir(REPO_ROOT)
    st.cache_data.clear()
    audit_cache.forget_audits()
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    for name in weights_for:
        (models / get_backbone(name).weights_file_for(224)).write_bytes(b"weights")
    for name, rate in RECORDED_RATES.items():
        speed_probe.keep_rate(name, 224, rate, pictures=32)
