"""The presets: what a run does when nobody touches a setting, chosen from the number of pictures.

A non-programmer never opens the expert settings, so the preset is the
product. Two presets:

- "fast": the whole pretrained model frozen, only the new last layer learns
  on features computed once, 30 epochs. Seconds; for "does my data work at all".
- "best" (the default): what an expert does inside the time of the plain
  recipe (frozen backbone, 10 epochs through the whole network). First the new
  last layer learns alone on cached features; then the top blocks learn too,
  from cached activations at the freeze boundary, at a learning rate ten times
  lower, so the pretrained blocks are adjusted, not overwritten.

The choice depends only on how many training pictures there are (and how many
classes), so it is made before a run starts and the Train page can show it and
its time. Settings a user sets by hand (`explicit`) always win over the preset.

Measured on flowers5 and weather4, three seeds each (mean validation
accuracy; `benchmarks/defaults.py` and the README have the full table). Against
the plain recipe (85.0 % and 92.9 %): this recipe 92.2 % and 96.3 %. What was
tried and not taken, because it did not help on both datasets:
- the same with early stopping and halving the rate on plateaus (which also
  let the validation pictures steer training): 91.7 % and 95.0 %;
- blocks at 0.1x the rate instead of 0.3x: 92.2 % and 95.4 %;
- three top blocks instead of two: 91.7 % and 95.0 %, at 1.7x the time;
- mirrored copies of each training picture ("flip"): 93.3 % and 95.4 %
  (+1 on flowers, -1 on weather); with the backbone frozen, 91.7 % and 92.9 %
  against 91.1 % and 93.3 % without;
- four augmented views (flips, small turns and zooms), frozen: 86.1 % and
  91.3 %; with the two-phase recipe, 88.9 % and 92.5 %.

The new layer and the second phase, measured on cached pooled features
(`benchmarks/head_recipe.py`: the real MobileNetV2 1.0 and 0.35 backbones; flowers5,
weather4, the demo, and "photos12mp", flowers5 + weather4 enlarged to 3,000-4,000 px
as JPEG quality 90; seeds 42, 1, 7, each its own split; the validation pictures
choose only the best epoch). Mean accuracy of the quick check's new layer, and
the change each variant made (points), per dataset: demo, flowers5, photos12mp, weather4.
- MobileNetV2 1.0: today 96.9, 88.3, 92.1, 95.0. L2-normalised features +1.0, 0.0,
  -1.2, -1.7; test-time flip averaging +2.1, +1.1, +0.7, 0.0; mirrored training
  views and flip averaging +3.1, -0.6, +0.5, 0.0; a hidden layer of 256 +2.1, -1.1,
  -0.2, 0.0; dropout 0.5 0.0, -0.6, -, -0.4; mirrored views alone +1.0, -0.6, -, 0.0;
  no label smoothing -1.0, -1.1, -, -0.4.
- MobileNetV2 0.35: today 99.0, 91.7, 91.0, 94.6. L2-normalised 0.0, -1.1, -1.7, -1.2;
  flip averaging 0.0, +0.6, -0.5, -0.8; mirrored views and averaging 0.0, +0.6, -1.2,
  -0.8; a hidden layer of 256 +1.0, 0.0, +0.7, +0.8.
The L2 penalty on the last layer chosen by 3-fold cross-validation on the
training pictures (0, 1e-4, 1e-3 or 1e-2): 1.0 +1.0, 0.0, 0.0, 0.0; 0.35 0.0,
+1.1, +0.7, 0.0 (the same settings with other dropout draws move up to 1.6).
None helped on every dataset with both backbones, so the head stays as it was
(pooling, dropout 0.2, one softmax layer, label smoothing 0.1). Flip averaging
never lowered a dataset's mean on MobileNetV2 1.0, but it lowered two with 0.35
and would double the cost of every prediction, inside the exported model too.

The second phase (the top two blocks, 25 epochs at 0.3x the rate, after 15 of the
new layer alone), against the new layer alone for the same 40 epochs, mean
points per dataset (demo, flowers5, photos12mp, weather4): MobileNetV2 1.0 +1.0,
+1.1, +1.4, +0.8; 0.35 0.0, 0.0, +0.2, +1.3. It never lowered a dataset's mean,
so "best" keeps it. A check from the training pictures alone
(`tlcore.training.second_phase`: a fifth held out, the new layer alone against
the blocks, the blocks kept for a gain of 2 points or more) did no better than
the new layer alone: over all runs 93.6 % against 93.2 % alone and 94.3 % always
with the blocks on 1.0 (12 runs, blocks kept in 5), 94.4 % against 94.5 % and
94.9 % on 0.35 (12 runs, kept in 2), at 0.4-0.8x the blocks' own time. On
50-110 held-out pictures a 1-2 point gain is one or two pictures, and the same
run with other dropout draws moves as much. The check is off by default (`TrainConfig.second_phase_check`); every
run says in words what its second phase did.

Pure functions: no Keras here, so the page can ask without loading TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlcore.errors import InputError

FAST, BEST, CUSTOM = "fast", "best", "custom"
PRESETS = (FAST, BEST)
DEFAULT_PRESET = BEST

# The "best" preset. Below FINE_TUNE_MIN_PICTURES training pictures (or fewer
# than FINE_TUNE_MIN_PER_CLASS per class) the top blocks would learn from too
# few pictures to do better than the new layer alone, so only that layer learns.
FINE_TUNE_MIN_PICTURES = 100
FINE_TUNE_MIN_PER_CLASS = 15
FINE_TUNE_BLOCKS = 2  # the top blocks that learn in the second phase (block_16 and the last convolution in MobileNetV2)
HEAD_EPOCHS = 15  # the new layer alone, on pooled features
FINE_TUNE_EPOCHS = 25  # then the top blocks too
# Budget: an epoch of the blocks costs about a quarter of a plain-recipe epoch per picture, so on large
# datasets (where the fixed start-up costs no longer dominate) 25 epochs would come near the plain
# recipe's 10. Above FULL_EPOCHS_UP_TO training pictures the blocks get proportionally fewer epochs
# (the same number of steps), never fewer than FINE_TUNE_MIN_EPOCHS.
FULL_EPOCHS_UP_TO = 1000
FINE_TUNE_MIN_EPOCHS = 10
FINE_TUNE_RATE_FACTOR = 0.3  # the blocks' learning rate is this times the new layer's
HEAD_LEARNING_RATE = 1e-3
AUGMENT = "none"  # measured: no augmentation preset helped on both photo datasets (see the module's docstring)

# The fields a preset chooses; every other field of TrainConfig is the user's.
PRESET_FIELDS = ("freeze", "two_phase", "head_epochs", "epochs", "learning_rate", "fine_tune_learning_rate", "augment",
                 "early_stopping_patience", "reduce_lr_patience", "second_phase_check")


@dataclass(frozen=True)
class PresetInfo:
    """A preset's name, its title in plain words, and what it is for."""

    name: str
    title: str
    purpose: str


