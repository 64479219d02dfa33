"""Tests for tlcore.export: every format round-trips and agrees with the Keras model.

The run folder is made by hand around a 32 px mobilenetv2_035 classifier whose
head is fitted to the tiny images, so outputs differ from image to image and a
broken export (wrong scaling, augmentation left in, dropout active) would show.
With the shared ImageNet weights the backbone is the real one; without them it
is a random network with calibrated BatchNormalization (see conftest), which
quantises too poorly for the int8 agreement check, so that check then skips.
"""

import json
import pathlib

import keras
import numpy as np
import pytest

from tlcore.errors import InputError
from tlcore.model.build import POOL_LAYER, build_classifier
from tlcore.results.export import FORMATS, export_run, run_exported
from tlcore.results.prediction import prepare_images
from tlcore.runs import folder as run_folder
from tlcore.training.callbacks import save_model_atomic

CLASSES = ["circles", "squares", "stripes"]


def fit_head(model, images, labels) -> None:
    """Set the classifier to a ridge regression fitted on `images`: confident, image-dependent outputs."""
    features = keras.Model(model.input, model.get_layer(POOL_LAYER).output).predict(images, verbose=0)
    centred = features - features.mean(axis=0)
    targets = np.eye(len(CLASSES))[labels] * 2 - 1
    gram = centred @ centred.T
    kernel = centred.T @ np.linalg.solve(gram + 1e-3 * np.trace(gram) / len(gram) * np.eye(len(gram)), targets)
    bias = -features.mean(axis=0) @ kernel
    model.get_layer("classifier").set_weights([3 * kernel, 3 * bias])


@pytest.fixture(scope="module")
def make_run(shared_tiny_dataset, install_keras_weights, batch_norm_calibrator, tmp_path_factory):
    """`make_run(backbone)`: (run folder, Keras model, raw images, weights), built once per backbone."""
    files = sorted(str(path) for path in shared_tiny_dataset.rglob("*.*"))
    labels = np.array([CLASSES.index(pathlib.Path(file).parent.name) for file in files])
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
        run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, {"data": str(shared_tiny_dataset), "image_size": 32})
        run_folder.write_json_atomic(run_dir / run_folder.LABELS_FILE, CLASSES)
        split = {"train": [[file, CLASSES[label], file] for file, label in zip(files, labels, strict=True)], "val": []}
        run_folder.write_json_atomic(run_dir / run_folder.SPLIT_FILE, split)
        made[backbone_name] = (run_dir, parts.model, images, weights)
        return made[backbone_name]

    return make


@pytest.fixture(scope="module")
def exportable_run(make_run):
    """The run the float formats are checked on (the smallest backbone: exports take seconds)."""
    return make_run("mobilenet_025")


@pytest.fixture(scope="module")
def reference(exportable_run):
    """The Keras model's probabilities for the raw images."""
    _, model, images, _ = exportable_run
    expected = model.predict(images, verbose=0)
    assert expected.std(axis=0).max() > 0.1, "the comparison needs outputs that depend on the image"
    return expected


@pytest.fixture(scope="module")
def exports(exportable_run, tmp_path_factory):
    """Each slow float format exported once: {format: path}."""
    run_dir, _, _, _ = exportable_run
    out = tmp_path_factory.mktemp("exports")
    stale = out / "saved"
    stale.mkdir()
    (stale / "stale.txt").write_text("an earlier export")
    return {
        "savedmodel": export_run(run_dir, "savedmodel", stale),
        "tflite": export_run(run_dir, "tflite", out / "m.tflite"),
    }


@pytest.mark.parametrize("format", ["keras", "savedmodel", "tflite"])
def test_float_exports_give_the_same_outputs_as_the_keras_model(exportable_run, reference, exports, tmp_path, format):
    run_dir, _, images, _ = exportable_run
    path = export_run(run_dir, "keras", tmp_path / "m.keras") if format == "keras" else exports[format]

    outputs = run_exported(path, format, images)

    assert outputs.shape == reference.shape
    np.testing.assert_allclose(outputs, reference, atol=1e-4)
    labels_dir = path if format == "savedmodel" else path.parent
    assert json.loads((labels_dir / "labels.json").read_text()) == CLASSES
    assert not [p.name for p in path.parent.iterdir() if ".partial" in p.name or p.name.startswith(".saved_model")]


def test_savedmodel_export_replaces_an_earlier_one(exports):
    assert not (exports["savedmodel"] / "stale.txt").exists()


def test_int8_tflite_agrees_on_the_top_class(make_run, tmp_path):
    # MobileNetV2 quantises well; the width-0.25 MobileNet loses a few top-1 answers to int8.
    run_dir, model, images, weights = make_run("mobilenetv2_035")
    expected = model.predict(images, verbose=0)

    path = export_run(run_dir, "tflite-int8", tmp_path / "model.int8.tflite")

    outputs = run_exported(path, "tflite-int8", images)
    assert outputs.dtype == np.float32 and outputs.shape == expected.shape
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=0.02)
    assert path.stat().st_size < (run_dir / run_folder.MODEL_FILE).stat().st_size / 2
    assert json.loads((tmp_path / "labels.json").read_text()) == CLASSES
    if weights is None:
        pytest.skip("int8 agreement needs the shared ImageNet weights; a random network quantises poorly")
    agreement = np.mean(outputs.argmax(axis=1) == expected.argmax(axis=1))
    assert agreement >= 0.8, f"the int8 model agrees on the top class for only {agreement:.0%} of the images"


def test_default_export_location_is_inside_the_run(exportable_run):
    run_dir, _, _, _ = exportable_run

    path = export_run(run_dir, "keras")

    assert path == run_dir / "export" / "model.keras"
    assert path.read_bytes() == (run_dir / run_folder.MODEL_FILE).read_bytes()
    assert json.loads((run_dir / "export" / "labels.json").read_text()) == CLASSES


def test_export_into_an_existing_folder_names_the_file(exportable_run, tmp_path):
    run_dir, _, _, _ = exportable_run

    path = export_run(run_dir, "keras", tmp_path)

    assert path == tmp_path / "model.keras"


def test_unknown_format_lists_the_formats(exportable_run):
    run_dir, _, _, _ = exportable_run

    with pytest.raises(InputError, match="keras, savedmodel, tflite, tflite-int8"):
        export_run(run_dir, "onnx")
    assert FORMATS == ("keras", "savedmodel", "tflite", "tflite-int8")


def test_export_of_a_run_without_a_model(tmp_path):
    run_folder.write_json_atomic(tmp_path / run_folder.CONFIG_FILE, {"data": "x"})

    with pytest.raises(InputError, match="has no model yet"):
        export_run(tmp_path, "tflite")


def test_int8_export_needs_the_training_images(exportable_run, tmp_path):
    run_dir, _, _, _ = exportable_run
    moved = tmp_path / "run"
    moved.mkdir()
    for name in (run_folder.CONFIG_FILE, run_folder.LABELS_FILE, run_folder.MODEL_FILE):
        (moved / name).write_bytes((run_dir / name).read_bytes())
    run_folder.write_json_atomic(moved / run_folder.SPLIT_FILE, {"train": [["a.png", "circles", str(tmp_path / "gone.png")]]})

    with pytest.raises(InputError, match="export as 'tflite' instead"):
        export_run(moved, "tflite-int8", tmp_path / "out.tflite")
