"""The time estimate, on recorded figures: no TensorFlow, no training."""

import pytest

from tlcore.data.records import DatasetAudit, ImageRecord
from tlcore.training.config import TrainConfig
from tlcore.training.estimate import (
    GUESS_FEATURE_IMAGES_PER_S,
    MachineSpeed,
    estimate_run,
    guessed_images_per_s,
    measured_speed,
)


def _audit(train: int, val: int) -> DatasetAudit:
    records = [ImageRecord(f"/x/{split}{i}.png", f"{split}{i}.png", "a" if i % 2 else "b", split, "PNG", 32, 32, False)
               for split, count in (("train", train), ("val", val)) for i in range(count)]
    return DatasetAudit("x", "x", "class_folders", ["a", "b"], records)


def test_a_frozen_run_gets_ready_at_the_measured_rate_then_pays_per_epoch():
    config = TrainConfig(data="x", epochs=10)
    estimate = estimate_run(config, _audit(200, 50), speed=MachineSpeed(images_per_s=250.0, epoch_s_per_image=0.001))
    assert estimate.cached and estimate.measured
    assert estimate.getting_ready_s == pytest.approx(250 / 250.0)
    assert estimate.per_epoch_s == pytest.approx(0.2)
    assert estimate.total_s == pytest.approx(1.0 + 10 * 0.2)
    assert "measured on your earlier runs" in estimate.describe()


def test_kept_features_skip_the_pass_and_the_words_say_so():
    config = TrainConfig(data="x", epochs=5)
    estimate = estimate_run(config, _audit(200, 50), kept_images=250, speed=MachineSpeed(250.0, 0.001))
    assert estimate.getting_ready_s == 0
    assert "no feature pass" in estimate.describe()


def test_augmented_views_multiply_the_training_pictures_of_the_pass():
    config = TrainConfig(data="x", epochs=1, augment="light")
    estimate = estimate_run(config, _audit(100, 0 + 20), speed=MachineSpeed(100.0, 0.001))
    assert estimate.getting_ready_s == pytest.approx((100 * 4 + 20) / 100.0)


def test_before_any_run_the_default_backbone_is_guessed_from_its_measured_rate():
    config = TrainConfig(data="x")
    assert guessed_images_per_s(config.backbone, config.resolved_image_size) == pytest.approx(GUESS_FEATURE_IMAGES_PER_S)
    estimate = estimate_run(config, _audit(90, 10), speed=MachineSpeed(None, None))
    assert not estimate.measured and "rough guess" in estimate.describe()


def test_a_machine_without_runs_has_measured_nothing():
    assert measured_speed("mobilenetv2_035", "all") == MachineSpeed(None, None)
