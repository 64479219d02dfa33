"""Augmentation presets: the random changes made to training pictures, as Keras layers inside the model.

The layers do nothing outside training, so an exported model takes plain
pictures. This module imports Keras only when layers are made, so that
`TrainConfig` can check a preset's name without loading Keras.
"""

from __future__ import annotations

from tlcore.errors import InputError

AUGMENT_PRESETS = ("none", "flip", "light", "strong")  # what `TrainConfig.augment` accepts
AUGMENT_LAYER = "augmentation"  # the name of the layer in a built model


def make_augmentation(preset: str, seed: int | None = None):
    """The augmentation layers of a preset; they do nothing outside training.

    Args:
        preset: "none", "flip" (mirrored left to right, half of the time),
            "light" (flips, small rotations and zoom) or "strong"
            (also translation, contrast and brightness).
        seed: makes the random transformations reproducible.
    """
    import keras  # here, not at the top: `TrainConfig` reads the presets without Keras

    layers = keras.layers
    if preset not in AUGMENT_PRESETS:
        raise InputError(f"unknown augmentation preset {preset!r}; expected one of: {', '.join(AUGMENT_PRESETS)}.")
    steps = []
    if preset == "flip":
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if preset in ("light", "strong"):
        steps += [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.05 if preset == "light" else 0.1, seed=seed),
            layers.RandomZoom(0.1 if preset == "light" else 0.2, seed=seed),
        ]
    if preset == "strong":
        steps += [
            layers.RandomTranslation(0.1, 0.1, seed=seed),
            layers.RandomContrast(0.2, seed=seed),
            layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
        ]
    return keras.Sequential(steps, name=AUGMENT_LAYER)


# The same random changes as the layers above, for the cached views' feature pass: every geometric
# change of a picture (mirror, turn, zoom, shift) as ONE resampling instead of one per layer.
# Measured on batches of 16 at 224 px on the 2-core CPU: 2.07 ms per picture through the "light"
# layers, 0.78 ms as one transform (the pass itself costs about 1.3 ms per picture).
_VIEW_CHANGES = {  # preset: (turn as a fraction of a full circle, zoom, shift, contrast, brightness)
    "light": (0.05, 0.1, 0.0, 0.0, 0.0),
    "strong": (0.1, 0.2, 0.1, 0.2, 0.2),
}


def view_maker(preset: str, seed: int):
    """`change(batch)`: random views of a batch of pictures (0-255, channels last), as the preset's layers make them.

    Each picture is mirrored half of the time, turned by up to the preset's
    fraction of a full circle, zoomed in or out by up to its factor (both axes
    alike) and, for "strong", shifted by up to a tenth of its size and given
    random contrast and brightness; edges are filled by reflection, as the
    layers do. Repeatable: the same seed gives the same views.
    """
    import keras
    import numpy as np

    if preset not in _VIEW_CHANGES:
        raise InputError(f"no random views for augmentation preset {preset!r}; expected one of: {', '.join(_VIEW_CHANGES)}.")
    turn, zoom, shift, contrast, brightness = _VIEW_CHANGES[preset]
    random = np.random.default_rng(seed)

    def change(batch, training=True):
        images = keras.ops.convert_to_tensor(batch, dtype="float32")
        count, height, width = int(images.shape[0]), int(images.shape[1]), int(images.shape[2])
        transforms = _view_transforms(random, count, height, width, turn, zoom, shift)
        images = keras.ops.image.affine_transform(images, transforms, interpolation="bilinear", fill_mode="reflect")
        if contrast:
            factor = random.uniform(1 - contrast, 1 + contrast, (count, 1, 1, 1)).astype("float32")
            mean = keras.ops.mean(images, axis=(1, 2), keepdims=True)
            images = (images - mean) * factor + mean
        if brightness:
            images = images + random.uniform(-brightness, brightness, (count, 1, 1, 1)).astype("float32") * 255.0
        return keras.ops.clip(images, 0.0, 255.0)

    return change


def _view_transforms(random, count: int, height: int, width: int, turn: float, zoom: float, shift: float):
    """One 8-number projective transform per picture (output pixel -> input pixel), about the picture's centre."""
    import numpy as np

    angle = random.uniform(-turn, turn, count) * 2 * np.pi
    scale = 1 + random.uniform(-zoom, zoom, count)  # >1 samples a larger area: zoomed out
    mirror = np.where(random.random(count) < 0.5, -1.0, 1.0)
    dx = random.uniform(-shift, shift, count) * width
    dy = random.uniform(-shift, shift, count) * height
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a0, a1 = np.cos(angle) * scale * mirror, -np.sin(angle) * scale
    b0, b1 = np.sin(angle) * scale * mirror, np.cos(angle) * scale
    a2 = cx - a0 * cx - a1 * cy + dx
    b2 = cy - b0 * cx - b1 * cy + dy
    zeros = np.zeros(count)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1).astype("float32")
