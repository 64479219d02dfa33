"""Tests for tlcore.blocks: grouping layers into named blocks and freezing by block."""

import keras
import pytest

from tlcore.errors import InputError
from tlcore.model import blocks
from tlcore.model.backbones import build_backbone
from tlcore.model.blocks import (
    apply_freezing,
    backbone_blocks,
    block_table,
    compute_block_table,
    first_trainable_layer,
    group_layers,
    parse_freeze,
    trainable_summary,
)
from tlcore.model.build import build_classifier, trainable_param_counts

NAMES = ["stem", "block_1", "block_2", "block_3", "top"]


# ----------------------------------------------------------------- grouping by name


def test_following_mode_puts_unmatched_layers_in_the_block_before_them():
    layers = ["input_layer", "Conv1", "bn_Conv1", "block_1_expand", "block_1_relu", "pad", "block_2_expand",
              "Conv_1", "Conv_1_bn", "out_relu"]

    grouped = group_layers("mobilenetv2_035", layers)

    assert grouped == [
        ("stem", ["Conv1", "bn_Conv1"]),
        ("block_1", ["block_1_expand", "block_1_relu", "pad"]),
        ("block_2", ["block_2_expand"]),
        ("top", ["Conv_1", "Conv_1_bn", "out_relu"]),
    ]


def test_preceding_mode_puts_unmatched_layers_in_the_block_after_them():
    layers = ["conv2d", "batch_normalization", "mixed0", "conv2d_1", "mixed1", "leftover"]

    grouped = group_layers("inceptionv3", layers)

    assert grouped == [
        ("mixed0", ["conv2d", "batch_normalization", "mixed0"]),
        ("mixed1", ["conv2d_1", "mixed1"]),
        ("top", ["leftover"]),
    ]


def test_name_format_turns_numbers_into_block_names():
    grouped = group_layers("mobilenet_025", ["conv1", "conv_dw_1", "conv_pw_1", "conv_pad_2", "conv_dw_2"])

    assert [name for name, _ in grouped] == ["stem", "block_1", "block_2"]


@pytest.mark.parametrize(
    ("backbone_name", "expected_first", "expected_last"),
    [
        ("mobilenetv2_035", ["stem", "expanded_conv", "block_1"], ["block_15", "block_16", "top"]),
        ("mobilenet_025", ["stem", "block_1", "block_2"], ["block_11", "block_12", "block_13"]),
    ],
)
def test_built_backbones_group_into_their_architecture_names(backbone_name, expected_first, expected_last):
    backbone = build_backbone(backbone_name, 32, weights=None)

    found = backbone_blocks(backbone_name, backbone)

    names = [block.name for block in found]
    assert names[:3] == expected_first and names[-3:] == expected_last
    assert len(names) == len(set(names)), "a block name appears twice: its layers are not consecutive"
    grouped_layers = [name for block in found for name in block.layer_names]
    weighted = [layer.name for layer in backbone.layers if not layer.name.startswith("input_layer")]
    assert grouped_layers == weighted
    assert sum(block.params for block in found) == backbone.count_params()


@pytest.mark.parametrize("backbone_name", ["mobilenetv2_035", "mobilenet_025"])
def test_shipped_block_table_matches_a_fresh_build(backbone_name):
    fresh = compute_block_table(backbone_name)

    assert block_table(backbone_name) == fresh["blocks"]
    assert fresh["output_channels"] == {"mobilenetv2_035": 1280, "mobilenet_025": 256}[backbone_name]


# ----------------------------------------------------------------- parse_freeze


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("all", set()),
        ("  all ", set()),
        ("none", set(NAMES)),
        ("top:2", {"block_3", "top"}),
        ("top2", {"block_3", "top"}),
        ("top-2", {"block_3", "top"}),
        ("2", {"block_3", "top"}),
        ("top:0", set()),
        ("top:5", set(NAMES)),
        ("block_1,top", {"block_1", "top"}),
        ("block_1, block_2 ", {"block_1", "block_2"}),
    ],
)
def test_parse_freeze_options(option, expected):
    assert parse_freeze(option, NAMES) == expected


