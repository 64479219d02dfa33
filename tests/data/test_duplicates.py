"""Tests for tlcore.duplicates: exact and near copies, their scope, and the exclusions suggested.

Every picture is generated here: smooth random colour fields, so two seeds give
unrelated pictures and a resized, re-saved copy keeps its perceptual hash.
"""

import functools
import shutil
import time

import pytest
from conftest import save_image, smooth_picture
from PIL import Image

from tlcore.data.audit import audit_dataset
from tlcore.data.duplicates import find_duplicates
from tlcore.data.records import (
    ACROSS_CLASSES,
    ACROSS_SPLITS,
    EXACT,
    NEAR,
    WITHIN_CLASS,
    DuplicateGroup,
    ImageRecord,
    suggested_exclusions,
)
from tlcore.errors import InputError

picture = functools.partial(smooth_picture, size=(96, 72))
write = save_image


def copy(root, source_relative, relative):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / source_relative, path)
    return path


def record(root, relative, split="train"):
    """An ImageRecord as the audit makes it; the class is the first folder."""
    return ImageRecord(
        path=str(root / relative), relative=relative, label=relative.split("/")[0], split=split,
        format="PNG", width=96, height=72, needs_conversion=False,
    )


def class_folders(root, per_class=4, classes=("cats", "dogs")):
    """Distinct pictures in class folders; seeds never repeat across classes."""
    for class_index, label in enumerate(classes):
        for index in range(per_class):
            write(root, f"{label}/{label}{index}.png", picture(100 * class_index + index))
    return root


def test_unrelated_pictures_are_not_duplicates(tmp_path):
    records = [record(tmp_path, str(write(tmp_path, f"cats/{i}.png", picture(i)).relative_to(tmp_path)))
               for i in range(12)]

    assert find_duplicates(records) == []


def test_byte_identical_copies_in_one_class_are_an_exact_within_class_group(tmp_path):
    write(tmp_path, "cats/a.png", picture(1))
    copy(tmp_path, "cats/a.png", "cats/a copy.png")
    write(tmp_path, "cats/b.png", picture(2))

    groups = find_duplicates([record(tmp_path, name) for name in ("cats/a.png", "cats/a copy.png", "cats/b.png")])

    assert len(groups) == 1
    group = groups[0]
    assert (group.kind, group.scope) == (EXACT, WITHIN_CLASS)
    assert group.files == ["cats/a copy.png", "cats/a.png"]
    assert "byte for byte" in group.explanation and "'cats'" in group.explanation


def test_same_picture_in_two_classes_is_a_label_conflict(tmp_path):
    write(tmp_path, "cats/a.png", picture(1))
    copy(tmp_path, "cats/a.png", "dogs/a.png")

    (group,) = find_duplicates([record(tmp_path, "cats/a.png"), record(tmp_path, "dogs/a.png", split="val")])

    assert group.scope == ACROSS_CLASSES
    assert group.classes == ["cats", "dogs"]
    assert "label conflict" in group.explanation
    assert "leak" in group.explanation  # also in two splits, and the explanation says so


def test_copy_in_train_and_val_is_leakage_with_the_training_copy_first(tmp_path):
    write(tmp_path, "cats/b.png", picture(1))
    copy(tmp_path, "cats/b.png", "cats/a.png")

    (group,) = find_duplicates([record(tmp_path, "cats/a.png", split="val"), record(tmp_path, "cats/b.png")])

    assert group.scope == ACROSS_SPLITS
    assert group.splits == ["train", "val"]
    assert group.files == ["cats/b.png", "cats/a.png"]  # train first, even though "a" sorts before "b"
    assert "leakage" in group.explanation


def test_resized_and_resaved_copy_is_a_near_duplicate(tmp_path):
    original = picture(7, size=(320, 240))
    write(tmp_path, "cats/original.png", original)
    write(tmp_path, "cats/small.jpg", original.resize((160, 120)), quality=60)
    write(tmp_path, "cats/other.png", picture(8, size=(320, 240)))

    groups = find_duplicates([record(tmp_path, n) for n in ("cats/original.png", "cats/small.jpg", "cats/other.png")])

    assert [(g.kind, g.scope, g.files) for g in groups] == [(NEAR, WITHIN_CLASS, ["cats/original.png", "cats/small.jpg"])]


