"""Tests for tlcore.backbones: the table, offline weights, building, importing weights."""

import json
import pathlib
import shutil

import numpy as np
import pytest

from tlcore.errors import InputError, WeightsUnavailableError
from tlcore.model import backbones
from tlcore.model.backbones import (
    BACKBONES,
    DEFAULT_BACKBONE,
    build_backbone,
    cached_weights_path,
    get_backbone,
    list_backbones,
    weights_available_offline,
    weights_missing_message,
)
from tlcore.model.weights_import import ImportedWeights, import_weights

REQUIRED_NAMES = (
    "mobilenet_025", "mobilenetv2_035", "mobilenetv2_100", "mobilenetv3_small", "mobilenetv3_large",
    "efficientnetb0", "efficientnetv2b0", "resnet50", "vgg16", "inceptionv3", "xception", "densenet121",
    "convnext_tiny",
)
OFFLINE_IN_SHARED = ("mobilenet_025", "mobilenetv2_035")
BLOCK_TABLES = pathlib.Path(backbones.__file__).with_name("block_tables.json")


def test_table_has_every_required_backbone_and_the_default():
    assert set(REQUIRED_NAMES) <= set(BACKBONES)
    assert DEFAULT_BACKBONE == "mobilenetv2_035"


def test_rows_have_the_fields_the_cli_contract_promises():
    rows = list_backbones()

    assert [row["name"] for row in rows][:2] == ["mobilenet_025", "mobilenetv2_035"]
    for row in rows:
        assert isinstance(row["name"], str)
        assert isinstance(row["available_offline"], bool)
        assert isinstance(row["params"], int) and row["params"] > 0
        assert isinstance(row["input_size"], int) and row["input_size"] >= row["min_input_size"]
        assert 0 < row["imagenet_top1"] < 100
        assert row["weights_file"].endswith(".h5")
    json.dumps(rows)


def test_parameter_counts_match_the_shipped_block_tables():
    # The block tables are built from real Keras models, so this checks every
    # row's `params` without building thirteen networks here.
    tables = json.loads(BLOCK_TABLES.read_text())
    for name, spec in BACKBONES.items():
        assert sum(row["params"] for row in tables[name]["blocks"]) == spec.params, name


@pytest.mark.parametrize("name", ["mobilenet_025", "mobilenetv2_035"])
def test_small_backbones_build_at_32_pixels_with_their_table_parameter_count(name):
    backbone = build_backbone(name, 32, weights=None)

    assert backbone.input_shape == (None, 32, 32, 3)
    assert backbone.count_params() == get_backbone(name).params


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(InputError) as caught:
        get_backbone("resnet18")

    message = str(caught.value)
    assert "'resnet18'" in message
    for name in REQUIRED_NAMES:
        assert name in message


@pytest.mark.parametrize(("size", "ok"), [(31, False), (32, True), (224, True), (1024, True), (1025, False)])
def test_image_size_limits(size, ok):
    if ok:
        backbones.validate_image_size(get_backbone("mobilenet_025"), size)
    else:
        with pytest.raises(InputError, match="from 32 to 1024"):
            backbones.validate_image_size(get_backbone("mobilenet_025"), size)


def test_weights_file_name_follows_keras_per_size_files():
    spec = get_backbone("mobilenetv2_035")

    assert spec.weights_file_for(224) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    assert spec.weights_file_for(128) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_128_no_top.h5"
    # Sizes without their own file use the 224 one, as Keras does.
    assert spec.weights_file_for(32) == spec.weights_file_for(224)
    assert get_backbone("efficientnetb0").weights_file_for(300) == "efficientnetb0_notop.h5"


def test_nothing_is_offline_in_an_empty_keras_home():
    assert not any(row["available_offline"] for row in list_backbones())
    assert cached_weights_path("mobilenetv2_035") is None


def test_shared_weights_make_exactly_the_backbones_whose_files_are_there_offline(keras_weights_home):
    offline = {row["name"] for row in list_backbones() if row["available_offline"]}
    # The shared folder may hold more files than the two small ones (MobileNetV2 1.0, for the weights checks).
    files_there = {spec.name for spec in BACKBONES.values()
                   if (keras_weights_home / spec.weights_file_for(spec.input_size)).is_file()}

    assert set(OFFLINE_IN_SHARED) <= offline == files_there
    # A size with its own Keras file that is not cached falls back to the 224 file.
    assert cached_weights_path("mobilenetv2_035", 128).name.endswith("_0.35_224_no_top.h5")


def test_empty_weights_file_does_not_count_as_available():
    models = pathlib.Path(backbones.keras_cache_dir())
    models.mkdir(parents=True)
    (models / "efficientnetb0_notop.h5").write_bytes(b"")

    assert not weights_available_offline("efficientnetb0")


def test_missing_weights_message_names_the_file_and_the_import_command():
    message = weights_missing_message("efficientnetb0")

    assert "efficientnetb0_notop.h5" in message
    assert "tlcore weights import efficientnetb0_notop.h5" in message
    assert str(backbones.keras_cache_dir()) in message
    assert "\n" not in message


