"""The built-in demo dataset: drawn shapes a class can fine-tune on without photos.

A teacher who opens the app for the first time has no folder of photos yet, so
tlcore can draw one: four classes of simple shapes (`DEMO_CLASSES`), each image a
single shape on a busy, photo-like background. Everything that is not the shape
(fill colour, background, size, position, rotation, outline or filled, noise,
blur) is drawn from the same distribution for every class, so a model can only
score well by learning the shape itself - not by a shortcut such as "red means
circle". That makes the demo an honest first experiment.

The dataset is written in the layout every other part of tlcore reads,
`destination/<class>/<class>_000.jpg`, and is deterministic for a seed.

This module imports only the standard library, numpy and Pillow (plus tlcore's
dependency-free `errors`), so it stays cheap to import without TensorFlow.

Example:

```python
from tlcore.demo import ensure_demo_dataset

dataset_folder = ensure_demo_dataset()  # ~/.tlcore/demo/shapes
```
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import shutil

import numpy as np

from tlcore import paths
from tlcore.data import demo_drawing
from tlcore.data.demo_drawing import DEMO_CLASSES
from tlcore.errors import InputError

MARKER_FILENAME = ".tlcore-demo-complete"


# The first seed whose 4x40 drawing has no near-duplicate pair (see the docstring
# of generate_demo_dataset); a test keeps it that way.
DEMO_SEED = 3


# Bump whenever the drawing changes, so datasets cached by an older tlcore are
# redrawn instead of silently reused.
DEMO_FORMAT_VERSION = 1


JPEG_QUALITY = 90


MINIMUM_IMAGE_SIZE = 32


MAXIMUM_IMAGE_SIZE = 1024


def generate_demo_dataset(
    destination: str | os.PathLike,
    images_per_class: int = 40,
    image_size: int = 160,
    seed: int = DEMO_SEED,
) -> pathlib.Path:
    """Draw the demo dataset of shapes into `destination`.

    The default seed (DEMO_SEED) is one whose drawing has no near-duplicate
    pictures, so the demo's own audit is clean (a first-time user should not
    be greeted by a duplicate warning on the built-in example).

    Images are drawn into a hidden sibling folder that is renamed into place
    when complete, so a half-written dataset never appears, even if the process
    is killed. A finished dataset holds a marker file recording its parameters;
    when `destination` already has one that matches, nothing is redrawn.

    Args:
        destination: Folder to create, e.g. `~/.tlcore/demo/shapes`. It may be
            missing, empty, or an earlier demo dataset; a folder holding other
            files is refused rather than overwritten.
        images_per_class: Number of images drawn per class. Defaults to 40.
        image_size: Width and height of each square image in pixels, 32 to
            1024. Defaults to 160.
        seed: Non-negative integer; the same seed gives byte-identical images.
            Defaults to 0.

    Returns:
        The dataset folder, holding one sub-folder per name in `DEMO_CLASSES`.

    Raises:
        InputError: A parameter is out of range, or `destination` is a file or
            a folder of someone else's files.

    Example:

    >>> folder = generate_demo_dataset("/tmp/shapes", images_per_class=6)
    >>> sorted(path.name for path in folder.iterdir() if path.is_dir())
    ['circle', 'square', 'star', 'triangle']
    """
    destination = pathlib.Path(destination).expanduser()
    _validate_parameters(images_per_class, image_size, seed)
    recipe = _dataset_recipe(images_per_class, image_size, seed)
    if _has_matching_marker(destination, recipe):
        return destination
    _refuse_to_replace_foreign_files(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = _make_staging_folder(destination)
    try:
        _draw_all_images(staging, images_per_class, image_size, seed)
        _write_marker(staging, recipe)
        _publish(staging, destination, recipe)
    finally:
        # Only left behind when drawing failed or another process won the race.
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def default_demo_path() -> pathlib.Path:
    """Where the app keeps its demo dataset: `$TLCORE_HOME/demo/shapes`.

    Returns:
        The folder path; `TLCORE_HOME` defaults to `~/.tlcore`. The folder may
        not exist yet.
    """
    return paths.demo_dataset_dir()  # the machine's: in a classroom everyone trains on the same demo


def ensure_demo_dataset() -> pathlib.Path:
    """Return the default demo dataset, drawing it first if it is missing.

    Returns:
        `default_demo_path()`, holding a complete dataset with default parameters.
    """
    return generate_demo_dataset(default_demo_path())


def _validate_parameters(images_per_class: int, image_size: int, seed: int) -> None:
    """Reject parameters that cannot make a sensible dataset, saying how to fix them."""
    if not _is_plain_int(images_per_class) or images_per_class < 1:
        raise InputError(
            f"images_per_class must be a whole number of at least 1, got {images_per_class!r}."
        )
    if not _is_plain_int(image_size) or not MINIMUM_IMAGE_SIZE <= image_size <= MAXIMUM_IMAGE_SIZE:
        raise InputError(
            f"image_size must be a whole number of pixels from {MINIMUM_IMAGE_SIZE} to "
            f"{MAXIMUM_IMAGE_SIZE}, got {image_size!r}."
        )
    if not _is_plain_int(seed) or seed < 0:
        raise InputError(f"seed must be a whole number of 0 or more, got {seed!r}.")


def _is_plain_int(value: object) -> bool:
    """True for ints and numpy integers but not for bools, which are ints by accident."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _dataset_recipe(images_per_class: int, image_size: int, seed: int) -> dict:
    """Everything that decides the dataset's bytes, as stored in the marker file."""
    return {
        "format_version": DEMO_FORMAT_VERSION,
        "classes": list(DEMO_CLASSES),
        "images_per_class": int(images_per_class),
        "image_size": int(image_size),
        "seed": int(seed),
        "jpeg_quality": JPEG_QUALITY,
    }


