"""The cached views' random changes: one resampling per picture, repeatable, as the presets' layers change pictures."""

import numpy as np
import pytest

from tlcore.errors import InputError
from tlcore.model.augmentation import _view_transforms, view_maker


def pictures(count=4, size=32):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (count, size, size, 3)).astype("float32")


@pytest.mark.parametrize("preset", ["light", "strong"])
def test_views_change_the_pictures_keep_their_shape_and_range_and_repeat_by_seed(preset):
    batch = pictures()

    first = np.asarray(view_maker(preset, seed=3)(batch))
    again = np.asarray(view_maker(preset, seed=3)(batch))
    other = np.asarray(view_maker(preset, seed=4)(batch))

    assert first.shape == batch.shape and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 255
    assert np.abs(first - batch).mean() > 1, "the views are changed pictures"
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_without_a_turn_zoom_or_shift_a_view_is_the_picture_or_its_mirror():
    random = np.random.default_rng(0)
    transforms = _view_transforms(random, 64, 32, 32, turn=0.0, zoom=0.0, shift=0.0)
    identity = np.array([1, 0, 0, 0, 1, 0, 0, 0], dtype="float32")
    mirror = np.array([-1, 0, 31, 0, 1, 0, 0, 0], dtype="float32")
    is_identity = np.all(np.isclose(transforms, identity, atol=1e-5), axis=1)
    is_mirror = np.all(np.isclose(transforms, mirror, atol=1e-5), axis=1)
    assert np.all(is_identity | is_mirror)
    assert 16 < is_mirror.sum() < 48, "about half are mirrored"


def test_a_mirror_view_of_a_picture_is_its_left_right_flip():
    import keras

    batch = pictures(1)
    mirror = np.array([[-1, 0, 31, 0, 1, 0, 0, 0]], dtype="float32")
    flipped = np.asarray(keras.ops.image.affine_transform(batch, mirror, interpolation="bilinear", fill_mode="reflect"))
    np.testing.assert_allclose(flipped, batch[:, :, ::-1], atol=1e-3)


def test_a_preset_without_random_views_is_refused_in_words():
    with pytest.raises(InputError, match="light, strong"):
        view_maker("none", seed=1)


def test_the_compiled_resampling_gives_the_values_of_keras_affine_transform():
    import keras

    from tlcore.model.augmentation import _compiled, _resample

    batch = pictures(3, size=40)
    transforms = _view_transforms(np.random.default_rng(5), 3, 40, 40, turn=0.1, zoom=0.2, shift=0.1)
    no_change = np.ones((3, 1, 1, 1), "float32"), np.zeros((3, 1, 1, 1), "float32")

    ours = np.asarray(_compiled(_resample)(batch, transforms, *no_change, False))
    keras_own = np.asarray(keras.ops.image.affine_transform(batch, transforms, interpolation="bilinear", fill_mode="reflect"))

    np.testing.assert_allclose(ours, np.clip(keras_own, 0, 255), atol=0.05)
