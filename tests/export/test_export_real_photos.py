"""Every format on real photos with the real weights: the parity check, and each snippet run as written.

Uses conftest's `flowers_run` (a short default run on flowers5; skips without
the shared photos and weights). One bundle holds all five formats; each file
re-scores the 60 validation photos outside the app; then each snippet, as a
user would run it from the unzipped bundle, classifies those photos and must
give `tlcore predict`'s answer for every one (the 8-bit file's snippet: that
file's own answer for the photos as the app prepares them). The parity table is written to
test-artifacts/export-parity-flowers5.md.
"""

import pathlib
import re
import subprocess
import sys
import zipfile

import pytest
from conftest import last_json_line, tlcore_cli

from tlcore.export.bundle import make_bundle
from tlcore.export.formats import FORMATS
from tlcore.export.model_card import parity_table
from tlcore.export.runtimes import run_exported
from tlcore.export.snippets import script_name
from tlcore.results.prediction import prepare_images
from tlcore.runs import folder as run_folder

pytestmark = pytest.mark.slow

ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts"
FLOAT_FORMATS = ("keras", "savedmodel", "tflite", "onnx")


@pytest.fixture(scope="module")
def flowers_bundle(flowers_run, tmp_path_factory):
    _, result = flowers_run
    bundle = make_bundle(result.run_dir, FORMATS, tmp_path_factory.mktemp("flowers_bundle") / "flowers.zip")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "export-parity-flowers5.md").write_text(parity_table(list(bundle.reports)) + "\n")
    return bundle


@pytest.fixture(scope="module")
def unzipped(flowers_bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flowers_unzipped")
    with zipfile.ZipFile(flowers_bundle.path) as archive:
        archive.extractall(folder)
    (top,) = folder.iterdir()
    return top


@pytest.fixture(scope="module")
def photos_and_answers(flowers_run, flowers_bundle):
    """The validation photos and, for each, `tlcore predict`'s top class ("app") and the int8 file's.

    The 8-bit file rounds the model, so its snippet is held to the int8 file's
    own answers for the photos as the app prepares them (`prepare_images`).
    """
    _, result = flowers_run
    files = [entry[2] for entry in run_folder.read_json(pathlib.Path(result.run_dir) / run_folder.SPLIT_FILE)["val"]]
    predicted = tlcore_cli("predict", result.run_dir, *files, "--top-k", "1", "--json")
    assert predicted.returncode == 0, predicted.stderr
    labels = run_folder.run_labels(result.run_dir)
    int8 = next(report.path for report in flowers_bundle.reports if report.format == "tflite-int8")
    int8_answers = run_exported(int8, "tflite-int8", prepare_images(files, 224)).argmax(axis=1)
    return files, {"app": [row["top"][0]["class"] for row in last_json_line(predicted)],
                   "tflite-int8": [labels[index] for index in int8_answers]}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("format", FLOAT_FORMATS)
def test_a_float_file_agrees_with_the_app_on_every_validation_photo(flowers_bundle, format):
    report = next(report for report in flowers_bundle.reports if report.format == format)

    assert report.pictures == 60 and report.split == "val"
    assert report.agreement == 1.0, report.differing
    assert report.accuracy == report.app_accuracy
    assert report.max_probability_difference < 1e-3
    assert not report.flagged


def test_the_int8_file_agrees_on_at_least_95_percent_and_is_much_smaller(flowers_bundle):
    reports = {report.format: report for report in flowers_bundle.reports}
    int8 = reports["tflite-int8"]

    assert int8.agreement >= 0.95, int8.differing
    assert int8.size_bytes < reports["tflite"].size_bytes / 2
    assert abs(int8.accuracy - int8.app_accuracy) <= 0.05


@pytest.mark.timeout(600)
@pytest.mark.parametrize("format", FORMATS)
def test_each_snippet_run_as_written_agrees_with_tlcore_predict(unzipped, photos_and_answers, format):
    files, expected = photos_and_answers

    result = subprocess.run([sys.executable, script_name(format), *files], cwd=unzipped, capture_output=True,
                            text=True, timeout=500)

    assert result.returncode == 0, result.stderr[-3000:]
    answers = re.findall(r"^(.*): (\w+) \(([\d.]+)%\)$", result.stdout, flags=re.MULTILINE)
    assert [path for path, _, _ in answers] == files
    assert [label for _, label, _ in answers] == expected[format if format == "tflite-int8" else "app"]
