"""Tests for the built-in demo dataset of drawn shapes (tlcore.demo).

Small datasets (6 images of 64 px per class) keep the suite fast; the colour
check draws more images, smaller, because class averages of 6 images are too
noisy to say anything.
"""

import dataclasses
import pathlib

import numpy as np
import pytest
from PIL import Image

from tlcore.data import demo_drawing
from tlcore.data.demo import MARKER_FILENAME, default_demo_path, ensure_demo_dataset, generate_demo_dataset
from tlcore.data.demo_drawing import DEMO_CLASSES


def _image_paths(folder):
    """Every JPEG of a dataset, class by class, in name order."""
    return [path for name in DEMO_CLASSES for path in sorted((folder / name).glob("*.jpg"))]


def _small_dataset(folder, seed=0):
    return generate_demo_dataset(folder, images_per_class=6, image_size=64, seed=seed)


def test_writes_one_folder_per_class_with_requested_count(tmp_path):
    destination = tmp_path / "shapes"

    returned = _small_dataset(destination)

    assert returned == destination
    class_folders = sorted(path.name for path in destination.iterdir() if path.is_dir())
    assert class_folders == sorted(DEMO_CLASSES)
    for name in DEMO_CLASSES:
        file_names = sorted(path.name for path in (destination / name).iterdir())
        assert file_names == [f"{name}_{index:03d}.jpg" for index in range(6)]
    assert (destination / MARKER_FILENAME).is_file()
    # The staging folder was renamed into place, not left beside it.
    assert [path.name for path in tmp_path.iterdir()] == ["shapes"]


def test_images_are_jpegs_of_requested_size(tmp_path):
    destination = _small_dataset(tmp_path / "shapes")

    for path in _image_paths(destination):
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == (64, 64)
            image.verify()


def test_same_seed_gives_same_bytes_and_another_seed_does_not(tmp_path):
    first = _small_dataset(tmp_path / "first", seed=7)
    second = _small_dataset(tmp_path / "second", seed=7)
    other = _small_dataset(tmp_path / "other", seed=8)

    first_bytes = [path.read_bytes() for path in _image_paths(first)]
    assert first_bytes == [path.read_bytes() for path in _image_paths(second)]
    assert first_bytes != [path.read_bytes() for path in _image_paths(other)]


def test_matching_marker_means_nothing_is_redrawn(tmp_path):
    destination = _small_dataset(tmp_path / "shapes")
    sentinel = destination / "circle" / "left-by-test.txt"
    sentinel.write_text("still here")
    first_image = destination / "circle" / "circle_000.jpg"
    modified_before = first_image.stat().st_mtime_ns

    _small_dataset(destination)

    assert sentinel.read_text() == "still here"
    assert first_image.stat().st_mtime_ns == modified_before


def test_changed_parameters_redraw_an_older_demo_dataset(tmp_path):
    destination = _small_dataset(tmp_path / "shapes")
    (destination / "circle" / "left-by-test.txt").write_text("old dataset")

    generate_demo_dataset(destination, images_per_class=3, image_size=48, seed=0)

    assert len(_image_paths(destination)) == 3 * len(DEMO_CLASSES)
    assert not (destination / "circle" / "left-by-test.txt").exists()
    with Image.open(destination / "star" / "star_000.jpg") as image:
        assert image.size == (48, 48)
    assert [path.name for path in tmp_path.iterdir()] == ["shapes"]


def test_refuses_to_overwrite_a_folder_of_other_files(tmp_path):
    destination = tmp_path / "my_photos"
    destination.mkdir()
    (destination / "holiday.jpg").write_bytes(b"not ours")

    with pytest.raises(ValueError, match="not a tlcore demo dataset"):
        _small_dataset(destination)

    assert (destination / "holiday.jpg").read_bytes() == b"not ours"