PRESET_INFO = {
    BEST: PresetInfo(BEST, "Best quality (recommended)",
                     "the new last layer learns first, then the top blocks of the pretrained model too, gently; "
                     "takes longer; on our test pictures it usually scored a little higher than the quick check, not always"),
    FAST: PresetInfo(FAST, "Quick check", "only the new last layer learns; seconds, to see whether your pictures work at all"),
}


def preset_settings(preset: str, train_images: int, classes: int) -> dict:
    """The settings a preset chooses for a dataset of this size.

    Args:
        preset: "fast" or "best".
        train_images: pictures the run learns from (the validation ones not counted).
        classes: how many classes.

    Returns:
        A dict of `TrainConfig` fields (the names in `PRESET_FIELDS`).
    """
    if preset not in PRESETS:
        raise InputError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r} "
                         "('fast' for a quick check, 'best' for the best quality in the plain recipe's time).")
    # Both presets keep a fixed schedule: the validation pictures pick the best epoch and nothing else
    # (early stopping and halving the rate on a plateau would let them steer training). For the fast
    # preset that also scored higher: 92.2 % and 94.6 % against 91.1 % and 93.3 % with them.
    fast = {"freeze": "all", "two_phase": False, "head_epochs": 5, "epochs": 30, "learning_rate": HEAD_LEARNING_RATE,
            "fine_tune_learning_rate": 1e-5, "augment": "none", "early_stopping_patience": 0, "reduce_lr_patience": 0,
            "second_phase_check": False}
    if preset == FAST or not _enough_to_fine_tune(train_images, classes):
        return fast
    return {
        "freeze": f"top:{FINE_TUNE_BLOCKS}",
        "two_phase": True,
        "head_epochs": HEAD_EPOCHS,
        "epochs": HEAD_EPOCHS + fine_tune_epochs(train_images),
        "learning_rate": HEAD_LEARNING_RATE,
        "fine_tune_learning_rate": HEAD_LEARNING_RATE * FINE_TUNE_RATE_FACTOR,
        "augment": AUGMENT,
        "early_stopping_patience": 0,
        "reduce_lr_patience": 0,
        # No check on held-out training pictures before the blocks learn (`second_phase`): measured, it could
        # not tell where they help at these sizes and cost half the blocks' time (see the module's docstring).
        "second_phase_check": False,
    }


