"""Dataset edits: files left out and files moved to another class, applied by the audit and the split, never to the files."""

import json
import shutil

import pytest
from conftest import save_image, smooth_picture
from PIL import Image

from tlcore.data.audit import audit_dataset
from tlcore.data.duplicates import copy_units, find_duplicates
from tlcore.data.edits import DatasetEdits, parse_relabel, read_edits, write_edits
from tlcore.data.records import (
    ACROSS_SPLITS,
    FindingKind,
    files_outside_training,
    group_exclusions,
    suggested_exclusions,
)
from tlcore.errors import InputError


def distinct_classes(root, per_class=10, classes=("cats", "dogs")):
    """Unrelated pictures in class folders (no two are copies)."""
    for class_index, label in enumerate(classes):
        for index in range(per_class):
            save_image(root, f"{label}/{label}{index:02d}.png", smooth_picture(100 * class_index + index))
    return root


def split_of(audit):
    return {record.relative: record.split for record in audit.records}


# ----------------------------------------------------------------- the record


def test_edits_are_normalised_sorted_and_round_trip_through_a_file(tmp_path):
    edits = DatasetEdits(("./dogs\\b.png", "cats/a.png", "cats/a.png"), {"cats/c.png": "dogs", "./cats/d.png": "dogs"})

    assert edits.excluded_files == ("cats/a.png", "dogs/b.png")
    assert edits.relabels == (("cats/c.png", "dogs"), ("cats/d.png", "dogs"))
    assert edits.count() == 4 and bool(edits) and not DatasetEdits()
    assert read_edits(write_edits(tmp_path / "edits.json", edits)) == edits


def test_excluding_relabelling_and_undoing():
    edits = DatasetEdits().excluding(["a.png"]).relabelling("b.png", "dogs").relabelling("a.png", "cats")

    assert edits.excluded_files == () and edits.relabel_map == {"b.png": "dogs", "a.png": "cats"}
    assert edits.including(["a.png"]).relabel_map == {"b.png": "dogs"}
    merged = DatasetEdits(("x.png",), {"b.png": "cats"}).merged(edits)
    assert merged.excluded_files == ("x.png",) and merged.relabel_map["b.png"] == "dogs"  # the later class wins


def test_a_run_config_reads_as_edits(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"data": "x", "excluded_files": ["a.png"], "relabels": {"b.png": "c"}}))

    assert read_edits(tmp_path / "config.json") == DatasetEdits(("a.png",), {"b.png": "c"})


@pytest.mark.parametrize("text", ["cats/a.png", "=dogs", "cats/a.png=", ""])
def test_a_relabel_without_file_or_class_is_an_input_error(text):
    with pytest.raises(InputError, match="FILE=CLASS"):
        parse_relabel(text)


def test_files_with_an_equals_sign_in_their_name_can_be_relabelled():
    assert parse_relabel("cats/a=b.png=dogs") == ("cats/a=b.png", "dogs")


