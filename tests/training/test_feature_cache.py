"""The one decision whether and where a run caches its frozen layers' features."""

import pytest

from tlcore.training.feature_cache import AUGMENTED_VIEWS, IN_MEMORY, OFF, ON_DISK, decide, views_per_image


def test_one_view_unless_augmentation():
    assert views_per_image("none") == 1
    assert views_per_image("light") == views_per_image("strong") == AUGMENTED_VIEWS


def test_small_features_stay_in_memory_and_say_how_many_views():
    decision = decide("auto", True, values_per_image=1000, train_images=100, other_images=20, augment="none")
    assert decision.where == IN_MEMORY and decision.cached and decision.views == 1
    assert decision.total_bytes == 1000 * 4 * 120
    assert decision.reason == "1 view(s) per training image, in memory"


def test_the_budgets_apply_to_the_whole_run_not_to_each_split():
    # 600 bytes of training features and 600 of validation: each split fits a 1000-byte budget, the run does not.
    decision = decide("auto", True, values_per_image=1, train_images=150, other_images=150, augment="none",
                      memory_budget=1000, disk_budget=10_000)
    assert decision.where == ON_DISK and "memory-mapped" in decision.reason


def test_augmented_views_count_against_the_budget():
    plain = decide("auto", True, 1, 100, 0, "none", memory_budget=1000, disk_budget=10_000)
    augmented = decide("auto", True, 1, 100, 0, "light", memory_budget=1000, disk_budget=10_000)
    assert plain.where == IN_MEMORY and augmented.where == ON_DISK
    assert augmented.total_bytes == AUGMENTED_VIEWS * plain.total_bytes


@pytest.mark.parametrize(
    ("setting", "cuttable", "disk_budget", "reason"),
    [("off", True, 10**9, "off"),
     ("auto", False, 10**9, "off (a skip connection crosses the freeze boundary)"),
     ("auto", True, 10, "off (features would need 0.0 GB)")],
)
def test_reasons_for_training_the_plain_way(setting, cuttable, disk_budget, reason):
    decision = decide(setting, cuttable, 100, 10, 10, "none", memory_budget=1, disk_budget=disk_budget)
    assert decision.where == OFF and not decision.cached and decision.reason == reason
