"""Group a backbone's layers into named blocks and freeze by block.

A user who wants to "fine-tune the top two blocks" thinks in blocks, not in the
150 layers of MobileNetV2. Blocks follow the names the architectures already use
(MobileNetV2's `block_13_*`, ResNet's `conv5_block3_*`, EfficientNet's
`block6a_*`), so what the app shows matches the papers and the Keras guides.

BatchNormalization layers always stay frozen: with `trainable = False` Keras runs
them in inference mode, so their moving statistics, learned on ImageNet, are not
wrecked by a few small batches of new data (the Keras transfer-learning guide).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tlcore.errors import InputError
from tlcore.model.backbones import get_backbone

STEM_BLOCK = "stem"
TOP_BLOCK = "top"


@dataclass(frozen=True)
class Block:
    """One named group of consecutive backbone layers."""

    name: str
    layer_names: tuple[str, ...]
    params: int

    @property
    def layer_count(self) -> int:
        return len(self.layer_names)


def block_name_for_match(match: re.Match) -> str:
    """The first non-empty group of a block pattern match."""
    return next(group for group in match.groups() if group)


def group_layers(backbone_name: str, layer_names: list[str]) -> list[tuple[str, list[str]]]:
    """Assign each layer name (in topological order) to a block.

    Args:
        backbone_name: a name from the backbone table, whose rule is used.
        layer_names: the backbone's layer names in order (`[l.name for l in model.layers]`).

    Returns:
        `(block name, layer names)` pairs in order; input layers are left out.
    """
    rule = get_backbone(backbone_name).block_rule
    pattern = re.compile(rule.pattern)
    top_pattern = re.compile(rule.top_pattern) if rule.top_pattern else None
    names = [name for name in layer_names if not name.startswith("input_layer")]
    matches = [pattern.search(name) for name in names]
    last_block_index = max((i for i, match in enumerate(matches) if match), default=-1)
    assigned: list[str | None] = []
    for index, (name, match) in enumerate(zip(names, matches, strict=False)):
        if match:
            assigned.append(rule.name_format.format(block_name_for_match(match)))
        elif top_pattern and index > last_block_index and top_pattern.search(name):
            assigned.append(TOP_BLOCK)
        else:
            assigned.append(None)
    _fill_unassigned(assigned, rule.mode)
    return _runs_of_equal_names(names, assigned)


def _fill_unassigned(assigned: list[str | None], mode: str) -> None:
    """Give each unnamed layer the block of its neighbour, per the rule's mode."""
    order = range(len(assigned)) if mode == "following" else range(len(assigned) - 1, -1, -1)
    current: str | None = None
    for index in order:
        if assigned[index] is None:
            assigned[index] = current or (STEM_BLOCK if mode == "following" else TOP_BLOCK)
        else:
            current = assigned[index]


def _runs_of_equal_names(names: list[str], assigned: list[str]) -> list[tuple[str, list[str]]]:
    blocks: list[tuple[str, list[str]]] = []
    for name, block in zip(names, assigned, strict=False):
        if blocks and blocks[-1][0] == block:
            blocks[-1][1].append(name)
        else:
            blocks.append((block, [name]))
    return blocks


def backbone_blocks(backbone_name: str, backbone) -> list[Block]:
    """The blocks of a built backbone, with layer and parameter counts.

    Args:
        backbone_name: its name in the backbone table.
        backbone: the built `keras.Model`.

    Returns:
        Blocks in order from the input (stem) to the output (top).
    """
    layers = {layer.name: layer for layer in backbone.layers}
    blocks = []
    for name, layer_names in group_layers(backbone_name, [layer.name for layer in backbone.layers]):
        params = sum(layers[layer_name].count_params() for layer_name in layer_names)
        blocks.append(Block(name=name, layer_names=tuple(layer_names), params=params))
    return blocks


def freeze_option(trainable: list[str], block_names: list[str]) -> str:
    """The `freeze` option that makes exactly `trainable` learn: the inverse of `parse_freeze`.

    Args:
        trainable: the blocks that learn, in any order.
        block_names: the backbone's blocks in order.

    Returns:
        "all" when none learns, "none" when all do, "top:K" when they are the
        last K, else the names in the backbone's order, separated by commas.
    """
    chosen = [name for name in block_names if name in set(trainable)]
    if not chosen:
        return "all"
    if len(chosen) == len(block_names):
        return "none"
    if chosen == block_names[-len(chosen):]:
        return f"top:{len(chosen)}"
    return ",".join(chosen)


