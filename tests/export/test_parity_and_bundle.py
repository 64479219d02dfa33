"""The parity check, the bundle with its model card, and the snippets run as written, on the tiny hand-made run.

The same on real photos with real weights is tests/export/test_export_real_photos.py.
"""

import os
import pathlib
import re
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from conftest import EXPORT_RUN_CLASSES as CLASSES

from tlcore.errors import InputError
from tlcore.export.bundle import make_bundle, saved_bundle
from tlcore.export.parity import MAX_DISAGREEMENT, ParityReport, check_export, saved_reports
from tlcore.export.snippets import ONNX_RUNTIME_WEB_VERSION, export_snippets, python_snippet
from tlcore.export.writers import export_run
from tlcore.results.prediction import predict_files
from tlcore.runs import folder as run_folder
from tlcore.training.callbacks import save_model_atomic

SNIPPET_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def onnx_export(exportable_run):
    run_dir, _, _, _ = exportable_run
    return export_run(run_dir, "onnx")


@pytest.fixture(scope="module")
def bundle(exportable_run, onnx_export, tmp_path_factory):
    run_dir, _, _, _ = exportable_run
    return make_bundle(run_dir, ["keras", "tflite", "onnx"], tmp_path_factory.mktemp("bundle") / "tiny.zip")