def test_exif_rotated_copy_is_recognised_as_the_same_picture(tmp_path):
    upright = picture(11, size=(120, 80))
    write(tmp_path, "cats/upright.jpg", upright, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the camera stored it on its side
    write(tmp_path, "cats/sideways.jpg", upright.transpose(Image.Transpose.ROTATE_90), quality=95, exif=exif)

    (group,) = find_duplicates([record(tmp_path, "cats/upright.jpg"), record(tmp_path, "cats/sideways.jpg")])

    assert group.kind == NEAR


def test_exact_only_mode_ignores_near_copies(tmp_path):
    write(tmp_path, "cats/a.png", picture(3))
    write(tmp_path, "cats/a.jpg", picture(3), quality=80)

    records = [record(tmp_path, "cats/a.png"), record(tmp_path, "cats/a.jpg")]

    assert find_duplicates(records, max_distance=-1) == []
    assert len(find_duplicates(records)) == 1


@pytest.mark.parametrize("bad", [65, -2, 2.5, True, "8"])
def test_max_distance_out_of_range_is_an_input_error(tmp_path, bad):
    with pytest.raises(InputError, match="max_distance"):
        find_duplicates([], max_distance=bad)


def test_file_removed_after_the_audit_is_left_out_not_fatal(tmp_path):
    write(tmp_path, "cats/a.png", picture(1))
    copy(tmp_path, "cats/a.png", "cats/b.png")
    records = [record(tmp_path, "cats/a.png"), record(tmp_path, "cats/b.png"), record(tmp_path, "cats/gone.png")]

    (group,) = find_duplicates(records)

    assert group.files == ["cats/a.png", "cats/b.png"]


def test_mixed_group_of_exact_and_near_copies_is_one_near_group(tmp_path):
    write(tmp_path, "cats/a.png", picture(5, size=(200, 150)))
    copy(tmp_path, "cats/a.png", "cats/b.png")
    write(tmp_path, "cats/c.jpg", picture(5, size=(200, 150)).resize((100, 75)), quality=70)

    (group,) = find_duplicates([record(tmp_path, n) for n in ("cats/a.png", "cats/b.png", "cats/c.jpg")])

    assert group.kind == NEAR
    assert len({member.sha256 for member in group.members}) == 2


class _AuditWithGroups:
    def __init__(self, groups, layout="split_folders"):
        self.duplicates = groups
        self.layout = layout


def test_suggested_exclusions_keep_one_copy_per_class_and_prefer_training(tmp_path):
    write(tmp_path, "cats/a.png", picture(1))
    copy(tmp_path, "cats/a.png", "cats/b.png")  # redundant: exclude b
    write(tmp_path, "cats/c.png", picture(2))
    copy(tmp_path, "cats/c.png", "cats/a-val.png")  # leakage: exclude the val copy
    write(tmp_path, "cats/d.png", picture(3))
    copy(tmp_path, "cats/d.png", "dogs/d.png")  # conflict: the user decides, nothing suggested
    write(tmp_path, "cats/e.png", picture(4, size=(200, 150)))
    write(tmp_path, "cats/f.jpg", picture(4, size=(200, 150)).resize((100, 75)), quality=70)  # near: user decides
    records = [
        record(tmp_path, "cats/a.png"), record(tmp_path, "cats/b.png"),
        record(tmp_path, "cats/c.png"), record(tmp_path, "cats/a-val.png", split="val"),
        record(tmp_path, "cats/d.png"), record(tmp_path, "dogs/d.png"),
        record(tmp_path, "cats/e.png"), record(tmp_path, "cats/f.jpg"),
    ]

    groups = find_duplicates(records)

    assert [group.scope for group in groups] == [ACROSS_CLASSES, ACROSS_SPLITS, WITHIN_CLASS, WITHIN_CLASS]
    assert suggested_exclusions(_AuditWithGroups(groups)) == ["cats/a-val.png", "cats/b.png"]


def test_when_tlcore_splits_the_copy_kept_is_the_first_by_name_whatever_the_split(tmp_path):
    write(tmp_path, "cats/a.png", picture(1))
    copy(tmp_path, "cats/a.png", "cats/b.png")

    groups = find_duplicates([record(tmp_path, "cats/a.png", split="val"), record(tmp_path, "cats/b.png")])

    assert suggested_exclusions(_AuditWithGroups(groups, layout="class_folders")) == ["cats/b.png"]
    assert suggested_exclusions(_AuditWithGroups(groups, layout="split_folders")) == ["cats/a.png"]


def test_group_to_dict_names_every_file_with_its_class_and_split(tmp_path):
    write(tmp_path, "cats/a.png", picture(1))
    copy(tmp_path, "cats/a.png", "cats/b.png")

    (group,) = find_duplicates([record(tmp_path, "cats/a.png"), record(tmp_path, "cats/b.png", split="val")])
    data = group.to_dict()

    assert isinstance(group, DuplicateGroup)
    assert data["files"] == ["cats/a.png", "cats/b.png"]
    assert [(m["relative"], m["label"], m["split"]) for m in data["members"]] == [
        ("cats/a.png", "cats", "train"), ("cats/b.png", "cats", "val")
    ]
    assert data["kind"] == "exact" and data["scope"] == "across_splits" and data["explanation"]


# ----------------------------------------------------------------- through the audit


def test_audit_reports_duplicates_in_findings_and_json(tmp_path):
    root = class_folders(tmp_path / "data")
    copy(root, "cats/cats0.png", "cats/cats0 (1).png")
    copy(root, "dogs/dogs1.png", "cats/stray.png")

    audit = audit_dataset(root)
    report = audit.to_dict()

    assert audit.duplicates_checked
    assert {group["scope"] for group in report["duplicates"]} >= {ACROSS_CLASSES}
    named = {file for finding in report["findings"] if finding["kind"].startswith("duplicates_") for file in finding["files"]}
    assert {"cats/cats0.png", "cats/cats0 (1).png", "dogs/dogs1.png", "cats/stray.png"} <= named
    assert "cats/cats0 (1).png" in report["suggested_exclusions"] or "cats/cats0.png" in report["suggested_exclusions"]


def test_excluded_copy_is_no_longer_a_duplicate(tmp_path):
    root = class_folders(tmp_path / "data")
    copy(root, "cats/cats0.png", "cats/cats0 (1).png")

    before = audit_dataset(root)
    after = audit_dataset(root, excluded_files=tuple(suggested_exclusions(before)))

    assert len(before.duplicates) == 1
    assert after.duplicates == []
    assert [item.reason for item in after.skipped] == ["excluded by you"]
    assert (root / "cats/cats0 (1).png").exists()  # excluded, never deleted


def test_duplicate_search_can_be_turned_off_and_positional_call_still_works(tmp_path):
    root = class_folders(tmp_path / "data")
    copy(root, "cats/cats0.png", "cats/cats0 (1).png")

    audit = audit_dataset(str(root), 0.25, 7, (), False)

    assert not audit.duplicates_checked and audit.duplicates == []
    assert not [f for f in audit.findings if f.kind.startswith("duplicates_")]
    assert audit_dataset(str(root), 0.25, 7, ("cats/cats0 (1).png",)).duplicates == []


@pytest.mark.slow
def test_weather4_exact_pairs_are_all_found_quickly(shared_datasets):
    started = time.perf_counter()
    audit = audit_dataset(shared_datasets / "weather4")
    elapsed = time.perf_counter() - started

    exact = [group for group in audit.duplicates if group.kind == EXACT]
    assert len(exact) == 4 and all(len(group.files) == 2 for group in exact)
    assert all(group.scope in (WITHIN_CLASS, ACROSS_SPLITS) for group in exact)  # all 4 pairs sit inside one class
    assert len(suggested_exclusions(audit)) == 4
    assert elapsed < 20, f"auditing 400 photos with duplicate search took {elapsed:.1f} s"