def test_failure_midway_leaves_no_half_written_dataset(tmp_path, monkeypatch):
    drawn = []
    real_render_scene = demo_drawing.render_scene

    def render_then_fail(plan, image_size):
        if len(drawn) == 5:
            raise RuntimeError("simulated crash while drawing")
        drawn.append(plan)
        return real_render_scene(plan, image_size)

    monkeypatch.setattr(demo_drawing, "render_scene", render_then_fail)

    with pytest.raises(RuntimeError, match="simulated crash"):
        _small_dataset(tmp_path / "shapes")

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arguments",
    [
        {"images_per_class": 0},
        {"images_per_class": 2.5},
        {"image_size": 8},
        {"image_size": True},
        {"seed": -1},
    ],
)
def test_rejects_parameters_it_cannot_use(tmp_path, arguments):
    with pytest.raises(ValueError):
        generate_demo_dataset(tmp_path / "shapes", **arguments)
    assert not (tmp_path / "shapes").exists()


def test_class_decides_only_the_shape():
    # With the same random draws, every class gets the same colour, background,
    # size, position and finish: nothing but the shape can carry the label.
    for image_index in range(50):
        plans = [
            demo_drawing.plan_scene(np.random.default_rng([3, image_index]), name) for name in DEMO_CLASSES
        ]
        for plan in plans[1:]:
            assert dataclasses.replace(plan, shape=plans[0].shape) == plans[0]


def test_mean_colour_does_not_predict_the_class(tmp_path):
    destination = generate_demo_dataset(tmp_path / "shapes", images_per_class=40, image_size=48)
    labels = np.repeat(np.arange(len(DEMO_CLASSES)), 40)
    mean_colours = np.array([_mean_colour(path) for path in _image_paths(destination)])

    class_means = np.array([mean_colours[labels == label].mean(axis=0) for label in range(4)])
    largest_gap = np.abs(class_means[:, None, :] - class_means[None, :, :]).max()
    # Single images vary by about 45 levels, so 40-image averages drift by a
    # few levels; a colour shortcut would show as a far larger gap.
    assert largest_gap < 40.0

    accuracy = _nearest_class_mean_accuracy(mean_colours, labels)
    # Chance is 0.25; guessing from colour alone must stay near it.
    assert accuracy < 0.45


def _mean_colour(path):
    """Average red, green and blue of one image."""
    with Image.open(path) as image:
        return np.asarray(image, dtype=float).mean(axis=(0, 1))


def _nearest_class_mean_accuracy(features, labels):
    """Leave-one-out accuracy of guessing each image's class from the nearest class average."""
    correct = 0
    for held_out in range(len(features)):
        others = np.arange(len(features)) != held_out
        centres = np.array(
            [features[others & (labels == label)].mean(axis=0) for label in np.unique(labels)]
        )
        guess = np.argmin(((centres - features[held_out]) ** 2).sum(axis=1))
        correct += int(guess == labels[held_out])
    return correct / len(features)


def test_star_has_five_points_and_the_others_their_corners():
    star = demo_drawing.shape_outline("star")
    radii = np.linalg.norm(star, axis=1)
    assert len(star) == 10
    assert np.isclose(radii, 1.0).sum() == 5
    assert len(demo_drawing.shape_outline("triangle")) == 3
    assert len(demo_drawing.shape_outline("square")) == 4
    with pytest.raises(ValueError, match="Unknown demo shape"):
        demo_drawing.shape_outline("hexagon")


def test_default_demo_path_follows_tlcore_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "home"))
    assert default_demo_path() == tmp_path / "home" / "demo" / "shapes"

    monkeypatch.delenv("TLCORE_HOME")
    assert default_demo_path() == pathlib.Path.home() / ".tlcore" / "demo" / "shapes"


def test_ensure_demo_dataset_draws_once_at_the_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path))

    folder = ensure_demo_dataset()

    assert folder == tmp_path / "demo" / "shapes"
    assert len(_image_paths(folder)) == 40 * len(DEMO_CLASSES)
    marker_written = (folder / MARKER_FILENAME).stat().st_mtime_ns
    assert ensure_demo_dataset() == folder
    assert (folder / MARKER_FILENAME).stat().st_mtime_ns == marker_written


def test_default_demo_has_a_clean_audit(tmp_path):
    """The built-in example must not greet a first-time user with duplicate warnings."""
    from tlcore.data.audit import audit_dataset
    from tlcore.data.demo import generate_demo_dataset

    audit = audit_dataset(generate_demo_dataset(tmp_path / "shapes"))
    assert audit.duplicates == []
    assert audit.warnings == []
    assert len(audit.records) == 160
