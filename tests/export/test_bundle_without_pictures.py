"""A run whose dataset folder is gone can still be bundled: everything but the check, with the last check said.

The serving guide tells operators to clear uploads between classes, so an older
run's pictures are often gone when someone wants to hand its model on. The run
here is the tiny hand-made one (`make_run` in conftest), copied with its own
copy of the pictures, which the test deletes.
"""

import json
import pathlib
import shutil
import zipfile

import pytest

from tlcore.cli import main as cli
from tlcore.errors import PicturesGoneError
from tlcore.export.bundle import make_bundle, saved_bundle
from tlcore.export.formats import default_export_path
from tlcore.export.parity import check_export
from tlcore.runs import folder as run_folder


@pytest.fixture
def run_with_own_pictures(exportable_run, shared_tiny_dataset, tmp_path):
    """(run folder, its pictures folder): the exportable run's model, labels and split, over a copy of the pictures."""
    source, _, _, _ = exportable_run
    pictures = shutil.copytree(shared_tiny_dataset, tmp_path / "pictures")
    run_dir = tmp_path / "runs" / "20261207-140000-mobilenet_025-pictures"
    run_dir.mkdir(parents=True)
    for name in (run_folder.MODEL_FILE, run_folder.LABELS_FILE):
        shutil.copy2(source / name, run_dir / name)
    config = json.loads((source / run_folder.CONFIG_FILE).read_text())
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, dict(config, data=str(pictures)))
    split = json.loads((source / run_folder.SPLIT_FILE).read_text())
    moved = {name: [[entry[0], entry[1], str(pictures / pathlib.Path(entry[2]).relative_to(shared_tiny_dataset))]
                    for entry in entries] for name, entries in split.items()}
    run_folder.write_json_atomic(run_dir / run_folder.SPLIT_FILE, moved)
    return run_dir, pictures


def test_a_run_whose_pictures_are_gone_is_bundled_with_the_last_check_said(run_with_own_pictures, tmp_path):
    run_dir, pictures = run_with_own_pictures
    earlier = make_bundle(run_dir, ["keras"], tmp_path / "before.zip")  # checked while the pictures were there
    default_export_path(run_dir, "keras").unlink()  # exported again at the next bundle: its check is an earlier file's
    shutil.rmtree(pictures)

    bundle = make_bundle(run_dir, ["keras"], tmp_path / "after.zip")

    top = f"tlcore-{run_dir.name}"
    names = set(zipfile.ZipFile(bundle.path).namelist())
    assert {f"{top}/{name}" for name in ("MODEL_CARD.md", "labels.json", "model.keras", "predict_keras.py")} <= names
    (keras_report,) = bundle.reports
    assert keras_report.format == "keras" and not keras_report.rechecked
    assert keras_report.checked_at == earlier.reports[0].checked_at and keras_report.agreement == 1.0
    date = earlier.reports[0].check_date
    assert "Not re-checked: the pictures are gone" in bundle.note
    assert f"parity from the check of {date}" in bundle.note
    card = zipfile.ZipFile(bundle.path).read(f"{top}/MODEL_CARD.md").decode()
    assert bundle.note in card and f"(check of {date})" in card
    assert "python3 predict_keras.py photo.jpg" in card
    assert saved_bundle(run_dir) == bundle, "the Export page offers it again, note and all"
    with pytest.raises(PicturesGoneError, match="restore the dataset folder"):
        check_export(run_dir, "keras")  # asked for on its own, the check still says why it cannot run


def test_tlcore_bundle_says_what_was_not_rechecked(run_with_own_pictures, tmp_path, capsys, monkeypatch):
    run_dir, pictures = run_with_own_pictures
    shutil.rmtree(pictures)
    monkeypatch.setattr(cli, "import_tensorflow_quietly", lambda: None)

    code = cli.main(["bundle", str(run_dir), "--formats", "keras", "--out", str(tmp_path / "out.zip")])

    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "bundle written to" in printed.out
    assert "note: Not re-checked: the pictures are gone" in printed.out and "never checked" in printed.out
    assert zipfile.is_zipfile(tmp_path / "out.zip")
