"""Tests for tlcore.data (discovery, layouts, the split) and tlcore.pipeline (tf.data)."""

import json
import pathlib
import random
import shutil
import zipfile

import numpy as np
import pytest
from conftest import save_image, smooth_picture

from tlcore import paths
from tlcore.data.audit import audit_dataset
from tlcore.data.records import ImageRecord
from tlcore.data.split import split_records
from tlcore.errors import InputError


def _record(label, index):
    return ImageRecord(
        path=f"/data/{label}/{index}.png", relative=f"{label}/{index:03d}.png", label=label, split="train",
        format="PNG", width=32, height=32, needs_conversion=False,
    )


def _split_of(records):
    return {record.relative: record.split for record in records}


# ----------------------------------------------------------------- class folders


def test_class_folders_are_found_and_split(tiny_dataset):
    audit = audit_dataset(tiny_dataset)

    assert audit.layout == "class_folders"
    assert audit.class_names == ["circles", "squares", "stripes"]
    assert audit.root == str(tiny_dataset.resolve())
    assert len(audit.records) == 24
    assert audit.counts() == {name: {"train": 6, "val": 2, "test": 0} for name in audit.class_names}
    assert {record.format for record in audit.records} == {"PNG", "JPEG"}
    assert audit.skipped == []
    for record in audit.records:
        assert record.relative.startswith(record.label + "/")
        assert (tiny_dataset / record.relative).is_file()


def test_audit_report_is_json_friendly(tiny_dataset):
    report = audit_dataset(tiny_dataset).to_dict()

    assert report["split_sizes"] == {"train": 18, "val": 6, "test": 0}
    assert report["total_images"] == 24
    assert report["formats"] == {"PNG": 12, "JPEG": 12}
    json.dumps(report)


def test_split_is_deterministic_and_depends_on_the_seed(tiny_dataset):
    first = _split_of(audit_dataset(tiny_dataset, seed=1).records)

    assert _split_of(audit_dataset(tiny_dataset, seed=1).records) == first
    assert any(_split_of(audit_dataset(tiny_dataset, seed=seed).records) != first for seed in (2, 3, 4))


def test_val_split_fraction_is_per_class(tmp_path):
    root = tmp_path / "data"
    for index in range(30):  # unrelated pictures: no near copies to keep together
        save_image(root, f"{'big' if index < 20 else 'small'}/{index}.png", smooth_picture(index))

    counts = audit_dataset(root, val_split=0.3).counts()

    assert counts["big"] == {"train": 14, "val": 6, "test": 0}
    assert counts["small"] == {"train": 7, "val": 3, "test": 0}


@pytest.mark.parametrize(
    ("count", "val_split", "expected_val"),
    [(1, 0.2, 0), (2, 0.2, 1), (2, 0.5, 1), (3, 0.5, 2), (4, 0.05, 1), (10, 0.2, 2), (100, 0.2, 20), (7, 0.5, 4)],
)
def test_split_keeps_one_training_image_and_validates_every_class_with_two(count, val_split, expected_val):
    result = split_records([_record("a", i) for i in range(count)], val_split, seed=0)

    assert sum(record.split == "val" for record in result) == expected_val
    assert sum(record.split == "train" for record in result) == count - expected_val


def test_split_does_not_depend_on_the_input_order():
    records = [_record(label, i) for label in ("a", "b", "c") for i in range(9)]
    shuffled = list(records)
    random.Random(5).shuffle(shuffled)

    assert _split_of(split_records(records, 0.2, seed=3)) == _split_of(split_records(shuffled, 0.2, seed=3))


def test_adding_a_class_does_not_change_the_other_classes_split():
    records = [_record(label, i) for label in ("a", "b") for i in range(10)]
    before = _split_of(split_records(records, 0.2, seed=0))

    after = _split_of(split_records(records + [_record("c", i) for i in range(10)], 0.2, seed=0))

    assert {name: split for name, split in after.items() if not name.startswith("c/")} == before


def test_one_image_class_stays_in_training_with_a_warning(image_writer, tmp_path):
    root = image_writer(tmp_path / "data", {"cats": 5, "dogs": 5, "owl": 1}, size=8)

    audit = audit_dataset(root)

    assert audit.class_names == ["cats", "dogs", "owl"]
    assert audit.counts()["owl"] == {"train": 1, "val": 0, "test": 0}
    assert any("'owl'" in warning and "only 1 image" in warning for warning in audit.warnings)


def test_small_and_imbalanced_classes_are_warned_about(image_writer, tmp_path):
    root = image_writer(tmp_path / "data", {"many": 12, "few": 3}, size=8)

    warnings = audit_dataset(root).warnings

    assert any("'few' has only 3 images" in warning for warning in warnings)
    assert any("imbalanced (12 vs 3" in warning for warning in warnings)