def test_cached_imagenet_weights_are_loaded_not_random(keras_weights_home):
    pretrained = build_backbone("mobilenet_025", 32, weights="imagenet")
    again = build_backbone("mobilenet_025", 32, weights="imagenet")
    random = build_backbone("mobilenet_025", 32, weights=None)

    first_kernel = pretrained.get_layer("conv1").get_weights()[0]
    np.testing.assert_array_equal(first_kernel, again.get_layer("conv1").get_weights()[0])
    assert not np.allclose(first_kernel, random.get_layer("conv1").get_weights()[0])


def test_build_rejects_other_weight_options():
    with pytest.raises(InputError, match="weights"):
        build_backbone("mobilenet_025", 32, weights="cifar10")


# ----------------------------------------------------------------- import_weights


def test_import_weights_validates_then_copies_into_the_importers_own_weights(keras_weights_home, tmp_path):
    file_name = "mobilenet_2_5_224_tf_no_top.h5"
    downloaded = tmp_path / "downloads" / file_name
    downloaded.parent.mkdir()
    shutil.move(keras_weights_home / file_name, downloaded)
    assert not weights_available_offline("mobilenet_025")

    imported = import_weights(downloaded, for_everyone=True)
    destination = imported.path
    assert not imported.verified, "Keras publishes no hash for MobileNet's weights"

    assert destination == backbones.own_weights_dir() / file_name, "an unverified file is never for everyone"
    assert not (backbones.keras_cache_dir() / file_name).exists()
    assert destination.read_bytes() == downloaded.read_bytes()
    assert weights_available_offline("mobilenet_025")
    assert not list(destination.parent.glob("*.partial"))


def test_import_weights_rejects_weights_of_another_architecture(keras_weights_home, tmp_path):
    wrong = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    shutil.copyfile(keras_weights_home / "mobilenet_2_5_224_tf_no_top.h5", wrong)
    (keras_weights_home / wrong.name).unlink()

    with pytest.raises(InputError, match="does not hold weights for backbone 'mobilenetv2_035'"):
        import_weights(wrong)
    assert not weights_available_offline("mobilenetv2_035")


def test_import_weights_rejects_a_file_that_is_not_weights(tmp_path):
    fake = tmp_path / "mobilenet_2_5_224_tf_no_top.h5"
    fake.write_bytes(b"<html>not found</html>")

    with pytest.raises(InputError, match="does not hold weights"):
        import_weights(fake)
    assert not weights_available_offline("mobilenet_025")


def test_import_weights_missing_or_unrecognised_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        import_weights(tmp_path / "nothing.h5")

    odd = tmp_path / "my_weights.h5"
    odd.write_bytes(b"x")
    with pytest.raises(InputError, match="--backbone NAME"):
        import_weights(odd)


def test_damaged_cached_weights_file_says_how_to_replace_it():
    models = backbones.keras_cache_dir()
    models.mkdir(parents=True)
    (models / "mobilenet_2_5_224_tf_no_top.h5").write_bytes(b"\x89HDF\r\n cut short by a failed copy")

    with pytest.raises(WeightsUnavailableError) as caught:
        build_backbone("mobilenet_025", 32, weights="imagenet")

    message = str(caught.value)
    assert "damaged" in message
    assert "tlcore weights import mobilenet_2_5_224_tf_no_top.h5" in message


def test_a_file_declaring_far_more_weights_than_the_backbone_has_is_refused_before_reading(tmp_path):
    import h5py

    crafted = tmp_path / "mobilenet_2_5_224_tf_no_top.h5"
    with h5py.File(crafted, "w") as handle:
        handle.create_dataset("conv1/kernel", shape=(2**30,), dtype="float32")  # 4 GiB declared, nothing written
    assert crafted.stat().st_size < 1024**2

    with pytest.raises(InputError, match="declares 4,096 MB of weights"):
        import_weights(crafted)
    assert not weights_available_offline("mobilenet_025")


def test_unverified_weights_never_silently_replace_the_ones_already_there(keras_weights_home, tmp_path):
    import h5py

    file_name = "mobilenet_2_5_224_tf_no_top.h5"
    own = backbones.own_weights_dir() / file_name
    own.parent.mkdir(parents=True)
    shutil.copyfile(keras_weights_home / file_name, own)
    real = own.read_bytes()
    random_weights = tmp_path / file_name
    # The right shapes, other numbers: the real file with every weight replaced by noise, as h5py sees it.
    shutil.copyfile(keras_weights_home / file_name, random_weights)
    with h5py.File(random_weights, "r+") as handle:
        handle.visititems(lambda _name, item: item.__setitem__(..., np.random.default_rng(0).normal(size=item.shape))
                          if isinstance(item, h5py.Dataset) else None)

    with pytest.raises(InputError, match="is kept"):
        import_weights(random_weights)
    assert own.read_bytes() == real

    replaced = import_weights(random_weights, replace=True)
    assert replaced == ImportedWeights(own, verified=False)
    assert (keras_weights_home / file_name).read_bytes() == real, "the file shared by everyone is untouched"
    assert "unverified" in replaced.note
