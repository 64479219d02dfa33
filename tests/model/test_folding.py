"""Tests for tlcore.folding: batch normalization folded into convolutions, same outputs.

Normalization statistics are randomized first, so that folding them wrongly
(a channel order, an epsilon, a missing beta) changes the outputs.
"""

import keras
import numpy as np
import pytest

from tlcore.model import folding
from tlcore.model.backbones import BACKBONES, build_backbone
from tlcore.training import features

WITHOUT_NORMALIZATION_AFTER_CONVOLUTIONS = {"vgg16", "convnext_tiny"}


def _randomize_normalization(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.2, channels).astype("float32"))


def _assert_same_outputs(model, function, images, tolerance=1e-4):
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    folded = keras.ops.convert_to_numpy(function(images))
    assert folded.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-6)
    assert np.abs(folded - expected).max() <= tolerance * scale


@pytest.mark.parametrize("backbone_name", sorted(BACKBONES))
def test_every_backbone_computes_the_same_outputs_folded(backbone_name):
    size = BACKBONES[backbone_name].min_input_size
    keras.utils.set_random_seed(0)
    backbone = build_backbone(backbone_name, size, weights=None)
    _randomize_normalization(backbone)
    images = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype("float32")

    function = folding.inference_function(backbone)

    _assert_same_outputs(backbone, function, images)
    if backbone_name not in WITHOUT_NORMALIZATION_AFTER_CONVOLUTIONS:
        assert folding.folded_pairs(backbone), "expected some normalization to be folded"


def _mixed_graph():
    """Convolutions that may and may not absorb the normalization after them."""
    inputs = keras.Input((9, 9, 3))
    read_twice = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="read_twice")(inputs)
    first = keras.layers.BatchNormalization(name="after_read_twice")(read_twice)
    second = keras.layers.Conv2D(4, 1, name="second_reader")(read_twice)
    activated = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="activated")(inputs)
    after_activated = keras.layers.BatchNormalization(name="after_activated")(activated)
    depthwise = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(inputs)
    after_depthwise = keras.layers.BatchNormalization(epsilon=0.01, name="after_depthwise")(depthwise)
    strided = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="strided")(inputs)
    after_strided = keras.layers.BatchNormalization(center=False, name="after_strided")(strided)
    dilated = keras.layers.Conv2D(6, 3, dilation_rate=2, padding="same", use_bias=False, name="dilated")(inputs)
    after_dilated = keras.layers.BatchNormalization(scale=False, name="after_dilated")(dilated)
    pooled = keras.layers.MaxPooling2D(2, padding="same")(keras.layers.Concatenate()([after_dilated, after_depthwise]))
    outputs = keras.layers.Concatenate()([
        keras.layers.Flatten()(first), keras.layers.Flatten()(second), keras.layers.Flatten()(after_activated),
        keras.layers.Flatten()(pooled), keras.layers.Flatten()(after_strided),
    ])
    model = keras.Model(inputs, outputs)
    _randomize_normalization(model)
    return model


def test_only_a_convolution_without_activation_read_only_by_its_normalization_is_folded():
    model = _mixed_graph()

    pairs = folding.folded_pairs(model)

    folded = {model.get_layer(name) for name in ("depthwise", "strided", "dilated")}
    assert {id(layer) for layer in folded} == set(pairs)
    assert pairs[id(model.get_layer("depthwise"))] is model.get_layer("after_depthwise")


def test_folded_graph_with_depthwise_multiplier_strides_and_dilation_gives_the_same_outputs():
    model = _mixed_graph()
    images = np.random.default_rng(2).normal(0, 1, (3, 9, 9, 3)).astype("float32")

    _assert_same_outputs(model, folding.inference_function(model), images)


def test_nested_models_are_folded_too():
    inner_input = keras.Input((8, 8, 3))
    inner_output = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(5, 3)(inner_input)))
    inner = keras.Model(inner_input, inner_output, name="inner")
    _randomize_normalization(inner)
    outer_input = keras.Input((8, 8, 3))
    outer = keras.Model(outer_input, keras.layers.GlobalAveragePooling2D()(inner(outer_input, training=False)))
    images = np.random.default_rng(3).normal(0, 1, (2, 8, 8, 3)).astype("float32")

    _assert_same_outputs(outer, folding.inference_function(outer), images)


def test_a_layer_called_twice_is_not_folded():
    inputs = keras.Input((6, 6, 3))
    shared_normalization = keras.layers.BatchNormalization(name="shared_normalization")
    convolution = keras.layers.Conv2D(3, 3, padding="same", name="convolution")
    first = shared_normalization(convolution(inputs))
    second = shared_normalization(keras.layers.ReLU()(inputs))  # the same layer after no convolution
    shared_convolution = keras.layers.Conv2D(3, 1, name="shared_convolution")
    third = keras.layers.BatchNormalization()(shared_convolution(inputs))
    fourth = shared_convolution(first)  # the same convolution, not followed by a normalization
    model = keras.Model(inputs, keras.layers.Concatenate()([first, second, third, fourth]))
    _randomize_normalization(model)
    images = np.random.default_rng(5).normal(0, 1, (2, 6, 6, 3)).astype("float32")

    assert folding.folded_pairs(model) == {}
    _assert_same_outputs(model, folding.inference_function(model), images)


def test_a_model_that_is_not_a_functional_graph_is_not_folded():
    class Subclassed(keras.Model):
        def call(self, inputs):
            return inputs * 2

    assert folding.inference_function(Subclassed()) is None


def test_folded_weights_are_taken_when_the_function_is_made():
    # The frozen part does not change during a feature pass; a function made
    # before weights change keeps the old ones (and the feature pass makes its own).
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 1)(inputs)))
    images = np.ones((1, 4, 4, 2), dtype="float32")
    function = folding.inference_function(model)
    before = keras.ops.convert_to_numpy(function(images))

    model.layers[-1].moving_mean.assign(np.array([5.0, -5.0], dtype="float32"))

    np.testing.assert_allclose(keras.ops.convert_to_numpy(function(images)), before)
    _assert_same_outputs(model, folding.inference_function(model), images)


def test_feature_pass_falls_back_to_the_plain_model_when_folding_fails(monkeypatch):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs)))
    _randomize_normalization(model)
    images = np.random.default_rng(4).normal(0, 1, (2, 8, 8, 3)).astype("float32")

    def broken(model):
        def fails(inputs):
            raise RuntimeError("cannot trace")

        return fails

    monkeypatch.setattr(folding, "inference_function", broken)
    with pytest.warns(UserWarning, match="unfolded"):
        forward, folded = features._forward_function(model, batch_size=2)

    assert not folded
    _assert_same_outputs(model, forward, images)


def test_a_single_output_in_a_list_comes_back_as_the_model_gives_it():
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, [keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))])
    _randomize_normalization(model)
    images = np.random.default_rng(6).normal(0, 1, (2, 6, 6, 3)).astype("float32")

    _assert_same_outputs(model, folding.inference_function(model), images)


def test_a_subclass_with_its_own_call_is_not_walked():
    class Doubled(keras.Model):
        def __init__(self):
            inputs = keras.Input((4, 4, 2))
            super().__init__(inputs, keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 1)(inputs)))

        def call(self, inputs, training=None):
            return super().call(inputs, training=training) * 2.0

    assert folding.inference_function(Doubled()) is None


def test_under_mixed_precision_nothing_is_folded():
    # Keras normalizes in float32 under mixed precision; a folded float16 kernel would lose precision.
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        inputs = keras.Input((6, 6, 3))
        model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs)))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")

    assert folding.folded_pairs(model) == {}