def test_files_that_are_not_images_are_skipped_with_a_reason(tiny_dataset):
    (tiny_dataset / "circles" / "notes.jpg").write_text("not a picture")
    (tiny_dataset / "README.txt").write_text("loose file")
    (tiny_dataset / ".ipynb_checkpoints" / "x").mkdir(parents=True)
    (tiny_dataset / "squares" / ".DS_Store").write_bytes(b"\0\0")

    audit = audit_dataset(tiny_dataset)

    assert audit.class_names == ["circles", "squares", "stripes"]
    assert len(audit.records) == 24
    skipped = {item.relative: item.reason for item in audit.skipped}
    assert set(skipped) == {"circles/notes.jpg", "README.txt"}
    assert skipped["README.txt"] == "not inside a class folder, so it has no class"
    assert skipped["circles/notes.jpg"]


def test_images_in_nested_folders_belong_to_the_top_class_folder(tiny_dataset):
    nested = tiny_dataset / "circles" / "more" / "deeper"
    nested.mkdir(parents=True)
    shutil.copy(tiny_dataset / "circles" / "circles_00.png", nested / "extra.png")

    audit = audit_dataset(tiny_dataset)

    assert "more" not in audit.class_names
    assert any(r.relative == "circles/more/deeper/extra.png" and r.label == "circles" for r in audit.records)


def test_excluded_files_are_left_out_and_reported(tiny_dataset):
    audit = audit_dataset(tiny_dataset, excluded_files=("circles/circles_00.png", "./squares/squares_01.jpg"))

    assert len(audit.records) == 22
    assert {item.relative: item.reason for item in audit.skipped} == {
        "circles/circles_00.png": "excluded by you",
        "squares/squares_01.jpg": "excluded by you",
    }


def test_unicode_class_and_file_names(image_writer, tmp_path):
    root = image_writer(tmp_path / "données", {"chats é": 3, "犬": 3}, size=8)
    (root / "犬" / "犬_00.png").rename(root / "犬" / "写真 1.png")

    audit = audit_dataset(root)

    assert audit.class_names == ["chats é", "犬"]
    assert any(record.relative == "犬/写真 1.png" for record in audit.records)


# ----------------------------------------------------------------- train/val/test folders


def _split_layout(image_writer, root, val_name="val", with_test=True):
    image_writer(root / "train", {"cats": 4, "dogs": 4}, size=8)
    image_writer(root / val_name, {"cats": 2, "dogs": 2}, size=8)
    if with_test:
        image_writer(root / "test", {"cats": 1, "dogs": 1}, size=8)
    return root


def test_train_val_test_folders_keep_their_split(image_writer, tmp_path):
    root = _split_layout(image_writer, tmp_path / "data")

    audit = audit_dataset(root, val_split=0.5)

    assert audit.layout == "split_folders"
    assert audit.class_names == ["cats", "dogs"]
    assert audit.counts() == {name: {"train": 4, "val": 2, "test": 1} for name in ("cats", "dogs")}
    for record in audit.records:
        assert record.relative.startswith(f"{record.split}/{record.label}/")


@pytest.mark.parametrize("val_name", ["validation", "valid", "Val"])
def test_other_names_of_the_validation_folder(image_writer, tmp_path, val_name):
    root = _split_layout(image_writer, tmp_path / "data", val_name=val_name, with_test=False)

    audit = audit_dataset(root)

    assert audit.layout == "split_folders"
    assert audit.counts()["cats"] == {"train": 4, "val": 2, "test": 0}


def test_val_class_missing_from_train_is_an_error(image_writer, tmp_path):
    root = _split_layout(image_writer, tmp_path / "data", with_test=False)
    image_writer(root / "val", {"birds": 2}, size=8)

    with pytest.raises(InputError, match="val/ folder has class folder\\(s\\) birds"):
        audit_dataset(root)


def test_train_folder_without_val_folder_is_an_error(image_writer, tmp_path):
    image_writer(tmp_path / "data" / "train", {"cats": 4, "dogs": 4}, size=8)

    with pytest.raises(InputError, match="no val/ folder"):
        audit_dataset(tmp_path / "data")


def test_class_missing_from_val_folder_is_warned_about(image_writer, tmp_path):
    root = tmp_path / "data"
    image_writer(root / "train", {"cats": 4, "dogs": 4}, size=8)
    image_writer(root / "val", {"cats": 2}, size=8)

    audit = audit_dataset(root)

    assert any("'dogs' has no images in val/" in warning for warning in audit.warnings)


# ----------------------------------------------------------------- zip files


def _zip_folder(folder, zip_path, prefix):
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return zip_path


