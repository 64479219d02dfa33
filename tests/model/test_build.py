"""Tests for tlcore.model: preprocessing inside the model, augmentation, the head, saving."""

import zipfile

import keras
import numpy as np
import pytest

from tlcore.errors import InputError
from tlcore.model.augmentation import AUGMENT_LAYER, make_augmentation
from tlcore.model.blocks import apply_freezing, backbone_blocks, parse_freeze
from tlcore.model.build import (
    BACKBONE_LAYER,
    CLASSIFIER_LAYER,
    PREPROCESS_LAYER,
    PREPROCESS_MODES,
    build_classifier,
    inference_model,
    make_preprocessing,
)


@pytest.fixture(scope="module")
def raw_batch():
    return np.random.default_rng(0).uniform(0, 255, size=(4, 8, 8, 3)).astype("float32")


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("tf", keras.applications.mobilenet_v2.preprocess_input),
        ("tf", keras.applications.inception_v3.preprocess_input),
        ("caffe", keras.applications.resnet50.preprocess_input),
        ("caffe", keras.applications.vgg16.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
    ],
)
def test_preprocess_matches_keras_applications(raw_batch, mode, reference):
    ours = keras.ops.convert_to_numpy(make_preprocessing(mode)(raw_batch))

    expected = reference(raw_batch.copy())

    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)


def test_preprocess_none_passes_pixels_through_as_float(raw_batch):
    out = keras.ops.convert_to_numpy(make_preprocessing("none")(raw_batch))

    np.testing.assert_array_equal(out, raw_batch)


def test_every_backbone_in_the_table_has_a_known_preprocessing_mode():
    from tlcore.model.backbones import BACKBONES

    assert {spec.preprocessing for spec in BACKBONES.values()} <= set(PREPROCESS_MODES)


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_preprocessing_has_nothing_to_train(raw_batch, mode):
    layer = make_preprocessing(mode)
    layer(raw_batch)

    assert layer.trainable_weights == []
    assert layer.name == PREPROCESS_LAYER


def test_unknown_preprocessing_mode_lists_the_modes():
    with pytest.raises(InputError, match="tf, torch, caffe, none"):
        make_preprocessing("imagenet")


@pytest.mark.parametrize(("preset", "count"), [("none", 0), ("light", 3), ("strong", 6)])
def test_augmentation_presets(preset, count):
    assert len(make_augmentation(preset, seed=1).layers) == count


def test_unknown_augmentation_preset_lists_the_presets():
    with pytest.raises(InputError, match="none, flip, light, strong"):
        make_augmentation("heavy")


def test_augmentation_changes_images_only_in_training(raw_batch):
    augmentation = make_augmentation("strong", seed=3)

    np.testing.assert_array_equal(keras.ops.convert_to_numpy(augmentation(raw_batch, training=False)), raw_batch)
    assert not np.allclose(keras.ops.convert_to_numpy(augmentation(raw_batch, training=True)), raw_batch)


def test_classifier_maps_raw_images_to_probabilities(calibrated_classifier, tiny_images):
    parts = calibrated_classifier("mobilenet_025")
    model = parts.model

    probabilities = model.predict(tiny_images(per_class=2), verbose=0)

    assert model.input_shape == (None, 32, 32, 3)
    assert probabilities.shape == (6, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert probabilities.std(axis=0).max() > 1e-3, "outputs should depend on the image"
    assert model.get_layer(BACKBONE_LAYER) is parts.backbone
    assert model.get_layer(CLASSIFIER_LAYER).units == 3
    with pytest.raises(ValueError):
        model.get_layer(AUGMENT_LAYER)


def test_classifier_needs_two_classes():
    with pytest.raises(InputError, match="at least 2 classes"):
        build_classifier("mobilenet_025", 1, 32, weights=None)


@pytest.mark.parametrize("freeze", ["none", "top:2"])
def test_batch_normalization_stays_in_inference_mode_while_training(calibrated_classifier, tiny_images, freeze):
    # Calibrated on images 0-3 of each class and fed images 4-7, so batch
    # statistics differ from the moving ones and a training-mode
    # BatchNormalization would change the outputs. (Keras 3 passes the outer
    # `training=True` down to nested models, so it is the frozen BatchNormalization
    # layers, not the `training=False` of the backbone call, that guarantee this.)
    parts = calibrated_classifier("mobilenetv2_035")
    found = backbone_blocks("mobilenetv2_035", parts.backbone)
    apply_freezing(parts.backbone, found, parse_freeze(freeze, [block.name for block in found]))
    unseen = tiny_images(per_class=8)[np.arange(24) % 8 >= 4]
    parts.model.get_layer("head_dropout").rate = 0.0

    in_training = keras.ops.convert_to_numpy(parts.model(unseen, training=True))
    at_inference = keras.ops.convert_to_numpy(parts.model(unseen, training=False))

    np.testing.assert_allclose(in_training, at_inference, atol=1e-5)


def test_inference_model_drops_augmentation_and_shares_weights(calibrated_classifier, tiny_images):
    parts = calibrated_classifier("mobilenetv2_035", augment="strong")
    batch = tiny_images(per_class=2)

    plain = inference_model(parts.model)

    assert AUGMENT_LAYER in [layer.name for layer in parts.model.layers]
    assert AUGMENT_LAYER not in [layer.name for layer in plain.layers]
    np.testing.assert_allclose(plain.predict(batch, verbose=0), parts.model.predict(batch, verbose=0), atol=1e-6)
    classifier = parts.model.get_layer(CLASSIFIER_LAYER)
    assert plain.get_layer(CLASSIFIER_LAYER) is classifier


def test_saved_model_loads_in_safe_mode_with_equal_outputs(calibrated_classifier, tiny_images, tmp_path):
    parts = calibrated_classifier("mobilenet_025", augment="light")
    batch = tiny_images(per_class=2)
    path = tmp_path / "model.keras"
    parts.model.save(path)

    loaded = keras.saving.load_model(path, safe_mode=True)

    np.testing.assert_allclose(loaded.predict(batch, verbose=0), parts.model.predict(batch, verbose=0), atol=1e-6)
    # Only stock Keras layers: the file loads anywhere Keras is, without tlcore.
    with zipfile.ZipFile(path) as archive:
        assert "tlcore>" not in archive.read("config.json").decode()


def test_same_seed_builds_the_same_head():
    first = build_classifier("mobilenet_025", 3, 32, weights=None, seed=7)
    second = build_classifier("mobilenet_025", 3, 32, weights=None, seed=7)

    np.testing.assert_array_equal(
        first.model.get_layer(CLASSIFIER_LAYER).get_weights()[0],
        second.model.get_layer(CLASSIFIER_LAYER).get_weights()[0],
    )