def test_a_missing_or_malformed_edits_file_says_what_it_should_hold(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_edits(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"something": 1}')
    with pytest.raises(InputError, match="excluded_files"):
        read_edits(tmp_path / "bad.json")


# ----------------------------------------------------------------- the audit applies them


def test_a_relabelled_file_keeps_its_path_and_counts_in_its_new_class(tmp_path):
    root = distinct_classes(tmp_path / "data")
    before = audit_dataset(root)

    after = audit_dataset(root, relabels={"cats/cats03.png": "dogs"})

    record = next(r for r in after.records if r.relative == "cats/cats03.png")
    assert (record.label, record.relabeled_from, record.path) == ("dogs", "cats", str(root / "cats/cats03.png"))
    assert sum(before.counts()["cats"].values()) - 1 == sum(after.counts()["cats"].values())
    assert sum(after.counts()["dogs"].values()) == 11
    assert after.has_finding(FindingKind.RELABELED_FILES) and after.relabels == {"cats/cats03.png": "dogs"}
    assert (root / "cats/cats03.png").is_file() and not (root / "dogs/cats03.png").exists()  # never moved


def test_exclusion_wins_over_a_relabel_and_unknown_files_are_reported(tmp_path):
    root = distinct_classes(tmp_path / "data")

    audit = audit_dataset(root, excluded_files=("cats/cats01.png",),
                          relabels={"cats/cats01.png": "dogs", "cats/gone.png": "dogs"})

    assert "cats/cats01.png" not in split_of(audit)
    assert [f.files for f in audit.findings if f.kind == FindingKind.RELABELS_NOT_FOUND] == [("cats/gone.png",)]


def test_a_relabel_to_a_class_without_a_folder_is_an_input_error_listing_the_classes(tmp_path):
    root = distinct_classes(tmp_path / "data")

    with pytest.raises(InputError, match="'birds'.*'cats', 'dogs'"):
        audit_dataset(root, relabels={"cats/cats01.png": "birds"})


def test_in_train_and_val_folders_a_relabelled_file_keeps_its_split(tmp_path):
    for split, count in (("train", 6), ("val", 3)):
        for label in ("cats", "dogs"):
            for index in range(count):
                save_image(tmp_path, f"{split}/{label}/{index}.png", smooth_picture(hash((split, label, index)) % 10_000))

    audit = audit_dataset(tmp_path, relabels={"val/cats/0.png": "dogs"})

    record = next(r for r in audit.records if r.relative == "val/cats/0.png")
    assert (record.split, record.label) == ("val", "dogs")
    assert audit.counts()["dogs"]["val"] == 4


# ----------------------------------------------------------------- the split


def test_leaving_a_file_out_moves_at_most_one_other_picture_between_the_splits(tmp_path):
    root = distinct_classes(tmp_path / "data", per_class=20)
    before = split_of(audit_dataset(root))

    after = split_of(audit_dataset(root, excluded_files=("cats/cats05.png",)))

    moved = [name for name in after if after[name] != before[name]]
    assert len(moved) <= 1, moved


def test_near_copies_stay_on_one_side_of_the_split_like_exact_copies(tmp_path):
    root = distinct_classes(tmp_path / "data", per_class=12)
    for index in range(6):  # a resized, re-saved copy of half the cats
        original = Image.open(root / f"cats/cats{index:02d}.png")
        original.resize((80, 60)).save(root / f"cats/copy{index:02d}.jpg", quality=90)
    shutil.copyfile(root / "dogs/dogs00.png", root / "dogs/dogs00 (1).png")

    audit = audit_dataset(root)

    assert len(audit.duplicates) == 7
    assert all(len(group.splits) == 1 for group in audit.duplicates), "no copy on the other side of the split"
    assert not audit.has_finding(FindingKind.DUPLICATES_ACROSS_SPLITS)


def test_the_split_groups_the_same_copies_with_or_without_the_duplicate_search(tmp_path):
    root = distinct_classes(tmp_path / "data", per_class=8)
    Image.open(root / "cats/cats00.png").resize((50, 40)).save(root / "cats/small.png")
    shutil.copyfile(root / "dogs/dogs01.png", root / "dogs/twin.png")
    audit = audit_dataset(root)

    units = copy_units(audit.records)
    groups = {frozenset(group.files) for group in find_duplicates(audit.records)}

    assert {frozenset(name for name in units if units[name] == first) for first in set(units.values())} == groups
    assert split_of(audit_dataset(root, find_duplicates=False)) == split_of(audit)


# ----------------------------------------------------------------- leaving copies out


def _leaking_split_folders(root):
    """train/ and val/ folders where three validation pictures are near copies of training ones."""
    for split, count in (("train", 8), ("val", 4)):
        for class_index, label in enumerate(("cats", "dogs")):
            for index in range(count):
                save_image(root, f"{split}/{label}/{index}.png", smooth_picture(1000 * (split == "val") + 100 * class_index + index))
    for index in range(3):
        Image.open(root / f"train/cats/{index}.png").resize((80, 60)).save(root / f"val/cats/copy{index}.jpg", quality=85)
    return root


def test_near_copies_outside_training_can_all_be_left_out_and_the_counts_change(tmp_path):
    root = _leaking_split_folders(tmp_path / "data")
    before = audit_dataset(root)
    leaking = [group for group in before.duplicates if group.scope == ACROSS_SPLITS]
    assert len(leaking) == 3 and suggested_exclusions(before) == []  # near copies are never suggested unasked

    outside = files_outside_training(leaking)
    after = audit_dataset(root, excluded_files=tuple(outside))

    assert outside == ["val/cats/copy0.jpg", "val/cats/copy1.jpg", "val/cats/copy2.jpg"]
    assert suggested_exclusions(before, near=True) == outside
    assert after.counts()["cats"]["val"] == before.counts()["cats"]["val"] - 3
    assert not after.duplicates and not after.has_finding(FindingKind.DUPLICATES_ACROSS_SPLITS)


def test_one_group_can_be_left_out_keeping_its_training_copy(tmp_path):
    root = _leaking_split_folders(tmp_path / "data")
    audit = audit_dataset(root)
    group = next(group for group in audit.duplicates if "train/cats/1.png" in group.files)

    assert group_exclusions(audit, group) == ["val/cats/copy1.jpg"]
    after = audit_dataset(root, excluded_files=tuple(group_exclusions(audit, group)))
    assert len(after.duplicates) == 2