@pytest.mark.parametrize("prefix", ["tiny/", ""], ids=["one-top-folder", "class-folders-at-top"])
def test_zip_of_class_folders_is_extracted_into_the_cache(tiny_dataset, tmp_path, prefix):
    zip_path = _zip_folder(tiny_dataset, tmp_path / "photos.zip", prefix)

    audit = audit_dataset(zip_path)

    assert audit.source == str(zip_path)
    assert audit.class_names == ["circles", "squares", "stripes"]
    assert len(audit.records) == 24 and audit.skipped == []
    assert paths.zip_cache_dir() in pathlib.Path(audit.root).parents
    # The same split as the folder it was made from.
    by_relative = {r.relative: r.split for r in audit_dataset(tiny_dataset).records}
    assert {r.relative: r.split for r in audit.records} == by_relative


def test_zip_of_train_val_folders(image_writer, tmp_path):
    root = _split_layout(image_writer, tmp_path / "data", with_test=False)
    zip_path = _zip_folder(root, tmp_path / "split.zip", "data/")

    audit = audit_dataset(zip_path)

    assert audit.layout == "split_folders"
    assert audit.counts()["dogs"] == {"train": 4, "val": 2, "test": 0}


# ----------------------------------------------------------------- unusable datasets


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        audit_dataset(tmp_path / "nowhere")


def test_file_instead_of_folder(tiny_dataset):
    with pytest.raises(InputError, match="is a file, not a folder"):
        audit_dataset(tiny_dataset / "circles" / "circles_00.png")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()

    with pytest.raises(InputError, match="no class folders found"):
        audit_dataset(tmp_path / "empty")


def test_one_class_only(image_writer, tmp_path):
    root = image_writer(tmp_path / "data", {"cats": 5}, size=8)

    with pytest.raises(InputError, match="only the class 'cats'.*at least 2 classes"):
        audit_dataset(root)


def test_class_folder_without_images_is_dropped_with_a_warning(image_writer, tmp_path):
    root = image_writer(tmp_path / "data", {"cats": 3, "dogs": 3}, size=8)
    (root / "birds").mkdir()
    (root / "birds" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")

    audit = audit_dataset(root)

    assert audit.class_names == ["cats", "dogs"]
    assert any("'birds' has no usable training images" in warning for warning in audit.warnings)
    assert [item.relative for item in audit.skipped] == ["birds/broken.jpg"]


# ----------------------------------------------------------------- tf.data pipeline


def test_pipeline_decodes_resizes_and_batches(tiny_dataset):
    from tlcore.training import pipeline

    audit = audit_dataset(tiny_dataset)
    records = audit.split_records("train")
    files = pipeline.decodable_paths(records, 16)
    labels = [audit.class_names.index(r.label) for r in records]

    batches = list(pipeline.make_dataset(files, labels, image_size=16, batch_size=8))

    assert [len(images) for images, _ in batches] == [8, 8, 2]
    images, batch_labels = batches[0]
    assert images.shape == (8, 16, 16, 3) and images.dtype.name == "float32"
    assert 0.0 <= float(np.min(images)) and float(np.max(images)) <= 255.0
    assert list(batch_labels.numpy()) == labels[:8]


def test_load_images_matches_the_training_pipeline(tiny_dataset):
    from tlcore.training import pipeline

    files = [str(tiny_dataset / "circles" / "circles_00.png"), str(tiny_dataset / "stripes" / "stripes_01.jpg")]

    loaded = pipeline.load_images(files, 32)
    through_dataset = np.concatenate([images.numpy() for images, _ in pipeline.make_dataset(files, [0, 1], 32, 4)])

    assert loaded.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(loaded, through_dataset)
    # A 32 px image at 32 px is decoded unchanged (PNG is lossless).
    from PIL import Image

    np.testing.assert_array_equal(loaded[0], np.asarray(Image.open(files[0])).astype("float32"))


def test_exact_copies_stay_on_the_same_side_of_the_split(tmp_path, image_writer):
    """A copy in validation of a training picture would inflate the accuracy."""
    import shutil

    from tlcore.data.audit import audit_dataset

    root = image_writer(tmp_path / "data", {"circles": 10, "squares": 10})
    for index in range(3):
        shutil.copyfile(root / "circles" / "circles_00.png", root / "circles" / f"copy_{index}.png")
    for seed in range(12):
        audit = audit_dataset(root, val_split=0.3, seed=seed, find_duplicates=False)
        splits = {r.split for r in audit.records if r.relative.endswith(("circles_00.png", ".png")) and
                  (r.relative.startswith("circles/copy_") or r.relative == "circles/circles_00.png")}
        assert len(splits) == 1, f"seed {seed}: copies split across {splits}"
        circles = [r for r in audit.records if r.label == "circles"]
        assert any(r.split == "val" for r in circles) and any(r.split == "train" for r in circles)
