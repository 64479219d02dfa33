"""Every export format round-trips through its own runtime and agrees with the Keras model.

Keras (`load_model`, safe mode), SavedModel (`tf.saved_model.load`), TFLite
float and int8 (the LiteRT interpreter) and ONNX (ONNX Runtime), on the tiny
hand-made run of tests/export/conftest.py. The int8 agreement on the top class
needs the real ImageNet weights (a random network quantises too poorly) and
skips without them.
"""

import json
import sys

import numpy as np
import pytest
from conftest import EXPORT_RUN_CLASSES as CLASSES

from tlcore.errors import InputError
from tlcore.export import runtimes
from tlcore.export.formats import FORMATS, exported_size
from tlcore.export.runtimes import load_exported, run_exported
from tlcore.export.writers import export_run
from tlcore.runs import folder as run_folder


@pytest.fixture(scope="module")
def reference(exportable_run):
    """The Keras model's probabilities for the raw images."""
    _, model, images, _ = exportable_run
    expected = model.predict(images, verbose=0)
    assert expected.std(axis=0).max() > 0.1, "the comparison needs outputs that depend on the image"
    return expected


@pytest.fixture(scope="module")
def exports(exportable_run, tmp_path_factory):
    """Each converted float format exported once: {format: path}."""
    run_dir, _, _, _ = exportable_run
    out = tmp_path_factory.mktemp("exports")
    stale = out / "saved"
    stale.mkdir()
    (stale / "stale.txt").write_text("an earlier export")
    return {
        "savedmodel": export_run(run_dir, "savedmodel", stale),
        "tflite": export_run(run_dir, "tflite", out / "m.tflite"),
        "onnx": export_run(run_dir, "onnx", out / "m.onnx"),
    }


@pytest.mark.parametrize("format", ["keras", "savedmodel", "tflite", "onnx"])
def test_float_exports_give_the_same_outputs_as_the_keras_model(exportable_run, reference, exports, tmp_path, format):
    run_dir, _, images, _ = exportable_run
    path = export_run(run_dir, "keras", tmp_path / "m.keras") if format == "keras" else exports[format]

    outputs = run_exported(path, format, images)

    assert outputs.shape == reference.shape
    np.testing.assert_allclose(outputs, reference, atol=1e-4)
    labels_dir = path if format == "savedmodel" else path.parent
    assert json.loads((labels_dir / "labels.json").read_text()) == CLASSES
    assert not [p.name for p in path.parent.iterdir() if ".partial" in p.name or p.name.startswith(".")]


@pytest.mark.parametrize("format", ["tflite", "onnx"])
def test_a_loaded_file_runs_one_picture_and_then_a_batch(exportable_run, reference, exports, format):
    _, _, images, _ = exportable_run
    run = load_exported(exports[format], format)

    one, batch = run(images[:1]), run(images)

    np.testing.assert_allclose(one, reference[:1], atol=1e-4)
    np.testing.assert_allclose(batch, reference, atol=1e-4)


def test_savedmodel_export_replaces_an_earlier_one(exports):
    assert not (exports["savedmodel"] / "stale.txt").exists()
    assert exported_size(exports["savedmodel"]) > exported_size(exports["savedmodel"] / "saved_model.pb") > 0


def test_onnx_file_takes_any_batch_of_pictures_named_image(exports):
    import onnx

    graph = onnx.load(str(exports["onnx"])).graph
    (given,) = graph.input
    dims = given.type.tensor_type.shape.dim
    assert given.name == "image"
    assert not dims[0].HasField("dim_value") and [dim.dim_value for dim in dims[1:]] == [32, 32, 3]


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

    with pytest.raises(InputError, match="keras, savedmodel, tflite, tflite-int8, onnx"):
        export_run(run_dir, "tfjs")
    assert FORMATS == ("keras", "savedmodel", "tflite", "tflite-int8", "onnx")


def test_export_of_a_run_without_a_model(tmp_path):
    run_folder.write_json_atomic(tmp_path / run_folder.CONFIG_FILE, {"data": "x"})

    with pytest.raises(InputError, match="has no model yet"):
        export_run(tmp_path, "tflite")


def test_the_8_bit_file_needs_no_training_pictures_and_is_much_smaller(exportable_run, tmp_path):
    # Dynamic-range quantization rounds the weights only: a run whose dataset is gone still exports it.
    run_dir, _, _, _ = exportable_run
    moved = tmp_path / "run"
    moved.mkdir()
    for name in (run_folder.CONFIG_FILE, run_folder.LABELS_FILE, run_folder.MODEL_FILE):
        (moved / name).write_bytes((run_dir / name).read_bytes())
    run_folder.write_json_atomic(moved / run_folder.SPLIT_FILE, {"train": [["a.png", "circles", str(tmp_path / "gone.png")]]})

    eight_bit = export_run(moved, "tflite-int8", tmp_path / "out.int8.tflite")
    floating = export_run(moved, "tflite", tmp_path / "out.tflite")

    assert eight_bit.stat().st_size < floating.stat().st_size / 2


@pytest.mark.parametrize("format, package", [("onnx", "onnxruntime"), ("tflite", "ai-edge-litert")])
def test_a_runtime_that_is_not_installed_says_what_to_install(exports, monkeypatch, format, package):
    module = "onnxruntime" if format == "onnx" else "ai_edge_litert.interpreter"
    monkeypatch.setitem(sys.modules, module, None)  # `import` of it now raises ImportError

    with pytest.raises(InputError, match=rf"'{package}'.*pip install \"tlcore\[export\]\""):
        runtimes.load_exported(exports[format], format)
