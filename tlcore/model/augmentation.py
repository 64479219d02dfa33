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
# change of a picture (mirror, turn, zoom, shift) as ONE resampling instead of one per layer, compiled
# with XLA where the backend can. Measured on batches of 16 at 224 px on the 2-core CPU, per picture:
# 2.07 ms through the "light" layers, 0.62 ms through TensorFlow's own projective-transform kernel,
# 0.17 ms as the XLA-compiled resampling below (the pass itself costs about 1.2 ms).
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
    import numpy as np

    if preset not in _VIEW_CHANGES:
        raise InputError(f"no random views for augmentation preset {preset!r}; expected one of: {', '.join(_VIEW_CHANGES)}.")
    turn, zoom, shift, contrast, brightness = _VIEW_CHANGES[preset]
    random = np.random.default_rng(seed)
    resample = _compiled(_resample)

    def change(batch, training=True):
        count, height, width = (int(size) for size in batch.shape[:3])
        transforms = _view_transforms(random, count, height, width, turn, zoom, shift)
        factors = random.uniform(1 - contrast, 1 + contrast, (count, 1, 1, 1)).astype("float32")
        offsets = (random.uniform(-brightness, brightness, (count, 1, 1, 1)) * 255.0).astype("float32")
        return resample(batch, transforms, factors, offsets, bool(contrast))

    return change


def _resample(images, transforms, contrast_factors, brightness_offsets, with_contrast: bool):
    """Bilinear resampling of each picture by its transform (output pixel -> input pixel), edges reflected.

    The same values as `keras.ops.image.affine_transform(..., "bilinear",
    fill_mode="reflect")` (within 0.01 of 255) but written as four gathers
    and a weighted sum, which XLA compiles into one fast loop; then the
    contrast (around each picture's mean colour) and brightness changes, and
    the 0-255 clip.
    """
    import keras

    ops = keras.ops
    images = ops.cast(images, "float32")
    count, height, width, channels = images.shape
    rows, columns = ops.meshgrid(ops.arange(height, dtype="float32"), ops.arange(width, dtype="float32"), indexing="ij")
    a0, a1, a2, b0, b1, b2 = (transforms[:, index][:, None, None] for index in range(6))
    x = a0 * columns + a1 * rows + a2
    y = b0 * columns + b1 * rows + b2
    x_floor, y_floor = ops.floor(x), ops.floor(y)
    x_weight = ops.reshape(x - x_floor, (-1, 1))
    y_weight = ops.reshape(y - y_floor, (-1, 1))
    x_floor, y_floor = ops.cast(x_floor, "int32"), ops.cast(y_floor, "int32")
    pixels = ops.reshape(images, (-1, channels))
    first_row = ops.arange(count, dtype="int32")[:, None, None] * height

    def at(row, column):
        flat = (first_row + _reflected(row, height)) * width + _reflected(column, width)
        return ops.take(pixels, ops.reshape(flat, (-1,)), axis=0)

    top = at(y_floor, x_floor) * (1 - x_weight) + at(y_floor, x_floor + 1) * x_weight
    bottom = at(y_floor + 1, x_floor) * (1 - x_weight) + at(y_floor + 1, x_floor + 1) * x_weight
    changed = ops.reshape(top * (1 - y_weight) + bottom * y_weight, (count, height, width, channels))
    if with_contrast:
        # Around the mean of the picture before it was turned and zoomed (with reflected edges
        # nearly the same): a mean of the resampled picture made XLA resample it twice.
        mean = ops.mean(images, axis=(1, 2), keepdims=True)
        changed = (changed - mean) * contrast_factors + mean
    return ops.clip(changed + brightness_offsets, 0.0, 255.0)


def _reflected(index, size: int):
    """Pixel indices reflected into 0..size-1 as (d c b a | a b c d | d c b a), Keras's "reflect"."""
    import keras

    period = 2 * size
    index = keras.ops.mod(index, period)
    return keras.ops.where(index >= size, period - 1 - index, index)


def _compiled(function):
    """`function` compiled by XLA on TensorFlow and JAX (one compilation per batch shape), as it is elsewhere."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True, autograph=False, reduce_retracing=False)
    if backend == "jax":
        import jax

        return jax.jit(function, static_argnums=(4,))
    return function


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
