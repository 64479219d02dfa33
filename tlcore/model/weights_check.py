"""Tell pretrained weights from untrained ones, reading only a weights file's BatchNorm statistics.

A BatchNormalization layer starts with a moving mean of 0 and a moving
variance of 1 for every channel, and training moves both. In a pretrained
ImageNet file no layer keeps them (the 52 BatchNorm layers of MobileNetV2 all
moved). A file whose layers still hold them was saved from a model that never
saw a picture: its shapes are right, so Keras loads it, but every run on it
would score at chance. Such a file is refused by name, before any model is
built: the statistics are a few kilobytes read with h5py from the HDF5 file
Keras's legacy writer makes (one group per layer, each dataset's last name
`moving_mean` or `moving_variance`, with `:0` in older files).

Architectures without BatchNorm (VGG16, ConvNeXt's LayerNorm) have nothing to
check here; their files are verified by their published hash, or not at all.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from tlcore.errors import InputError

INITIAL_MEAN = 0.0
INITIAL_VARIANCE = 1.0
# A file is plainly untrained when at least this share of its BatchNorm layers never moved.
UNTRAINED_SHARE = 0.5


def untouched_batch_norm_layers(path: str | os.PathLike) -> tuple[int, int]:
    """Count the BatchNorm layers of a Keras HDF5 weights file whose statistics are still the initial ones.

    A layer counts as untouched when its moving mean is 0 for every channel or
    its moving variance is 1 for every channel (training moves both).

    Args:
        path: a `.h5` weights file in Keras's legacy layout.

    Returns:
        `(untouched layers, BatchNorm layers)`; `(0, 0)` for a file without BatchNorm.

    Raises:
        OSError, ValueError: the file is not readable HDF5 (the caller words it).
    """
    import h5py

    statistics: dict[str, dict[str, object]] = {}

    def collect(name: str, item) -> None:
        if not isinstance(item, h5py.Dataset):
            return
        kind = name.rsplit("/", 1)[-1].split(":", 1)[0]
        if kind in ("moving_mean", "moving_variance"):
            statistics.setdefault(name.split("/", 1)[0], {})[kind] = item

    with h5py.File(path, "r") as handle:
        handle.visititems(collect)
        untouched = sum(1 for layer in statistics.values() if _still_initial(layer))
    return untouched, len(statistics)


def _still_initial(layer: dict) -> bool:
    mean, variance = layer.get("moving_mean"), layer.get("moving_variance")
    return bool((mean is not None and _all_equal(mean, INITIAL_MEAN))
                or (variance is not None and _all_equal(variance, INITIAL_VARIANCE)))


def _all_equal(dataset, value: float) -> bool:
    if dataset.size == 0 or dataset.size > 1_000_000:  # a BatchNorm statistic has one number per channel
        return False
    return bool(np.all(np.asarray(dataset[()]) == value))


def check_trained(path: str | os.PathLike, backbone: str) -> None:
    """Refuse a weights file whose BatchNorm statistics show it was never trained.

    Args:
        path: the weights file.
        backbone: the backbone's name, for the message.

    Raises:
        InputError: most BatchNorm layers still hold their initial statistics;
            the message says how many, what that means and what to do.
    """
    path = pathlib.Path(path)
    try:
        untouched, total = untouched_batch_norm_layers(path)
    except (OSError, ValueError, TypeError, KeyError):
        return  # not readable HDF5: the caller's own checks say so in their words
    if total and untouched >= UNTRAINED_SHARE * total:
        raise InputError(
            f"the file {path.name!r} holds untrained weights, not pretrained ones: {untouched} of its {total} "
            f"BatchNorm layers still have the statistics a new model starts with (mean 0, variance 1), so a run "
            f"on backbone {backbone!r} would only guess. Download the file again from the Keras site and import that."
        )