def _has_matching_marker(folder: pathlib.Path, recipe: dict) -> bool:
    """Whether `folder` is a finished demo dataset drawn from exactly `recipe`."""
    try:
        stored = json.loads((folder / MARKER_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stored == recipe


def _refuse_to_replace_foreign_files(destination: pathlib.Path) -> None:
    """Stop before a regeneration could delete files that tlcore did not draw.

    An older demo dataset (it has a marker) or an empty folder may be replaced;
    anything else may be a user's own photos.
    """
    if not destination.exists():
        return
    if not destination.is_dir():
        raise InputError(
            f"Cannot draw the demo dataset at {destination}: it is a file, not a folder. "
            "Choose a folder path that does not exist yet."
        )
    if (destination / MARKER_FILENAME).exists():
        return
    if any(destination.iterdir()):
        raise InputError(
            f"Cannot draw the demo dataset at {destination}: the folder already holds files "
            "that are not a tlcore demo dataset, and tlcore will not overwrite them. "
            "Choose an empty or new folder."
        )


def _make_staging_folder(destination: pathlib.Path) -> pathlib.Path:
    """Create the hidden sibling folder that images are drawn into before publishing.

    It sits beside `destination` so the final rename stays on one file system,
    and its name starts with a dot so nobody mistakes it for a dataset.
    """
    staging = destination.with_name(
        f".{destination.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    )
    staging.mkdir()
    return staging


def _draw_all_images(folder: pathlib.Path, images_per_class: int, image_size: int, seed: int) -> None:
    """Write `images_per_class` JPEGs for every class into `folder/<class>/`."""
    digits = max(3, len(str(images_per_class - 1)))
    for class_index, class_name in enumerate(DEMO_CLASSES):
        class_folder = folder / class_name
        class_folder.mkdir()
        for image_index in range(images_per_class):
            # One generator per image, seeded from (seed, class, image): image k
            # of a class is the same whatever images_per_class is.
            rng = np.random.default_rng([seed, class_index, image_index])
            image = demo_drawing.render_scene(demo_drawing.plan_scene(rng, class_name), image_size)
            image_path = class_folder / f"{class_name}_{image_index:0{digits}d}.jpg"
            image.save(image_path, format="JPEG", quality=JPEG_QUALITY)


def _write_marker(folder: pathlib.Path, recipe: dict) -> None:
    """Record the recipe last, so its presence means every image was written."""
    marker_text = json.dumps(recipe, indent=2, sort_keys=True) + "\n"
    (folder / MARKER_FILENAME).write_text(marker_text, encoding="utf-8")


def _publish(staging: pathlib.Path, destination: pathlib.Path, recipe: dict) -> None:
    """Move the finished staging folder to `destination`, replacing an older demo.

    If another process published the same dataset first, its copy is kept and
    ours is discarded by the caller.
    """
    if _has_matching_marker(destination, recipe):
        return  # drawn by another process while we were drawing
    retired = None
    if destination.exists():
        retired = destination.with_name(
            f".{destination.name}.retired-{os.getpid()}-{secrets.token_hex(4)}"
        )
        try:
            os.rename(destination, retired)
        except FileNotFoundError:
            retired = None  # another process moved it away first
    try:
        os.rename(staging, destination)
    except OSError:
        if not _has_matching_marker(destination, recipe):
            raise
    finally:
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
