"""Tests for tlcore.findings through the audit: each finding names its files and says why it matters."""


from conftest import save_image, smooth_picture

from tlcore.data.audit import audit_dataset

picture = smooth_picture
write = save_image


def dataset(root, counts, extension="jpg"):
    seed = 0
    for label, count in counts.items():
        for index in range(count):
            seed += 1
            write(root, f"{label}/{index}.{extension}", picture(seed))
    return root


def by_kind(audit):
    return {finding.kind: finding for finding in audit.findings}


def test_clean_balanced_dataset_has_no_findings(tmp_path):
    audit = audit_dataset(dataset(tmp_path, {"cats": 12, "dogs": 12}))

    assert audit.findings == []
    assert audit.to_dict()["findings"] == []


def test_tiny_and_extreme_aspect_images_are_named_with_their_sizes(tmp_path):
    root = dataset(tmp_path, {"cats": 12, "dogs": 12})
    write(root, "cats/dot.png", picture(100, size=(1, 1)))
    write(root, "dogs/strip.png", picture(101, size=(3, 500)))
    write(root, "dogs/banner.png", picture(102, size=(900, 200)))

    findings = by_kind(audit_dataset(root))

    assert set(findings["tiny_images"].files) == {"cats/dot.png", "dogs/strip.png"}
    assert "1×1" in findings["tiny_images"].message and "blur" in findings["tiny_images"].message
    assert set(findings["extreme_aspect_ratio"].files) == {"dogs/strip.png", "dogs/banner.png"}
    assert "square" in findings["extreme_aspect_ratio"].message
    assert findings["tiny_images"].severity == "warning"


def test_class_with_one_image_cannot_be_split_and_small_classes_are_flagged(tmp_path):
    root = dataset(tmp_path, {"cats": 12, "dogs": 4, "owls": 1})

    audit = audit_dataset(root)
    findings = by_kind(audit)

    assert findings["class_too_small"].classes == ("owls",)
    assert findings["class_too_small"].files == ("owls/0.jpg",)
    assert findings["small_class"].classes == ("dogs",)
    assert audit.counts()["owls"] == {"train": 1, "val": 0, "test": 0}


def test_imbalance_suggests_class_weights(tmp_path):
    findings = by_kind(audit_dataset(dataset(tmp_path, {"cats": 30, "dogs": 10, "owls": 12})))

    imbalance = findings["class_imbalance"]
    assert "class weights by themselves" in imbalance.message and "Balance the classes" in imbalance.message
    assert imbalance.classes == ("dogs",)
    assert "'cats' has 30" in imbalance.message


def test_mixed_misnamed_converted_and_animated_files_are_notes(tmp_path):
    root = dataset(tmp_path, {"cats": 12, "dogs": 12})
    write(root, "cats/really_a_png.jpg", picture(200), format="PNG")
    write(root, "dogs/scan.tiff", picture(201))
    frames = [picture(202 + i) for i in range(3)]
    frames[0].save(root / "dogs/moving.gif", save_all=True, append_images=frames[1:], duration=100)

    findings = by_kind(audit_dataset(root))

    assert set(findings["mixed_formats"].files) == {"cats/really_a_png.jpg", "dogs/scan.tiff", "dogs/moving.gif"}
    assert findings["misnamed_files"].files == ("cats/really_a_png.jpg",)
    assert "is a PNG" in findings["misnamed_files"].message
    assert findings["needs_conversion"].files == ("dogs/scan.tiff",)
    assert findings["animated_images"].files == ("dogs/moving.gif",)
    assert {findings[kind].severity for kind in ("mixed_formats", "misnamed_files", "needs_conversion")} == {"info"}


def test_format_found_in_one_class_only_is_called_a_possible_shortcut(tmp_path):
    root = dataset(tmp_path, {"cats": 12})
    for index in range(12):
        write(root, f"dogs/{index}.{'png' if index < 3 else 'jpg'}", picture(500 + index))

    message = by_kind(audit_dataset(root))["mixed_formats"].message

    assert "all 3 PNG files are in 'dogs'" in message


def test_skipped_excluded_and_unknown_exclusions_are_reported(tmp_path):
    root = dataset(tmp_path, {"cats": 12, "dogs": 12})
    (root / "cats/notes.jpg").write_text("<html>not a picture</html>")

    audit = audit_dataset(root, excluded_files=("dogs/0.jpg", "dogs/renamed.jpg"))
    findings = by_kind(audit)

    assert findings["skipped_files"].files == ("cats/notes.jpg",)
    assert "text/HTML" in findings["skipped_files"].message
    assert findings["excluded_files"].files == ("dogs/0.jpg",)
    assert findings["exclusions_not_found"].files == ("dogs/renamed.jpg",)
    assert audit.to_dict()["excluded_files"] == ["dogs/0.jpg", "dogs/renamed.jpg"]


def test_split_folders_class_missing_from_val_is_flagged(tmp_path):
    dataset(tmp_path / "train", {"cats": 12, "dogs": 12, "owls": 12})
    dataset(tmp_path / "val", {"cats": 3, "dogs": 3})

    findings = by_kind(audit_dataset(tmp_path))

    assert findings["class_not_validated"].classes == ("owls",)


def test_warnings_strings_are_kept_for_older_callers(tmp_path):
    audit = audit_dataset(dataset(tmp_path, {"cats": 12, "dogs": 3}))

    assert any("only 3 images" in warning for warning in audit.warnings)
    assert all(isinstance(warning, str) for warning in audit.to_dict()["warnings"])


def test_stretched_means_more_than_the_ratio_either_way():
    from tlcore.data.findings import EXTREME_ASPECT_RATIO, is_stretched
    from tlcore.results.prediction import shape_warning

    ratio = int(EXTREME_ASPECT_RATIO)
    assert not is_stretched(ratio * 10, 10) and is_stretched(ratio * 10 + 1, 10) and is_stretched(10, ratio * 10 + 1)
    assert not is_stretched(0, 10)
    assert shape_warning("wide.png", (60000, 1)).startswith("wide.png is 60000×1 pixels: the model squeezes")
    assert shape_warning("photo.jpg", (4000, 3000)) is None and shape_warning("x.png", None) is None
