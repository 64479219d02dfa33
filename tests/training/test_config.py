"""Tests for tlcore.config: TrainConfig validates every choice when it is made."""

import dataclasses
import json

import pytest

from tlcore.errors import InputError
from tlcore.training.config import TrainConfig


def test_defaults_are_valid_and_use_the_default_backbone():
    config = TrainConfig(data="photos")

    assert config.backbone == "mobilenetv2_035"
    assert config.resolved_image_size == 224
    assert config.freeze == "all"
    assert 1 <= config.epochs and config.learning_rate > 0


def test_image_size_zero_means_native_size_and_a_size_is_kept():
    assert TrainConfig(data="photos", backbone="inceptionv3").resolved_image_size == 299
    assert TrainConfig(data="photos", image_size=32).resolved_image_size == 32


@pytest.mark.parametrize(
    ("changes", "expected_words"),
    [
        ({"epochs": 0}, ["epochs", "got 0", "1 to"]),
        ({"epochs": -3}, ["epochs", "got -3"]),
        ({"epochs": 2.5}, ["epochs", "whole number"]),
        ({"epochs": True}, ["epochs"]),
        ({"batch_size": 0}, ["batch_size", "got 0"]),
        ({"learning_rate": -0.001}, ["learning_rate", "greater than 0", "-0.001"]),
        ({"learning_rate": 0}, ["learning_rate", "greater than 0"]),
        ({"learning_rate": float("nan")}, ["learning_rate"]),
        ({"learning_rate": float("inf")}, ["learning_rate"]),
        ({"fine_tune_learning_rate": -1.0}, ["fine_tune_learning_rate"]),
        ({"backbone": "resnet9000"}, ["resnet9000", "mobilenetv2_035", "mobilenet_025", "tlcore backbones"]),
        ({"augment": "medium"}, ["augment", "'medium'", "none", "light", "strong"]),
        ({"feature_cache": "sometimes"}, ["feature_cache", "auto", "off"]),
        ({"weights": "random"}, ["weights", "imagenet", "none"]),
        ({"val_split": 0.9}, ["val_split", "0.9"]),
        ({"val_split": 0.0}, ["val_split"]),
        ({"dropout": 1.0}, ["dropout"]),
        ({"label_smoothing": -0.1}, ["label_smoothing"]),
        ({"seed": -1}, ["seed"]),
        ({"image_size": 8}, ["image size 8", "mobilenetv2_035", "32 to 1024"]),
        ({"image_size": 64, "backbone": "inceptionv3"}, ["image size 64", "75"]),
        ({"data": ""}, ["no data given", "folder"]),
        ({"data": "   "}, ["no data given"]),
    ],
)
def test_bad_values_raise_input_error_saying_what_and_what_instead(changes, expected_words):
    options = {"data": "photos", **changes}

    with pytest.raises(InputError) as caught:
        TrainConfig(**options)

    message = str(caught.value)
    for word in expected_words:
        assert word in message, f"{word!r} missing from: {message}"


@pytest.mark.parametrize("freeze", ["block_99", "top:20", "everything", ""])
def test_bad_freeze_is_rejected_at_once_listing_the_blocks(freeze):
    # Checked against the shipped block table, before any model is built.
    with pytest.raises(InputError) as caught:
        TrainConfig(data="photos", freeze=freeze)

    message = str(caught.value)
    assert "block_16" in message or "has only 19" in message


def test_freeze_names_the_blocks_of_the_chosen_backbone():
    assert TrainConfig(data="photos", backbone="mobilenet_025", freeze="block_13,block_12").freeze == "block_13,block_12"
    with pytest.raises(InputError, match="block_13"):
        TrainConfig(data="photos", backbone="mobilenet_025", freeze="top")  # MobileNetV2's name, not MobileNet's
    with pytest.raises(InputError, match="freeze must be text"):
        TrainConfig(data="photos", freeze=2)


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        TrainConfig(data="photos", epochs=0)


def test_two_phase_with_everything_frozen_says_what_to_change():
    with pytest.raises(InputError, match="nothing to fine-tune") as caught:
        TrainConfig(data="photos", two_phase=True, freeze="all", epochs=10)

    assert "top:2" in str(caught.value)


def test_two_phase_needs_more_epochs_than_head_epochs():
    with pytest.raises(InputError, match="head_epochs"):
        TrainConfig(data="photos", two_phase=True, freeze="top:2", epochs=5, head_epochs=5)

    config = TrainConfig(data="photos", two_phase=True, freeze="top:2", epochs=6, head_epochs=5)
    assert config.two_phase


def test_from_dict_rejects_unknown_keys_listing_the_valid_ones():
    with pytest.raises(InputError) as caught:
        TrainConfig.from_dict({"data": "photos", "epoch": 3, "lr": 0.1})

    message = str(caught.value)
    assert "epoch, lr" in message
    for valid in ("epochs", "learning_rate", "backbone", "freeze"):
        assert valid in message


def test_dict_and_json_round_trip():
    config = TrainConfig(
        data="photos", backbone="mobilenet_025", image_size=96, epochs=3, freeze="top:2",
        excluded_files=["cats/a.jpg", "dogs/b.png"],
    )

    data = config.to_dict()
    assert data["excluded_files"] == ["cats/a.jpg", "dogs/b.png"]
    assert TrainConfig.from_dict(data) == config
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config


def test_excluded_files_become_a_tuple_so_the_config_stays_hashable():
    config = TrainConfig(data="photos", excluded_files=["a.jpg"])

    assert config.excluded_files == ("a.jpg",)
    hash(config)


def test_config_is_frozen_and_replace_validates_again():
    config = TrainConfig(data="photos")

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    assert config.replace(epochs=3).epochs == 3
    with pytest.raises(InputError, match="epochs"):
        config.replace(epochs=0)
