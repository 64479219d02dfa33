"""Which pretrained network a preset picks: the strongest one that is here and finishes within the time budget.

Measured on four datasets the project had never seen, the pretrained network
moved accuracy more than any other setting (MobileNetV2 at full width: up to
+8 points over width 0.35, in about the same time). A non-programmer cannot
know that, so the presets choose it:

1. The candidates are the backbones the table ranks for the presets
   (`BackboneSpec.preset_rank`, strongest first).
2. A candidate must have its ImageNet weights on this computer, or be fetched:
   by itself when the file is small (`AUTO_DOWNLOAD_MB`), else only once the
   user said yes to its size (`allowed_downloads`); with no internet, only what
   is here counts, and the choice says in one line when that cost it a
   stronger network.
3. Its whole run, estimated from this computer's measured speed for it
   (`estimate_run`), must fit the time budget. By default the budget is what the
   plain tutorial recipe takes on the small backbone for the same pictures
   (`plain_recipe_s`; the quick check gets `FAST_BUDGET_SHARE` of it), so a
   teacher never waits longer than the tutorial would make them wait. When the
   preset's run does not fit, its second phase gets fewer epochs (down to
   `FINE_TUNE_MIN_EPOCHS`), then only the new layer learns, before a weaker
   network is tried.
4. A candidate this computer has never measured is measured first, when the
   caller gives a way to (`measure`: seconds, on a handful of the user's
   pictures; `speed_probe`); otherwise it is estimated from first guesses.

A backbone picked by hand is never replaced: this module is asked only when
nobody picked one. Pure Python: the figures come in, no Keras here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from tlcore.errors import InputError
from tlcore.model import backbones
from tlcore.runs.history import format_duration
from tlcore.training import estimate as estimates
from tlcore.training import recipe

AUTO_DOWNLOAD_MB = 3.0  # weights this small (the small MobileNets) are fetched without asking; larger ones are offered
FAST_BUDGET_SHARE = 0.3  # the quick check's budget: this share of the plain recipe's time
FINE_TUNE_MIN_EPOCHS = 5  # a second phase shorter than this is not worth its feature pass: only the new layer learns
FINE_TUNE_STEP = 5  # the second phase is shortened by this many epochs at a time until the run fits


@dataclass(frozen=True)
class BackboneOption:
    """One candidate network, as the choice saw it.

    Attributes:
        name, title: the backbone.
        images_per_s: this computer's feature-pass speed for it (measured, or the first guess).
        measured: whether `images_per_s` was measured on this computer (a run, or a probe).
        weights_here: whether its ImageNet weights are on this computer.
        download_mb: about how large its weights file is.
        usable: its weights are here, or may be fetched (small, or the user said yes) with internet.
        estimate_s: the whole run's estimate with `settings`.
        settings: the preset's fields for it: those that fit the budget, else the preset's own.
        fits: whether its run (perhaps shortened) fits the budget.
        shortened: how the run was shortened to fit ("" when the preset's own run fits).
    """

    name: str
    title: str
    images_per_s: float
    measured: bool
    weights_here: bool
    download_mb: float
    usable: bool
    estimate_s: float
    settings: dict
    fits: bool
    shortened: str = ""


@dataclass(frozen=True)
class BackboneChoice:
    """The network a preset picked, and why, in words.

    Attributes:
        preset: the preset it was chosen for.
        backbone: the chosen backbone's name.
        settings: the preset's fields for it (as `preset_settings` returns, perhaps shortened to fit).
        budget_s: the time budget it was chosen within.
        budget_is_default: whether the budget is the default (the plain recipe's time) rather than the user's.
        options: every candidate, strongest first.
        reason: why this one, in words ("the strongest that finishes in about 40 s here").
        note: one line when a stronger network could not be used (no weights, no internet); else "".
        offer: a stronger network that fits but needs a download the user has not agreed to; else None.
    """

    preset: str
    backbone: str
    settings: dict
    budget_s: float
    budget_is_default: bool
    options: tuple[BackboneOption, ...]
    reason: str
    note: str = ""
    offer: BackboneOption | None = None

    def option(self, name: str) -> BackboneOption | None:
        return next((option for option in self.options if option.name == name), None)

    def describe(self) -> str:
        """The choice in one sentence, as the Model and Train pages and the CLI say it."""
        title = backbones.get_backbone(self.backbone).title
        return f"{title}: {self.reason}."


def candidates() -> list[backbones.BackboneSpec]:
    """The backbones the presets may pick, strongest first."""
    ranked = [spec for spec in backbones.BACKBONES.values() if spec.preset_rank is not None]
    return sorted(ranked, key=lambda spec: spec.preset_rank)


def default_budget_s(preset: str, audit, speed: estimates.MachineSpeed | None = None) -> float:
    """The preset's time budget when the user sets none: the plain recipe's time (the quick check: a share of it)."""
    plain = estimates.plain_recipe_s(audit, speed)
    return plain * (FAST_BUDGET_SHARE if preset == recipe.FAST else 1.0)


def choose_backbone(
    config,
    preset: str,
    audit,
    explicit=(),
    budget_s: float | None = None,
    speeds: dict | None = None,
    online: bool | Callable[[], bool] | None = None,
    allowed_downloads=(),
    measure: Callable[[str, int], float | None] | None = None,
) -> BackboneChoice:
    """Pick the strongest candidate network that can be used here and whose run fits the budget.

    Args:
        config: the user's `TrainConfig` (its backbone is ignored: nobody picked one).
        preset: "fast" or "best".
        audit: the pictures' `DatasetAudit`.
        explicit: fields the user set by hand (they keep `config`'s value, as in `apply_preset`).
        budget_s: the longest the run may take, in `RunEstimate.total_s` terms; the default budget when None.
        speeds: {backbone: MachineSpeed}, this computer's figures; what is missing is read from its runs and
            probes (or measured) and added to it, so a caller asking again reads nothing twice.
        online: whether weights can be downloaded (or a function that says, asked only when it matters);
            by default `backbones.weights_server_reachable`.
        allowed_downloads: backbones whose weights the user agreed to download, whatever their size.
        measure: `measure(backbone, image_size) -> pictures per second` (None when it could not tell),
            called for a usable candidate this computer has not measured yet (`speed_probe.prober`, which
            keeps the figure); without it, or when it cannot tell, first guesses stand in.

    Returns:
        A `BackboneChoice`.
    """
    if preset not in recipe.PRESETS:
        raise InputError(f"preset must be one of {', '.join(recipe.PRESETS)}, got {preset!r}.")
    if budget_s is not None and not budget_s > 0:
        raise InputError(f"the time budget must be a number of seconds above 0, got {budget_s!r} (e.g. 60).")
    speeds = speeds if speeds is not None else {}
    size = config.image_size or None
    default_budget = budget_s is None
    if default_budget:
        plain = backbones.get_backbone(estimates.PLAIN_BACKBONE)  # measured first: the budget is in its terms
        budget_s = default_budget_s(preset, audit, _speed(speeds, plain.name, plain.input_size, measure))
    ask_online = _online_asker(online, config)
    options = []
    for spec in candidates():
        option = _option(spec, config, preset, audit, set(explicit), budget_s, speeds, ask_online, allowed_downloads,
                          measure, size or spec.input_size)
        if option is not None:
            options.append(option)
    return _decide(preset, options, budget_s, default_budget, ask_online, allowed_downloads)


def _option(spec, config, preset, audit, explicit, budget_s, speeds, ask_online, allowed_downloads, measure, size):
    """A candidate as the choice sees it; None when the user's own settings do not fit it (block names)."""
    try:
        planned = recipe.apply_preset(config.replace(backbone=spec.name), preset, audit, explicit)
    except InputError:  # e.g. blocks picked by name that this network does not have
        return None
    here = config.weights == "none" or backbones.weights_available_offline(spec.name)
    usable = here or ((spec.download_mb <= AUTO_DOWNLOAD_MB or spec.name in allowed_downloads) and ask_online())
    speed = _speed(speeds, spec.name, size, measure if usable or ask_online() else None)
    rate = speed.images_per_s or estimates.guessed_images_per_s(spec.name, size)
    settings, fits, shortened, total = _fit(planned, audit, speed, budget_s, explicit)
    return BackboneOption(spec.name, spec.title, rate, speed.images_per_s is not None, here, spec.download_mb,
                          usable, total, settings, fits, shortened)


def _fit(planned, audit, speed, budget_s, explicit) -> tuple[dict, bool, str, float]:
    """(the preset's fields, whether they fit the budget, how they were shortened to fit, their estimate).

    The preset's own run first; then, if it has a second phase, that phase
    `FINE_TUNE_STEP` epochs shorter at a time (at least `FINE_TUNE_MIN_EPOCHS`);
    then only the new layer (the quick check's schedule). Settings the user
    made by hand are never shortened.
    """
    own = estimates.estimate_run(planned, audit, speed=speed).total_s
    if own <= budget_s:
        return _preset_fields(planned), True, "", own
    if planned.two_phase and "epochs" not in explicit:
        second = planned.epochs - planned.head_epochs
        for epochs in range(second - FINE_TUNE_STEP, FINE_TUNE_MIN_EPOCHS - 1, -FINE_TUNE_STEP):
            shorter = planned.replace(epochs=planned.head_epochs + epochs)
            total = estimates.estimate_run(shorter, audit, speed=speed).total_s
            if total <= budget_s:
                return _preset_fields(shorter), True, f"the top blocks learn for {epochs} epochs instead of {second}", total
    if planned.freeze.strip() != "all" and "freeze" not in explicit:
        head_only = recipe.apply_preset(planned, recipe.FAST, audit, explicit).replace(preset=planned.preset)
        total = estimates.estimate_run(head_only, audit, speed=speed).total_s
        if total <= budget_s:
            return _preset_fields(head_only), True, "only the new layer learns", total
    return _preset_fields(planned), False, "", own


def _preset_fields(config) -> dict:
    return {name: getattr(config, name) for name in recipe.PRESET_FIELDS}


def _decide(preset, options, budget_s, default_budget, ask_online, allowed_downloads) -> BackboneChoice:
    budget = format_duration(budget_s)
    fitting = [option for option in options if option.fits]
    usable = [option for option in fitting if option.usable]
    common = {"preset": preset, "budget_s": budget_s, "budget_is_default": default_budget, "options": tuple(options)}
    if usable:
        chosen = usable[0]
        stronger = fitting[: fitting.index(chosen)]
        reason = (f"the strongest that finishes in about {format_duration(chosen.estimate_s)} here"
                  + (f" ({chosen.shortened}, to stay within {budget})" if chosen.shortened else ""))
        return BackboneChoice(backbone=chosen.name, settings=chosen.settings, reason=reason,
                              note=_fallback_note(stronger, chosen, ask_online),
                              offer=_offer(stronger, ask_online, allowed_downloads), **common)
    here = [option for option in options if option.usable]
    if here:  # nothing fits the budget: the quickest run among the networks that can be used
        chosen = min(here, key=lambda option: option.estimate_s)
        return BackboneChoice(backbone=chosen.name, settings=chosen.settings, **common,
                              reason=f"no network finishes within {budget} here; this one is the quickest "
                                     f"(about {format_duration(chosen.estimate_s)})")
    fallback = backbones.get_backbone(estimates.PLAIN_BACKBONE)
    chosen = next((option for option in options if option.name == fallback.name), options[-1])
    # No network's weights are here and none can be fetched: the run will say which file to import.
    return BackboneChoice(backbone=chosen.name, settings=chosen.settings, **common,
                          reason="the default network (no network's weights are on this computer)")


def _fallback_note(stronger: list[BackboneOption], chosen: BackboneOption, ask_online) -> str:
    """One line when a stronger network that fits could not be used because its weights are missing and offline."""
    missing = [option for option in stronger if not option.weights_here and not ask_online()]
    if not missing:
        return ""
    best = missing[0]
    return (f"{best.title} would be stronger, but its weights are not on this computer and there is no internet to "
            f"fetch them: using {chosen.title}, the strongest that is here.")


def _offer(stronger: list[BackboneOption], ask_online, allowed_downloads) -> BackboneOption | None:
    """The strongest network that fits but waits for the user's yes to its download."""
    waiting = [option for option in stronger if not option.weights_here and option.name not in allowed_downloads
               and ask_online()]
    return waiting[0] if waiting else None


def _speed(speeds: dict, name: str, size: int, measure=None) -> estimates.MachineSpeed:
    """This computer's speed for a backbone: as read before, else from its runs and probes, else measured now."""
    if name not in speeds:
        speeds[name] = estimates.measured_speed(name, size)
    speed = speeds[name]
    if speed.images_per_s is None and measure is not None:
        rate = measure(name, size)
        if rate:
            speeds[name] = speed = dataclasses.replace(speed, images_per_s=rate)
    return speed


def _online_asker(online, config) -> Callable[[], bool]:
    """A function saying whether weights can be downloaded, asking the network at most once."""
    if config.weights == "none":
        return lambda: True  # nothing to download
    if isinstance(online, bool):
        return lambda: online
    ask = online or backbones.weights_server_reachable
    answer: list[bool] = []

    def asked() -> bool:
        if not answer:
            answer.append(bool(ask()))
        return answer[0]

    return asked
