"""The presets on tiny synthetic data: which blocks learn, the views, the learning rates, and what a hand-set option keeps."""

import pytest

from tlcore.data.records import DatasetAudit, ImageRecord
from tlcore.errors import InputError
from tlcore.training import recipe
from tlcore.training.config import TrainConfig
from tlcore.training.recipe import apply_preset, describe_choice, preset_settings


def audit_of(train: int, val: int, classes: int = 2) -> DatasetAudit:
    names = [f"class{i}" for i in range(classes)]
    records = [ImageRecord(f"/x/{split}{i}.png", f"{split}{i}.png", names[i % classes], split, "PNG", 32, 32, False)
               for split, count in (("train", train), ("val", val)) for i in range(count)]
    return DatasetAudit("x", "x", "class_folders", names, records)


def test_the_best_preset_fine_tunes_the_top_two_blocks_gently_after_the_new_layer():
    chosen = preset_settings("best", train_images=240, classes=5)

    assert chosen["freeze"] == "top:2" and chosen["two_phase"]
    assert chosen["fine_tune_learning_rate"] == pytest.approx(0.3 * chosen["learning_rate"])
    assert chosen["fine_tune_learning_rate"] < chosen["learning_rate"]
    assert chosen["augment"] == "none", "no augmentation helped on both photo datasets"
    assert chosen["head_epochs"] < chosen["epochs"]
    assert chosen["early_stopping_patience"] == 0 and chosen["reduce_lr_patience"] == 0, (
        "validation pictures only pick the best epoch: no early stopping, no plateau schedule")


@pytest.mark.parametrize("train_images, epochs", [(240, 40), (1000, 40), (2000, 15 + 12), (20_000, 15 + 10)])
def test_large_datasets_give_the_blocks_fewer_epochs_to_stay_in_the_budget(train_images, epochs):
    assert preset_settings("best", train_images, 5)["epochs"] == epochs


@pytest.mark.parametrize("train_images, classes", [(60, 2), (99, 3), (150, 12)])
def test_with_few_pictures_per_class_only_the_new_layer_learns(train_images, classes):
    assert preset_settings("best", train_images, classes) == preset_settings("fast", train_images, classes)
    assert preset_settings("best", train_images, classes)["freeze"] == "all"


def test_the_fast_preset_is_a_frozen_run_on_a_fixed_schedule():
    chosen = preset_settings("fast", 2000, 4)
    assert chosen["freeze"] == "all" and not chosen["two_phase"] and chosen["augment"] == "none"
    assert chosen["epochs"] == 30 and chosen["early_stopping_patience"] == 0 and chosen["reduce_lr_patience"] == 0
    defaults = TrainConfig(data="x")
    same = {name for name, value in chosen.items() if getattr(defaults, name) == value}
    assert same == set(chosen) - {"early_stopping_patience", "reduce_lr_patience"}, "otherwise TrainConfig's defaults"


def test_an_unknown_preset_says_which_exist():
    with pytest.raises(InputError, match="fast, best"):
        preset_settings("turbo", 100, 2)


def test_options_set_by_hand_win_over_the_preset():
    audit = audit_of(240, 60)
    mine = TrainConfig(data="x", learning_rate=3e-4, augment="light")

    config = apply_preset(mine, "best", audit, explicit={"learning_rate", "augment"})

    assert config.learning_rate == 3e-4 and config.augment == "light"
    assert config.freeze == "top:2" and config.two_phase and config.preset == "best"


def test_a_hand_set_frozen_backbone_turns_the_second_phase_off():
    config = apply_preset(TrainConfig(data="x", freeze="all"), "best", audit_of(240, 60), explicit={"freeze"})
    assert config.freeze == "all" and not config.two_phase


def test_hand_set_epochs_are_the_whole_run_and_the_first_phase_keeps_its_share():
    config = apply_preset(TrainConfig(data="x", epochs=8), "best", audit_of(240, 60), explicit={"epochs"})
    assert config.epochs == 8 and 1 <= config.head_epochs < 8
    assert config.head_epochs == round(8 * recipe.HEAD_EPOCHS / (recipe.HEAD_EPOCHS + recipe.FINE_TUNE_EPOCHS))
    single = apply_preset(TrainConfig(data="x", epochs=1), "best", audit_of(240, 60), explicit={"epochs"})
    assert not single.two_phase


def test_custom_leaves_the_config_as_it_is():
    mine = TrainConfig(data="x", epochs=7)
    assert apply_preset(mine, "custom", audit_of(240, 60)) == mine.replace(preset="custom")


def test_the_words_say_what_learns_how_and_for_how_long():
    best = apply_preset(TrainConfig(data="x"), "best", audit_of(240, 60))
    words = describe_choice(best)
    assert "the top 2 blocks of the pretrained model (block_16 and top) learn too" in words and "no augmentation" in words and "40 epochs in all" in words
    assert not best.second_phase_check and "held out" not in words
    checked = describe_choice(best.replace(second_phase_check=True))
    assert "learn too at learning rate 0.0003 if they help on a fifth of the training pictures held out" in checked
    fast = apply_preset(TrainConfig(data="x"), "fast", audit_of(240, 60))
    assert not fast.second_phase_check
    assert describe_choice(fast).startswith("only the new layer learns") and "30 epochs in all" in describe_choice(fast)