def parse_freeze(freeze: str, block_names: list[str]) -> set[str]:
    """Turn a freeze option into the set of blocks that stay trainable.

    Args:
        freeze: "all" (feature extraction: nothing trainable), "none" (the whole
            backbone trainable), "top:K"/"topK"/"K" (the last K blocks
            trainable), or a comma-separated list of block names to train.
        block_names: the backbone's blocks in order.

    Returns:
        Names of the trainable blocks.

    Raises:
        InputError: an option or block name that does not exist.
    """
    option = freeze.strip()
    if option == "all":
        return set()
    if option == "none":
        return set(block_names)
    top_match = re.fullmatch(r"(?:top[:\-_]?)?(\d+)", option)
    if top_match:
        count = int(top_match.group(1))
        if count > len(block_names):
            raise InputError(
                f"freeze option {freeze!r} asks for the top {count} blocks, but this backbone has only "
                f"{len(block_names)}; use a number from 0 to {len(block_names)}, or 'none' to train everything."
            )
        return set(block_names[len(block_names) - count :]) if count else set()
    requested = [name.strip() for name in option.split(",") if name.strip()]
    unknown = [name for name in requested if name not in block_names]
    if unknown or not requested:
        raise InputError(
            f"freeze option {freeze!r} is not understood; expected 'all', 'none', 'top:K' (e.g. top:2) or "
            f"block names separated by commas from: {', '.join(block_names)}."
        )
    return set(requested)


def apply_freezing(backbone, blocks: list[Block], trainable_blocks: set[str]) -> None:
    """Set `trainable` on every backbone layer from the chosen blocks.

    BatchNormalization layers are always frozen (inference mode). Call
    `model.compile` again afterwards: Keras reads `trainable` at compile time.
    """
    import keras

    backbone.trainable = bool(trainable_blocks)
    for block in blocks:
        for layer_name in block.layer_names:
            layer = backbone.get_layer(layer_name)
            is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = block.name in trainable_blocks and not is_batch_norm


def first_trainable_layer(backbone) -> str | None:
    """The earliest backbone layer with trainable weights, or None if frozen."""
    for layer in backbone.layers:
        if layer.trainable and layer.trainable_weights:
            return layer.name
    return None


# ----------------------------------------------------------------- precomputed table
#
# The app's Model page shows every backbone's blocks without importing
# TensorFlow in the web server, so the grouping of each backbone is computed once
# (`python -m tlcore.blocks`) and shipped as JSON; a test checks it still matches
# what Keras builds.

TABLE_FILE = "block_tables.json"


def compute_block_table(backbone_name: str) -> dict:
    """Build a backbone (random weights) and describe its blocks."""
    import keras

    from tlcore.model.backbones import build_backbone

    spec = get_backbone(backbone_name)
    backbone = build_backbone(backbone_name, spec.input_size, weights=None)
    layers = {layer.name: layer for layer in backbone.layers}
    rows = []
    for block in backbone_blocks(backbone_name, backbone):
        learnable = sum(
            layers[name].count_params()
            for name in block.layer_names
            if not isinstance(layers[name], keras.layers.BatchNormalization)
        )
        rows.append({"name": block.name, "layers": block.layer_count, "params": block.params, "learnable_params": learnable})
    return {"output_channels": int(backbone.output.shape[-1]), "blocks": rows}


def _table_path():
    import pathlib

    return pathlib.Path(__file__).with_name(TABLE_FILE)


def block_table(backbone_name: str) -> list[dict]:
    """Blocks of a backbone from the shipped table: name, layers, params, learnable_params.

    `learnable_params` leaves out BatchNormalization, which always stays frozen.
    """
    import json

    get_backbone(backbone_name)
    tables = json.loads(_table_path().read_text(encoding="utf-8"))
    return tables[backbone_name]["blocks"]


def trainable_summary(backbone_name: str, freeze: str, num_classes: int = 2) -> dict:
    """Trainable vs frozen parameter counts for a freeze choice, without building anything.

    Returns:
        {"trainable_blocks": [...], "trainable_params": n, "frozen_params": n,
        "head_params": n}; the head (classifier) is always trainable.
    """
    import json

    tables = json.loads(_table_path().read_text(encoding="utf-8"))
    table = tables[get_backbone(backbone_name).name]
    names = [row["name"] for row in table["blocks"]]
    chosen = parse_freeze(freeze, names)
    head = (table["output_channels"] + 1) * num_classes
    trainable = sum(row["learnable_params"] for row in table["blocks"] if row["name"] in chosen) + head
    total = sum(row["params"] for row in table["blocks"]) + head
    return {
        "trainable_blocks": [name for name in names if name in chosen],
        "trainable_params": trainable,
        "frozen_params": total - trainable,
        "head_params": head,
    }


def write_block_tables() -> None:
    """Regenerate the shipped table for every backbone."""
    import json

    from tlcore.model.backbones import BACKBONES

    tables = {name: compute_block_table(name) for name in BACKBONES}
    _table_path().write_text(json.dumps(tables, indent=1), encoding="utf-8")


if __name__ == "__main__":
    write_block_tables()
