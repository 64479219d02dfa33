"""The presets' choice of pretrained network, on recorded speeds: no TensorFlow, no timing, no network."""

import os
import pathlib

import pytest

from tlcore.data.records import DatasetAudit, ImageRecord
from tlcore.model.backbones import get_backbone
from tlcore.training import speed_probe
from tlcore.training.backbone_choice import candidates, choose_backbone
from tlcore.training.config import TrainConfig
from tlcore.training.estimate import MachineSpeed, estimate_run, measured_speed, plain_recipe_s

STRONG, SMALL, SMALLEST = "mobilenetv2_100", "mobilenetv2_035", "mobilenet_025"


def audit_of(train: int = 240, val: int = 60, classes: int = 5) -> DatasetAudit:
    names = [f"class{i}" for i in range(classes)]
    records = [ImageRecord(f"/x/{split}{i}.jpg", f"{split}{i}.jpg", names[i % classes], split, "JPEG", 500, 375, False)
               for split, count in (("train", train), ("val", val)) for i in range(count)]
    return DatasetAudit("x", "x", "class_folders", names, records)


def speed(images_per_s: float, block_s_per_image: float) -> MachineSpeed:
    """What a 2-core laptop records for a backbone: its pass rate and an epoch's cost per picture."""
    return MachineSpeed(images_per_s=images_per_s, epoch_s_per_image={"all": 0.00005, "top:2": block_s_per_image},
                        trace_s={"all": 0.4, "top:2": 0.8}, set_up_s=1.0, finish_s=0.4, start_s=2.0)


# Figures of the kind this machine measured: the full-width network about a third as fast as width 0.35.
RECORDED = {SMALL: speed(450.0, 0.0003), STRONG: speed(150.0, 0.0008), SMALLEST: speed(700.0, 0.0002)}
CONFIG = TrainConfig(data="x")


@pytest.fixture
def weights_here():
    """`weights_here(*names)`: put (stand-in) weights files for these backbones in this test's Keras cache."""

    def put(*names):
        models = pathlib.Path(os.environ["KERAS_HOME"]) / "models"
        models.mkdir(parents=True, exist_ok=True)
        for name in names:
            (models / get_backbone(name).weights_file_for(224)).write_bytes(b"weights")

    return put


def test_the_candidates_are_ranked_strongest_first_by_imagenet_accuracy():
    ranked = candidates()

    assert [spec.name for spec in ranked] == [STRONG, SMALL, SMALLEST]
    assert [spec.imagenet_top1 for spec in ranked] == sorted((spec.imagenet_top1 for spec in ranked), reverse=True)


def test_the_strongest_network_whose_run_fits_the_plain_recipes_time_is_picked(weights_here):
    weights_here(STRONG, SMALL, SMALLEST)
    audit = audit_of()

    choice = choose_backbone(CONFIG, "best", audit, speeds=RECORDED, online=False)

    assert choice.budget_is_default
    assert choice.budget_s == pytest.approx(plain_recipe_s(audit, RECORDED[SMALL]))
    assert choice.backbone == STRONG
    chosen = choice.option(STRONG)
    assert chosen.fits and chosen.estimate_s <= choice.budget_s
    assert "the strongest that finishes in about" in choice.reason
    assert choice.note == "" and choice.offer is None


def test_a_network_too_slow_here_gives_way_to_the_next_strongest(weights_here):
    weights_here(STRONG, SMALL, SMALLEST)
    slow_machine = {**RECORDED, STRONG: speed(20.0, 0.01)}

    choice = choose_backbone(CONFIG, "best", audit_of(), speeds=slow_machine, online=False)

    assert not choice.option(STRONG).fits
    assert choice.option(STRONG).estimate_s > choice.budget_s
    assert choice.backbone == SMALL


def test_a_tight_budget_shortens_the_second_phase_before_giving_up_the_stronger_network(weights_here):
    weights_here(STRONG, SMALL, SMALLEST)
    audit = audit_of()
    own = estimate_run(TrainConfig(data="x", backbone=STRONG, freeze="top:2", two_phase=True, head_epochs=15, epochs=40,
                                   early_stopping_patience=0), audit, speed=RECORDED[STRONG]).total_s

    choice = choose_backbone(CONFIG, "best", audit, budget_s=own - 2.0, speeds=RECORDED, online=False)

    assert not choice.budget_is_default and choice.budget_s == own - 2.0
    assert choice.backbone == STRONG
    assert choice.settings["two_phase"] and choice.settings["epochs"] < 40
    assert "the top blocks learn for" in choice.option(STRONG).shortened
    assert choice.option(STRONG).estimate_s <= own - 2.0


def test_a_budget_too_tight_for_any_second_phase_keeps_only_the_new_layer_learning(weights_here):
    weights_here(STRONG, SMALL, SMALLEST)
    audit = audit_of()
    head_only = estimate_run(TrainConfig(data="x", backbone=STRONG, epochs=30, early_stopping_patience=0), audit,
                             speed=RECORDED[STRONG]).total_s

    choice = choose_backbone(CONFIG, "best", audit, budget_s=head_only + 0.1, speeds=RECORDED, online=False)

    assert choice.backbone == STRONG
    assert choice.settings["freeze"] == "all" and not choice.settings["two_phase"]
    assert choice.option(STRONG).shortened == "only the new layer learns"