def fine_tune_epochs(train_images: int) -> int:
    """Epochs of the second phase: `FINE_TUNE_EPOCHS`, fewer above `FULL_EPOCHS_UP_TO` pictures (the budget)."""
    if train_images <= FULL_EPOCHS_UP_TO:
        return FINE_TUNE_EPOCHS
    return max(FINE_TUNE_MIN_EPOCHS, round(FINE_TUNE_EPOCHS * FULL_EPOCHS_UP_TO / train_images))


def _enough_to_fine_tune(train_images: int, classes: int) -> bool:
    return train_images >= FINE_TUNE_MIN_PICTURES and train_images >= FINE_TUNE_MIN_PER_CLASS * max(1, classes)


def apply_preset(config, preset: str, audit, explicit=()):
    """`config` with the preset's choices for every field not in `explicit`.

    Args:
        config: a `TrainConfig` holding the user's own settings.
        preset: "fast", "best", or "custom" (nothing chosen: `config` as it is).
        audit: the `DatasetAudit` of the run's pictures (how many it learns from, how many classes).
        explicit: names of fields the user set by hand; they keep `config`'s value.

    Returns:
        A new `TrainConfig` whose `preset` field names the preset.
    """
    if preset == CUSTOM:
        return config.replace(preset=CUSTOM)
    chosen = preset_settings(preset, len(audit.split_records("train")), len(audit.class_names))
    explicit = set(explicit)
    changes = {name: value for name, value in chosen.items() if name not in explicit}
    if "freeze" in explicit and config.freeze.strip() == "all":
        changes["two_phase"] = False  # nothing to fine-tune in a second phase
    if changes.get("two_phase", config.two_phase) and "epochs" in explicit:
        # The user's epochs are the whole run: the first phase keeps its share of them, at least one epoch each.
        if config.epochs < 2:
            changes["two_phase"] = False
        else:
            share = chosen["head_epochs"] / chosen["epochs"] if chosen["two_phase"] else HEAD_EPOCHS / (HEAD_EPOCHS + FINE_TUNE_EPOCHS)
            changes["head_epochs"] = min(config.epochs - 1, max(1, round(config.epochs * share)))
    return config.replace(preset=preset, **changes)


def describe_choice(config, block_names: list[str] | None = None) -> str:
    """What a config makes learn, in words: "block_16, top and the new layer learn; 40 epochs at most".

    Args:
        config: a `TrainConfig`.
        block_names: the backbone's block names in order (for "top:K"); read from
            the shipped block table when None.
    """
    from tlcore.model.blocks import block_table, parse_freeze

    names = block_names if block_names is not None else [row["name"] for row in block_table(config.backbone)]
    learning = [name for name in names if name in parse_freeze(config.freeze, names)]
    blocks = _blocks_in_words(learning, names)
    if not learning:
        parts = ["only the new layer learns"]
    elif len(learning) == len(names):
        parts = ["every block and the new layer learn"]
    else:
        parts = [f"{blocks} and the new layer learn"]
    if config.two_phase and learning:
        parts[0] = (f"the new layer learns alone for {config.head_epochs} epochs, then "
                    f"{blocks} learn too at learning rate {config.fine_tune_learning_rate:g}")
        if config.second_phase_check:
            parts[0] += (" if they help on a fifth of the training pictures held out for a check "
                         "(if not, the new layer goes on alone)")
    from tlcore.training.feature_cache import views_per_image

    views = views_per_image(config.augment)
    if config.augment == "flip":
        parts.append("each picture also mirrored")
    else:
        parts.append(f"{views} views per picture ({config.augment} augmentation)" if views > 1 else "no augmentation")
    stopping = "at most" if config.early_stopping_patience else "in all"
    parts.append(f"{config.epochs} epochs {stopping}")
    return "; ".join(parts)


def _blocks_in_words(learning: list[str], names: list[str]) -> str:
    """ "the top 2 blocks (block_16 and top)" when they are the top ones, else the names."""
    if learning and learning == names[len(names) - len(learning):] and len(learning) < len(names):
        count = len(learning)
        return f"the top {'block' if count == 1 else f'{count} blocks'} of the pretrained model ({_and_list(learning)})"
    return _and_list(learning) if learning else "no block"


def _and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
