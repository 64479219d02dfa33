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
