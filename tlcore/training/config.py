"""`TrainConfig`: every choice of a training run, validated when it is made.

One flat, frozen dataclass: the app's widgets fill it, the CLI's flags fill it,
it is written to the run directory as `config.json`, and a resumed or repeated
run reads it back. Validation happens in `__post_init__`, so a bad value is
rejected with a readable message before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from tlcore.data.edits import DatasetEdits, relabel_pairs
from tlcore.errors import DamagedRunError, InputError
from tlcore.model.augmentation import AUGMENT_PRESETS
from tlcore.model.backbones import DEFAULT_BACKBONE, get_backbone, validate_image_size
from tlcore.model.blocks import block_table, parse_freeze

# Defaults were tuned on real photo datasets (flowers5, weather4); see README.
DEFAULT_EPOCHS = 30
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Args:
        data: a dataset folder (class folders, or train/ + val/ [+ test/]) or a .zip.
        backbone: backbone name (`tlcore backbones`).
        image_size: square input size in pixels; 0 means the backbone's native size.
        epochs: most epochs to train (early stopping may end sooner).
        batch_size: images per training step.
        learning_rate: Adam's learning rate for the first (or only) phase.
        freeze: "all" (train only the new head), "none", "top:K", or block names.
        augment: "none", "light" or "strong" random changes while training.
        dropout: dropout rate before the classifier.
        label_smoothing: softens the targets a little; helps with noisy labels.
        val_split: fraction of each class held out for validation (ignored
            when the data has its own val/ folder).
        seed: makes the split, the initialisation and the augmentation repeatable.
        early_stopping_patience: epochs without validation improvement before
            stopping; 0 turns early stopping off.
        reduce_lr_patience: epochs without improvement before halving the
            learning rate; 0 turns it off.
        class_weights: weight the loss by inverse class frequency (for imbalanced data).
        two_phase: first train the head with the backbone frozen, then unfreeze
            the blocks named by `freeze` and fine-tune at `fine_tune_learning_rate`.
        head_epochs: epochs of the first phase when `two_phase` is on.
        fine_tune_learning_rate: learning rate of the second phase.
        second_phase_check: before the second phase, check on a fifth of the
            training pictures held out whether the blocks learning too beats
            the new layer alone; if not, only the new layer goes on learning
            (`tlcore.training.second_phase`). The validation pictures play no part.
        feature_cache: "auto" computes frozen activations once when it is safe;
            "off" always pushes images through the whole network.
        weights: "imagenet" or "none" (random initialisation, mostly for tests).
        excluded_files: dataset files to leave out (paths relative to the data
            folder), as chosen in the audit; the user's files are never touched.
        preset: which preset chose the settings not set by hand: "fast", "best"
            or "custom" (none). A label for the run's record: the choosing is
            `tlcore.training.recipe.apply_preset`'s, before the config is made.
        relabels: (file, class) pairs (or a {file: class} dict): files used
            with another class than their folder's, as chosen in the audit or on
            the Evaluate page; the files stay where they are. With
            `excluded_files`, the run's `DatasetEdits` (`edits`).
    """

    data: str
    backbone: str = DEFAULT_BACKBONE
    image_size: int = 0
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    freeze: str = "all"
    augment: str = "none"
    dropout: float = 0.2
    label_smoothing: float = 0.1
    val_split: float = 0.2
    seed: int = 42
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 2
    class_weights: bool = False
    two_phase: bool = False
    head_epochs: int = 5
    fine_tune_learning_rate: float = 1e-5
    second_phase_check: bool = False
    feature_cache: str = "auto"
    weights: str = "imagenet"
    excluded_files: tuple[str, ...] = field(default_factory=tuple)
    relabels: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    preset: str = "custom"

    def __post_init__(self) -> None:
        excluded = self.excluded_files
        # One path given as a string must not become a tuple of its characters.
        object.__setattr__(self, "excluded_files", (excluded,) if isinstance(excluded, str) else tuple(excluded))
        object.__setattr__(self, "relabels", relabel_pairs(self.relabels))
        spec = get_backbone(self.backbone)
        if self.image_size:
            validate_image_size(spec, self.image_size)
        _check_int("epochs", self.epochs, 1, 10_000, "e.g. 10")
        _check_int("batch_size", self.batch_size, 1, 4096, "e.g. 32; lower it if you run out of memory")
        _check_positive("learning_rate", self.learning_rate, "e.g. 0.001")
        _check_positive("fine_tune_learning_rate", self.fine_tune_learning_rate, "e.g. 0.00001")
        _check_fraction("dropout", self.dropout, 0.0, 0.95)
        _check_fraction("label_smoothing", self.label_smoothing, 0.0, 0.5)
        _check_fraction("val_split", self.val_split, 0.05, 0.5)
        _check_int("seed", self.seed, 0, 2**31 - 1, "e.g. 42")
        _check_int("early_stopping_patience", self.early_stopping_patience, 0, 1000, "0 turns it off")
        _check_int("reduce_lr_patience", self.reduce_lr_patience, 0, 1000, "0 turns it off")
        _check_int("head_epochs", self.head_epochs, 1, 10_000, "e.g. 5")
        _check_choice("augment", self.augment, AUGMENT_PRESETS)
        _check_choice("feature_cache", self.feature_cache, ("auto", "off"))
        if not isinstance(self.second_phase_check, bool):
            raise InputError(f"second_phase_check must be true or false, got {self.second_phase_check!r}.")
        _check_choice("weights", self.weights, ("imagenet", "none"))
        _check_choice("preset", self.preset, ("fast", "best", "custom"))
        if not isinstance(self.freeze, str):
            raise InputError(f"freeze must be text such as 'all', 'none' or 'top:2', got {self.freeze!r}.")
        # Checked against the shipped block table: a typo fails here, not after the model is built.
        parse_freeze(self.freeze, [row["name"] for row in block_table(self.backbone)])
        if self.two_phase and self.freeze.strip() == "all":
            raise InputError(
                "two_phase is on but freeze is 'all', so there is nothing to fine-tune in phase two; "
                "set freeze to e.g. 'top:2', or turn two_phase off."
            )
        if self.two_phase and self.head_epochs >= self.epochs:
            raise InputError(
                f"two_phase needs epochs ({self.epochs}) larger than head_epochs ({self.head_epochs}); "
                "the epochs after head_epochs fine-tune the unfrozen blocks."
            )
        if not isinstance(self.data, str) or not self.data.strip():
            raise InputError("no data given; expected the path of a folder of class folders or a .zip file.")

    @property
    def resolved_image_size(self) -> int:
        """The image size actually used (the backbone's native size if 0)."""
        return self.image_size or get_backbone(self.backbone).input_size

    @property
    def edits(self) -> DatasetEdits:
        """The files this run leaves out or counts in another class."""
        return DatasetEdits(self.excluded_files, self.relabels)

    def with_edits(self, edits: DatasetEdits) -> "TrainConfig":
        """The same settings with these dataset edits instead of the current ones."""
        return self.replace(excluded_files=edits.excluded_files, relabels=edits.relabels)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["excluded_files"] = list(self.excluded_files)
        data["relabels"] = dict(self.relabels)  # {file: class}, as an edits file has them
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Build from a dict, rejecting unknown keys with the valid ones listed."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(known))}.")
        return cls(**data)

    @classmethod
    def from_run(cls, run_dir) -> "TrainConfig":
        """The config a run was started with, from its `config.json`.

        Raises:
            DamagedRunError: config.json cannot be read, or a setting in it is
                missing or not one tlcore accepts (the file was edited or damaged).
        """
        import pathlib

        from tlcore.runs.folder import CONFIG_FILE, run_config

        config = run_config(run_dir)
        try:
            return cls.from_dict(config)
        except (InputError, TypeError) as error:  # TypeError: a setting missing (`data`) or of an unusable type
            reason = " ".join(str(error).split())[:200]
            raise DamagedRunError(pathlib.Path(run_dir), CONFIG_FILE, f"has settings tlcore cannot use ({reason})") from None

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _check_int(name: str, value, low: int, high: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r} ({hint}).")


def _check_positive(name: str, value, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a number greater than 0, got {value!r} ({hint}).")


def _check_fraction(name: str, value, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InputError(f"{name} must be a number from {low} to {high}, got {value!r}.")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