@pytest.mark.parametrize("option", ["block_9", "block_1,bogus", "", ",", "everything", "top:x"])
def test_bad_freeze_lists_the_blocks(option):
    with pytest.raises(InputError) as caught:
        parse_freeze(option, NAMES)

    message = str(caught.value)
    assert "'all', 'none', 'top:K'" in message
    assert "stem, block_1, block_2, block_3, top" in message


def test_top_k_beyond_the_block_count_says_how_many_there_are():
    with pytest.raises(InputError, match="has only 5"):
        parse_freeze("top:6", NAMES)


# ----------------------------------------------------------------- apply_freezing


@pytest.fixture(scope="module")
def classifier():
    """A 3-class mobilenetv2_035 classifier at 32 px; tests re-freeze it as they need."""
    parts = build_classifier("mobilenetv2_035", 3, 32, weights=None, seed=0)
    found = backbone_blocks("mobilenetv2_035", parts.backbone)
    return parts, found


def _trainable_backbone_params(backbone) -> int:
    return sum(int(keras.ops.size(weight)) for weight in backbone.trainable_weights)


def _learnable(chosen: set) -> int:
    return sum(row["learnable_params"] for row in block_table("mobilenetv2_035") if row["name"] in chosen)


@pytest.mark.parametrize("freeze", ["all", "none", "top:1", "top:3", "block_5,block_16", "stem"])
def test_freezing_leaves_exactly_the_chosen_blocks_trainable(classifier, freeze):
    parts, found = classifier
    chosen = parse_freeze(freeze, [block.name for block in found])

    apply_freezing(parts.backbone, found, chosen)

    assert _trainable_backbone_params(parts.backbone) == _learnable(chosen)
    for block in found:
        for layer_name in block.layer_names:
            layer = parts.backbone.get_layer(layer_name)
            if not isinstance(layer, keras.layers.BatchNormalization):
                assert layer.trainable == (block.name in chosen), layer_name
    # The model's count agrees with the table-only estimate the app shows.
    trainable, frozen = trainable_param_counts(parts.model)
    summary = trainable_summary("mobilenetv2_035", freeze, num_classes=3)
    assert trainable == summary["trainable_params"]
    assert trainable + frozen == summary["trainable_params"] + summary["frozen_params"]
    assert summary["trainable_blocks"] == [block.name for block in found if block.name in chosen]


@pytest.mark.parametrize("freeze", ["all", "none", "top:4"])
def test_batch_normalization_is_never_trainable(classifier, freeze):
    parts, found = classifier

    apply_freezing(parts.backbone, found, parse_freeze(freeze, [block.name for block in found]))

    norms = [layer for layer in parts.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    assert not any(layer.trainable for layer in norms)
    trainable_ids = {id(weight) for weight in parts.model.trainable_weights}
    assert not any(id(weight) in trainable_ids for layer in norms for weight in layer.weights)


def test_everything_frozen_leaves_only_the_head_trainable(classifier):
    parts, found = classifier

    apply_freezing(parts.backbone, found, set())

    assert parts.backbone.trainable_weights == []
    assert first_trainable_layer(parts.backbone) is None
    assert trainable_param_counts(parts.model)[0] == (1280 + 1) * 3


def test_first_trainable_layer_is_the_start_of_the_lowest_unfrozen_block(classifier):
    parts, found = classifier

    apply_freezing(parts.backbone, found, {"block_16", "top"})

    assert first_trainable_layer(parts.backbone) == "block_16_expand"


def test_trainable_summary_rejects_a_bad_freeze_with_the_block_list():
    with pytest.raises(InputError, match="block_16"):
        trainable_summary("mobilenetv2_035", "block_99")


def test_block_table_of_unknown_backbone_is_an_input_error():
    with pytest.raises(InputError, match="unknown backbone"):
        block_table("nope")
    assert blocks.TABLE_FILE == "block_tables.json"
