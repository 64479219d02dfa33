"""A run's config as a preset makes it: the one place the app, `tlcore train` and the benchmarks build it.

The README promises that the app's Train page and `tlcore train` run the same
preset; so both hand this module what the user set by hand (the page's
widgets, the command's flags) and get back the same `TrainConfig` for the same
pictures. Everything not set by hand is chosen here:

- the pretrained network, when nobody picked one (`backbone_choice`: the
  strongest that is here and finishes within the time budget);
- the preset's schedule (`recipe.apply_preset`), perhaps shortened to fit the budget;
- balancing the classes, turned on when the audit finds some classes much smaller than others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tlcore.data.records import FindingKind
from tlcore.errors import InputError
from tlcore.training import backbone_choice, recipe
from tlcore.training.config import TrainConfig


@dataclass(frozen=True)
class PlannedRun:
    """The config a preset made, and what it said about it.

    Attributes:
        config: the run's `TrainConfig`.
        choice: how the preset chose the network; None when it was picked by hand (or no preset chose).
        notes: one line each, to show before the run (a stronger network that could not be used, ...).
    """

    config: TrainConfig
    choice: backbone_choice.BackboneChoice | None = None
    notes: tuple[str, ...] = ()


def build_config(
    data: str,
    preset: str,
    audit,
    given: dict | None = None,
    budget_s: float | None = None,
    speeds: dict | None = None,
    online: bool | Callable[[], bool] | None = None,
    allowed_downloads=(),
    measure: Callable[[str, int], float] | None = None,
) -> PlannedRun:
    """The config of a run of `preset` on `data`, with the user's own settings kept.

    Args:
        data: the dataset folder or zip.
        preset: "fast", "best", or "custom" (nothing chosen but the class balance).
        audit: the pictures' `DatasetAudit` (with the user's edits).
        given: `TrainConfig` fields the user set by hand (flags, widgets); each wins over the preset.
        budget_s, speeds, online, allowed_downloads, measure: for choosing the network; see
            `backbone_choice.choose_backbone`.

    Returns:
        A `PlannedRun`.

    Raises:
        InputError: a setting `TrainConfig` rejects, or an unknown preset.
    """
    given = dict(given or {})
    if "data" in given or "preset" in given:
        raise InputError("give the data and the preset as their own arguments, not among the settings set by hand.")
    if preset not in (*recipe.PRESETS, recipe.CUSTOM):
        raise InputError(f"preset must be one of {', '.join((*recipe.PRESETS, recipe.CUSTOM))}, got {preset!r}.")
    chosen = {"class_weights": audit.has_finding(FindingKind.CLASS_IMBALANCE)}
    base = TrainConfig(data=data, **{**chosen, **given})
    explicit = set(given)
    if preset == recipe.CUSTOM:
        return PlannedRun(base.replace(preset=recipe.CUSTOM))
    if "backbone" in given:  # picked by hand: it always wins
        return PlannedRun(recipe.apply_preset(base, preset, audit, explicit))
    choice = backbone_choice.choose_backbone(base, preset, audit, explicit, budget_s=budget_s, speeds=speeds,
                                             online=online, allowed_downloads=allowed_downloads, measure=measure)
    config = base.replace(backbone=choice.backbone, preset=preset, **choice.settings)
    return PlannedRun(config, choice, tuple(note for note in (choice.note,) if note))
