"""Compose the classifier: raw pixels -> augmentation -> preprocessing -> backbone -> head.

Preprocessing and augmentation live inside the model, so the saved and exported
model takes raw RGB images (0-255) and nobody outside the app has to remember how
a backbone wants its pixels scaled. Augmentation layers are active only in
training. The head is the one the Keras transfer-learning guide uses: global
average pooling, dropout, one dense softmax layer.

Everything here uses stock Keras layers and `keras.ops` only, so the model builds and
trains on the TensorFlow, JAX or PyTorch backend alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from tlcore.errors import InputError
from tlcore.model.augmentation import make_augmentation
from tlcore.model.backbones import build_backbone, get_backbone

PREPROCESS_MODES = ("tf", "torch", "caffe", "none")

# Names of the model's parts, so callers can find them in a built or loaded model.
PREPROCESS_LAYER = "preprocessing"
BACKBONE_LAYER = "backbone"
POOL_LAYER = "pooling"
DROPOUT_LAYER = "head_dropout"
CLASSIFIER_LAYER = "classifier"

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class ModelParts:
    """The built model and the pieces training needs to reach into."""

    model: object  # keras.Model: raw images -> class probabilities
    backbone: object  # keras.Model nested inside it
    augmentation: object  # keras.Sequential (empty for "none")


def make_preprocessing(mode: str, name: str = PREPROCESS_LAYER):
    """Built-in Keras layers scaling raw RGB (0-255) the way a backbone expects.

    Modes: "tf" (to -1..1), "torch" (0..1, then ImageNet mean and std), "caffe"
    (RGB to BGR minus the ImageNet mean, as a fixed 1x1 convolution) and "none"
    (the backbone scales itself). Only stock layers, so an exported .keras file
    loads with plain Keras (`safe_mode=True`, no tlcore needed) and converts to
    TFLite without custom ops.
    """
    layers = keras.layers
    if mode not in PREPROCESS_MODES:
        raise InputError(f"unknown preprocessing mode {mode!r}; expected one of {', '.join(PREPROCESS_MODES)}")
    if mode == "tf":
        steps = [layers.Rescaling(1 / 127.5, offset=-1.0)]
    elif mode == "torch":
        steps = [
            layers.Rescaling(1 / 255.0),
            layers.Normalization(mean=list(_IMAGENET_MEAN), variance=[s * s for s in _IMAGENET_STD]),
        ]
    elif mode == "caffe":
        steps = [_rgb_to_bgr_minus_mean()]
    else:
        steps = [layers.Identity()]
    return keras.Sequential(steps, name=name)


def _rgb_to_bgr_minus_mean():
    """A frozen 1x1 convolution that swaps R and B and subtracts the BGR mean."""
    conv = keras.layers.Conv2D(3, 1, trainable=False, name="rgb_to_bgr_minus_mean")
    conv.build((None, None, None, 3))
    kernel = np.zeros((1, 1, 3, 3), dtype="float32")
    for source, target in ((0, 2), (1, 1), (2, 0)):
        kernel[0, 0, source, target] = 1.0
    conv.set_weights([kernel, -np.array(_CAFFE_MEAN_BGR, dtype="float32")])
    return conv


def build_classifier(
    backbone_name: str,
    num_classes: int,
    image_size: int | None = None,
    augment: str = "none",
    dropout: float = 0.2,
    weights: str | None = "imagenet",
    seed: int | None = None,
) -> ModelParts:
    """Build the full classifier around a pretrained backbone.

    Args:
        backbone_name: a name from `tlcore.backbones`.
        num_classes: number of output classes (at least 2).
        image_size: square input size; defaults to the backbone's native size.
        augment: augmentation preset.
        dropout: dropout rate before the classifier.
        weights: "imagenet" or None.
        seed: seeds augmentation and the head's initialisation.

    Returns:
        `ModelParts` whose model maps raw RGB images (0-255, any float or int
        dtype) of shape (image_size, image_size, 3) to class probabilities.
    """
    spec = get_backbone(backbone_name)
    size = image_size or spec.input_size
    if num_classes < 2:
        raise InputError(f"a classifier needs at least 2 classes, got {num_classes}; add a folder for each class.")
    backbone = build_backbone(backbone_name, size, weights=weights)
    backbone.name = BACKBONE_LAYER
    augmentation = make_augmentation(augment, seed=seed)
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = augmentation(inputs) if augmentation.layers else inputs
    x = make_preprocessing(spec.preprocessing)(x)
    # BatchNormalization stays in inference mode: its layers are frozen here and
    # by every freezing choice (a frozen BatchNormalization layer always runs in
    # inference mode in Keras 3, whatever `training` the outer call passes).
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name=POOL_LAYER)(x)
    x = keras.layers.Dropout(dropout, seed=seed, name=DROPOUT_LAYER)(x)
    outputs = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        dtype="float32",  # softmax in float32 even under mixed precision
        name=CLASSIFIER_LAYER,
    )(x)
    model = keras.Model(inputs, outputs, name=f"tlcore_{backbone_name}")
    return ModelParts(model=model, backbone=backbone, augmentation=augmentation)


def inference_model(model):
    """The same model without its augmentation layers, sharing weights.

    Augmentation is a no-op at inference, but converters (TFLite) and other
    runtimes are happier without random-op layers in the graph.
    """
    size = model.input_shape[1]
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = model.get_layer(PREPROCESS_LAYER)(inputs)
    x = model.get_layer(BACKBONE_LAYER)(x, training=False)
    x = model.get_layer(POOL_LAYER)(x)
    x = model.get_layer(DROPOUT_LAYER)(x)
    outputs = model.get_layer(CLASSIFIER_LAYER)(x)
    return keras.Model(inputs, outputs, name=model.name + "_inference")


def trainable_param_counts(model) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of a model as it stands."""
    trainable = sum(int(ops.size(w)) for w in model.trainable_weights)
    frozen = sum(int(ops.size(w)) for w in model.non_trainable_weights)
    return trainable, frozen