def test_the_quick_check_gets_a_share_of_the_plain_recipes_time():
    audit = audit_of()

    fast = choose_backbone(CONFIG.replace(weights="none"), "fast", audit, speeds=RECORDED)
    best = choose_backbone(CONFIG.replace(weights="none"), "best", audit, speeds=RECORDED)

    assert fast.budget_s == pytest.approx(0.3 * best.budget_s)
    assert fast.settings["freeze"] == "all"


def test_without_its_weights_and_without_internet_the_strongest_network_here_is_used_and_said_in_one_line(weights_here):
    weights_here(SMALL, SMALLEST)

    choice = choose_backbone(CONFIG, "best", audit_of(), speeds=RECORDED, online=False)

    assert choice.backbone == SMALL
    assert choice.option(STRONG).fits and not choice.option(STRONG).usable
    assert "\n" not in choice.note
    assert choice.note.startswith("MobileNetV2 would be stronger")
    assert "no internet" in choice.note and "MobileNetV2 (width 0.35)" in choice.note


def test_with_internet_a_large_download_is_offered_with_its_size_not_made(weights_here):
    weights_here(SMALL, SMALLEST)

    offered = choose_backbone(CONFIG, "best", audit_of(), speeds=RECORDED, online=True)
    agreed = choose_backbone(CONFIG, "best", audit_of(), speeds=RECORDED, online=True, allowed_downloads=(STRONG,))

    assert offered.backbone == SMALL and offered.note == ""
    assert offered.offer is not None and offered.offer.name == STRONG
    assert 9 <= offered.offer.download_mb <= 10  # the 9.4 MB file
    assert agreed.backbone == STRONG and agreed.offer is None


def test_a_small_download_is_made_without_asking():
    # No weights here at all; the small MobileNets' files (about 1-2 MB) are fetched by the run itself.
    slow_strong = {**RECORDED, STRONG: speed(20.0, 0.01)}

    choice = choose_backbone(CONFIG, "best", audit_of(), speeds=slow_strong, online=True)

    assert choice.backbone == SMALL and choice.option(SMALL).usable and not choice.option(SMALL).weights_here


def test_the_network_is_asked_at_most_once_and_only_when_weights_are_missing(weights_here):
    weights_here(STRONG, SMALL, SMALLEST)
    asked = []

    choose_backbone(CONFIG, "best", audit_of(), speeds=RECORDED, online=lambda: asked.append(1) or False)

    assert asked == []


def test_a_network_never_measured_here_is_measured_before_choosing(weights_here):
    weights_here(STRONG, SMALL, SMALLEST)
    measured = []

    def measure(backbone, image_size):
        measured.append((backbone, image_size))
        return 140.0

    unmeasured_strong = {SMALL: RECORDED[SMALL], SMALLEST: RECORDED[SMALLEST]}
    choice = choose_backbone(CONFIG, "best", audit_of(), speeds=unmeasured_strong, online=False, measure=measure)

    assert measured == [(STRONG, 224)]
    assert choice.option(STRONG).measured and choice.option(STRONG).images_per_s == 140.0


def test_the_budgets_network_is_measured_first_so_the_budget_and_the_runs_are_in_the_same_terms():
    measured = []

    def measure(backbone, image_size):
        measured.append(backbone)
        return {STRONG: 15.0, SMALL: 45.0, SMALLEST: 70.0}[backbone]  # a busy computer: ten times slower

    busy = choose_backbone(CONFIG.replace(weights="none"), "best", audit_of(), measure=measure)

    assert measured[0] == SMALL and sorted(measured) == sorted([STRONG, SMALL, SMALLEST])
    assert busy.budget_s == pytest.approx(plain_recipe_s(audit_of(), MachineSpeed(images_per_s=45.0)))
    assert busy.backbone == choose_backbone(CONFIG.replace(weights="none"), "best", audit_of(), speeds={
        name: MachineSpeed(images_per_s=rate) for name, rate in {STRONG: 15.0, SMALL: 45.0, SMALLEST: 70.0}.items()}).backbone


def test_a_probes_figure_is_kept_and_read_as_this_computers_speed():
    assert measured_speed(STRONG, 224).images_per_s is None

    speed_probe.keep_rate(STRONG, 224, 123.0, pictures=32)

    assert speed_probe.kept_rate(STRONG, 224) == 123.0
    assert measured_speed(STRONG, 224).images_per_s == 123.0
    assert measured_speed(STRONG, 160).images_per_s is None


def test_blocks_picked_by_name_keep_the_choice_among_networks_that_have_them(weights_here):
    weights_here(STRONG, SMALL, SMALLEST)
    config = CONFIG.replace(freeze="block_16,top")

    choice = choose_backbone(config, "best", audit_of(), explicit={"freeze"}, speeds=RECORDED, online=False)

    assert SMALLEST not in {option.name for option in choice.options}  # MobileNet has no block_16
    assert choice.backbone in (STRONG, SMALL) and choice.settings["freeze"] == "block_16,top"