@pytest.fixture(scope="module")
def unzipped(bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(bundle.path) as archive:
        archive.extractall(folder)
    (top,) = folder.iterdir()
    return top


def _validation_files(run_dir) -> list[str]:
    return [entry[2] for entry in run_folder.read_json(pathlib.Path(run_dir) / run_folder.SPLIT_FILE)["val"]]


# ----------------------------------------------------------------- the parity check


def test_an_exported_file_scores_like_the_app(exportable_run, onnx_export):
    run_dir, _, _, _ = exportable_run

    report = check_export(run_dir, "onnx")

    assert (report.format, report.path, report.split, report.pictures) == ("onnx", str(onnx_export), "val", 12)
    assert report.runtime.startswith("onnxruntime ")
    assert report.agreement == 1.0 and not report.flagged and report.differing == []
    assert report.accuracy == report.app_accuracy
    assert report.max_probability_difference < 1e-4
    assert report.size_bytes == onnx_export.stat().st_size
    assert report.latency_ms > 0
    assert saved_reports(run_dir)["onnx"] == report
    assert ParityReport.from_dict(report.to_dict()) == report and report.to_dict()["flagged"] is False


def _phone_photos(files: list[str], folder: pathlib.Path) -> list[list[str]]:
    """Split entries for the pictures enlarged to phone size (1600x1200 JPEGs, every other one turned by EXIF; one 640x480 HEIC)."""
    from PIL import Image

    turned = Image.Exif()
    turned[0x0112] = 6
    entries = []
    for index, file in enumerate(files):
        with Image.open(file) as small:
            large = small.convert("RGB").resize((1600, 1200), Image.Resampling.BICUBIC)
        name = f"phone_{index}.heic" if index == 0 else f"phone_{index}.jpg"
        options = {"exif": turned.tobytes()} if index % 2 else {}
        (large.resize((640, 480)) if index == 0 else large).save(folder / name, quality=90, **options)  # HEIC encodes slowly
        entries.append([name, pathlib.Path(file).parent.name, str(folder / name)])
    return entries


def test_an_exported_file_scores_phone_photos_like_the_app(exportable_run, onnx_export, tmp_path):
    # The app decodes large JPEGs at a reduced scale with TensorFlow; the exported file's snippet code with Pillow.
    run_dir, _, _, _ = exportable_run
    moved = tmp_path / "run"
    moved.mkdir()
    for name in (run_folder.CONFIG_FILE, run_folder.LABELS_FILE, run_folder.MODEL_FILE):
        (moved / name).write_bytes((run_dir / name).read_bytes())
    run_folder.write_json_atomic(moved / run_folder.SPLIT_FILE, {"val": _phone_photos(_validation_files(run_dir)[:6], tmp_path)})

    report = check_export(moved, "onnx", onnx_export)

    assert report.pictures == 6
    assert report.agreement == 1.0 and not report.flagged
    assert report.max_probability_difference < 1e-4


def test_a_kept_report_is_dropped_when_the_file_changes(exportable_run, onnx_export):
    run_dir, _, _, _ = exportable_run
    check_export(run_dir, "onnx")
    later = onnx_export.stat().st_mtime_ns + 1_000_000_000

    os.utime(onnx_export, ns=(later, later))

    assert "onnx" not in saved_reports(run_dir)


def test_a_file_that_answers_differently_is_flagged_with_the_pictures(exportable_run, tmp_path):
    run_dir, _, _, _ = exportable_run
    other = keras.saving.load_model(run_dir / run_folder.MODEL_FILE, safe_mode=True)
    kernel, bias = other.get_layer("classifier").get_weights()
    other.get_layer("classifier").set_weights([kernel[:, [1, 2, 0]], bias[[1, 2, 0]]])  # the classes swapped round
    save_model_atomic(other, tmp_path / "other.keras")

    report = check_export(run_dir, "keras", tmp_path / "other.keras")

    assert report.flagged and 1 - report.agreement > MAX_DISAGREEMENT
    assert len(report.differing) == round((1 - report.agreement) * report.pictures) > 0
    first = report.differing[0]
    assert first["file"] in _validation_files(run_dir)
    assert first["app"] != first["exported"] and {first["app"], first["exported"], first["true"]} <= set(CLASSES)
    assert 0 < first["app_probability"] <= 1 and 0 < first["exported_probability"] <= 1


def test_checking_a_file_that_is_not_there_says_to_export_it(exportable_run, tmp_path):
    run_dir, _, _, _ = exportable_run

    with pytest.raises(InputError, match="export it first"):
        check_export(run_dir, "tflite", tmp_path / "nothing.tflite")


def test_checking_a_run_whose_pictures_are_gone(exportable_run, onnx_export, tmp_path):
    run_dir, _, _, _ = exportable_run
    moved = tmp_path / "run"
    moved.mkdir()
    for name in (run_folder.CONFIG_FILE, run_folder.LABELS_FILE, run_folder.MODEL_FILE):
        (moved / name).write_bytes((run_dir / name).read_bytes())
    run_folder.write_json_atomic(moved / run_folder.SPLIT_FILE, {"val": [["a.png", "circles", str(tmp_path / "gone.png")]]})

    with pytest.raises(InputError, match="restore the dataset folder"):
        check_export(moved, "onnx", onnx_export)
    run_folder.write_json_atomic(moved / run_folder.SPLIT_FILE, {})
    with pytest.raises(InputError, match="lists no pictures"):
        check_export(moved, "onnx", onnx_export)


# ----------------------------------------------------------------- the bundle


def test_the_bundle_holds_the_files_the_card_the_snippets_and_the_web_page(bundle, exportable_run):
    run_dir, _, _, _ = exportable_run
    top = f"tlcore-{run_dir.name}"

    names = set(zipfile.ZipFile(bundle.path).namelist())

    assert {f"{top}/{name}" for name in ("MODEL_CARD.md", "labels.json", "model.keras", "model.tflite", "model.onnx",
                                         "predict_keras.py", "predict_tflite.py", "predict_onnx.py",
                                         "web/index.html", "web/pictures.js")} <= names
    assert not any(".partial" in name for name in names)
    assert [report.format for report in bundle.reports] == ["keras", "tflite", "onnx"]
    assert all(report.agreement == 1.0 for report in bundle.reports)
    assert saved_bundle(run_dir) == bundle


def test_the_model_card_says_what_the_model_is_and_how_each_file_scored(unzipped):
    card = (unzipped / "MODEL_CARD.md").read_text()

    for heading in ("## Data", "## How well it does", "## Settings", "## Software", "## Exported files",
                    "## How to use it", "## Known limitations"):
        assert heading in card
    assert "circles, squares, stripes" in card and "32x32" in card
    assert re.search(r"\| model\.onnx \(onnx\) \| onnxruntime [\d.]+ \| 100\.0% \|", card)
    assert "Keras " in card and "TensorFlow " in card and "tlcore " in card
    assert "python3 predict_tflite.py photo.jpg" in card


def test_the_web_page_is_filled_in_for_this_model(unzipped):
    page = (unzipped / "web" / "index.html").read_text()

    assert "const SIZE = 32;" in page and f"onnxruntime-web@{ONNX_RUNTIME_WEB_VERSION}/" in page
    assert "__" not in page.replace("__dirname", "")
    assert "resizeArea" in (unzipped / "web" / "pictures.js").read_text()


def test_a_bundle_is_no_longer_offered_once_the_model_changes(exportable_run, tmp_path):
    run_dir, _, _, _ = exportable_run
    model = run_dir / run_folder.MODEL_FILE
    made = make_bundle(run_dir, ["keras"], tmp_path / "keras-only.zip")
    assert saved_bundle(run_dir) == made
    stamp = model.stat().st_mtime_ns

    os.utime(model, ns=(stamp + 1_000_000_000,) * 2)

    assert saved_bundle(run_dir) is None


def test_a_bundle_needs_known_formats(exportable_run):
    run_dir, _, _, _ = exportable_run

    with pytest.raises(InputError, match="at least one format"):
        make_bundle(run_dir, [])
    with pytest.raises(InputError, match="'tfjs'.*onnx"):
        make_bundle(run_dir, ["onnx", "tfjs"])


# ----------------------------------------------------------------- the snippets, run as written


@pytest.mark.parametrize("script", ["predict_onnx.py", "predict_tflite.py"])
def test_a_snippet_run_as_written_gives_the_apps_answers(unzipped, exportable_run, script):
    run_dir, _, _, _ = exportable_run
    files = _validation_files(run_dir)
    expected = [prediction.top[0][0] for prediction in predict_files(run_dir, files, top_k=1)]

    result = subprocess.run([sys.executable, script, *files], cwd=unzipped, capture_output=True, text=True,
                            timeout=SNIPPET_TIMEOUT_S)

    assert result.returncode == 0, result.stderr[-3000:]
    answers = re.findall(r"^(.*): (\w+) \(([\d.]+)%\)$", result.stdout, flags=re.MULTILINE)
    assert [(path, label) for path, label, _ in answers] == list(zip(files, expected, strict=True))


def test_snippets_are_complete_programs_at_the_runs_size(exportable_run):
    run_dir, _, _, _ = exportable_run

    snippets = export_snippets(run_dir)

    assert [(s.format, s.language) for s in snippets][-1] == ("onnx", "javascript")
    for snippet in snippets:
        if snippet.language == "python":
            compile(snippet.code, snippet.file_name, "exec")
            assert "SIZE = 32 " in snippet.code and "def resize_like_tlcore" in snippet.code
            assert "tf.lite.Interpreter" not in snippet.code
    assert "from ai_edge_litert.interpreter import Interpreter" in python_snippet("tflite-int8", 224)
    assert 'MODEL = "model.int8.tflite"' in python_snippet("tflite-int8", 224)
    assert "preparePicture(file, 32)" in snippets[-1].code
    np.testing.assert_equal(len({s.file_name for s in snippets}), len(snippets))
