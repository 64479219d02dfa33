"""How long a run will take on this machine, before it starts and while it runs.

A run's time is a sum of parts, each measured on this machine's earlier runs
(their `status.json` and `metrics.jsonl`, kept under `$TLCORE_HOME`):

- set-up: from the run's start to its first feature pass (reading the
  pictures' list, building the model, decoding);
- each phase: a feature pass over its pictures (pictures per second), the
  first epoch's one-time tracing, then each epoch (seconds per training picture,
  measured separately for the new layer alone and for each choice of
  learning blocks, since those cost very differently);
- finishing: evaluating and saving after the last epoch;
- for a run from the command line, also starting Python and importing
  TensorFlow (the app's training process has done that before Start).

Before this machine has run anything, first guesses stand in; they were
measured on a 2-core laptop CPU with the default backbone (MobileNetV2 0.35 at
224 px) and are scaled for a bigger backbone by the square root of its extra
parameters and for larger pictures by their extra pixels. Pure Python: the
Train page asks without loading TensorFlow.
"""

from __future__ import annotations

import dataclasses
import pathlib
import statistics
from dataclasses import dataclass, field

from tlcore.model.backbones import get_backbone
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import record as run_record
from tlcore.training import speed_probe
from tlcore.training.feature_cache import views_per_image

# First guesses, before this machine has run anything (2-core laptop CPU, default backbone, 224 px):
GUESS_FEATURE_IMAGES_PER_S = 450.0  # pictures per second through the frozen part (batch normalization folded)
GUESS_REFERENCE_PARAMS = 410_208  # the default backbone's parameter count, which the rates were measured with
GUESS_HEAD_EPOCH_S_PER_IMAGE = 0.00005  # an epoch of the new layer alone on cached features, per training picture
GUESS_BLOCK_EPOCH_S_PER_IMAGE = 0.0003  # an epoch of the top two blocks and the new layer on cached activations, per picture
GUESS_EPOCH_OVERHEAD_S = 0.01  # per epoch whatever its size: callbacks, metrics and status files
GUESS_TRACE_S = 0.4  # a phase's first epoch traces its training and validation steps once (the new layer alone)
GUESS_BLOCK_TRACE_S = 0.8  # the same when blocks learn too: a bigger graph to trace
GUESS_SET_UP_S = 1.0  # from the run's start to its first feature pass
GUESS_FINISH_S = 0.4  # evaluating and saving after the last epoch
GUESS_START_S = 1.8  # starting Python and importing TensorFlow, for a run from the command line
GUESS_TRAINING_COST = 3.0  # a training step through the whole network costs about 3 forward passes
EARLIER_RUNS_READ = 10  # the most recent runs of the same backbone that the measurement reads
START_S_LIMIT = 60.0  # a longer "start" was a training process waiting ready (the app's spare), not an import
HEAD_KEY = "all"  # the measured epoch cost of the new layer alone
SLOWDOWN_LIMITS = (0.25, 50.0)  # how much faster or slower than the first guesses' laptop a computer is taken to be
# The plain tutorial recipe (`benchmarks/plain_recipe.py`: MobileNetV2 0.35 frozen inside `model.fit`, 10 epochs),
# the yardstick of the presets' time budget. Each epoch decodes every picture again and runs the backbone
# unfolded, PLAIN_PASS_COST times a feature pass's cost per picture; its first epoch traces the whole model.
PLAIN_BACKBONE = "mobilenetv2_035"
PLAIN_EPOCHS = 10
PLAIN_PASS_COST = 1.6
PLAIN_TRACE_S = 1.5


@dataclass(frozen=True)
class MachineSpeed:
    """What this machine measured for one backbone: None where it has not measured it yet.

    Attributes:
        images_per_s: the feature pass's pictures per second.
        epoch_s_per_image: steady epoch seconds per training picture, by what
            learns ("all": the new layer alone; else the freeze option, "top:2").
        trace_s: a phase's first epoch minus a steady one, by what learns (as `epoch_s_per_image`).
        set_up_s, finish_s, start_s: the fixed parts (see the module's docstring).
    """

    images_per_s: float | None = None
    epoch_s_per_image: dict = field(default_factory=dict)
    trace_s: dict = field(default_factory=dict)
    set_up_s: float | None = None
    finish_s: float | None = None
    start_s: float | None = None

    @property
    def measured(self) -> bool:
        return self.images_per_s is not None or bool(self.epoch_s_per_image)


@dataclass(frozen=True)
class PhaseEstimate:
    """One phase: what it learns ("all" or a freeze option), its feature pass and its epochs."""

    learns: str
    pass_images: int
    pass_s: float
    trace_s: float
    epochs: int
    per_epoch_s: float

    @property
    def total_s(self) -> float:
        return self.pass_s + self.trace_s + self.epochs * self.per_epoch_s


@dataclass(frozen=True)
class RunEstimate:
    """A run's expected time, in parts, and where the numbers come from.

    Attributes:
        getting_ready_s: set-up and the first feature pass (0 pass when every feature was kept).
        per_epoch_s: one epoch of the longest phase.
        total_s: from Start to the end, in the app (its training process is ready).
        start_s: what a command-line run adds before that (Python and the TensorFlow import).
        kept_images: pictures whose features an earlier run kept.
        measured: True when the speeds come from this machine's earlier runs.
        cached: True when the frozen part's features are computed once.
        phases: each phase's part.
        set_up_s, finish_s: the fixed parts.
    """

    getting_ready_s: float
    per_epoch_s: float
    total_s: float
    kept_images: int
    measured: bool
    cached: bool
    phases: tuple = ()
    set_up_s: float = 0.0
    finish_s: float = 0.0
    start_s: float = 0.0

    @property
    def command_line_total_s(self) -> float:
        """The whole process of `tlcore train`, from starting the command to its exit."""
        return self.start_s + self.total_s

    def describe(self) -> str:
        """The estimate in words, as the Train page shows it."""
        duration = run_history.format_duration
        source = "measured on this computer's earlier runs" if self.measured else "a first guess until your first run"
        if not self.cached:
            return f"Time: about {duration(self.total_s)} in all, about {duration(self.per_epoch_s)} per epoch ({source})."
        if self.kept_images and self.phases and self.phases[0].pass_s < 1:
            ready = f"features of {self.kept_images} pictures kept from an earlier run"
            return f"Time: about {duration(self.total_s)} in all; {ready} ({source})."
        return f"Time: about {duration(self.total_s)} in all ({source})."


def measured_speed(backbone: str, image_size: int | None = None) -> MachineSpeed:
    """This machine's measured speeds for `backbone` (and picture size), from its recent runs."""
    rates, set_ups, finishes, starts = [], [], [], []
    epoch_costs: dict[str, list[float]] = {}
    traces: dict[str, list[float]] = {}
    rows = [row for row in run_history.list_runs() if row.get("backbone") == backbone][:EARLIER_RUNS_READ]
    for row in rows:
        facts = _run_facts(pathlib.Path(row["run_dir"]))
        if facts is None or (image_size and facts["image_size"] and facts["image_size"] != image_size):
            continue
        rates += facts["rates"]
        set_ups += facts["set_up"]
        finishes += facts["finish"]
        starts += facts["start"]
        for learns, values in facts["epoch_costs"].items():
            epoch_costs.setdefault(learns, []).extend(values)
        for learns, values in facts["traces"].items():
            traces.setdefault(learns, []).extend(values)
    median = statistics.median
    if not rates:  # no run of it yet: a probe's figure on a handful of pictures, if one was taken (`speed_probe`)
        kept = speed_probe.kept_rate(backbone, image_size or get_backbone(backbone).input_size)
        rates = [kept] if kept else []
    return MachineSpeed(
        images_per_s=median(rates) if rates else None,
        epoch_s_per_image={learns: median(values) for learns, values in epoch_costs.items()},
        trace_s={learns: median(values) for learns, values in traces.items()},
        set_up_s=median(set_ups) if set_ups else None,
        finish_s=median(finishes) if finishes else None,
        start_s=median(starts) if starts else None,
    )


def _run_facts(run_dir: pathlib.Path) -> dict | None:
    """The figures one finished run measured; None for a run that cannot tell (unfinished, unreadable, older)."""
    try:
        return _read_run_facts(run_dir)
    except (KeyError, TypeError, ValueError, AttributeError):  # a run from an older tlcore, or a damaged file
        return None


def _read_run_facts(run_dir: pathlib.Path) -> dict | None:
    config = run_folder.read_json(run_dir / run_folder.CONFIG_FILE, {}) or {}
    status = run_folder.read_json(run_dir / run_folder.STATUS_FILE, {}) or {}
    train_images = len((run_folder.read_json(run_dir / run_folder.SPLIT_FILE, {}) or {}).get("train", []))
    if status.get("state") != "completed" or not train_images or not config:
        return None
    metrics = run_record.read_metrics(run_dir)
    passes = [m for m in metrics if m.get("type") == "feature_pass" and not m.get("reused") and m.get("seconds")]
    epochs = [m for m in metrics if m.get("type") == "epoch" and m.get("epoch_s") is not None]
    facts = {"image_size": config.get("image_size") or None, "rates": [], "traces": {}, "set_up": [], "finish": [],
             "start": [], "epoch_costs": {}}
    facts["rates"] = [m["images_per_s"] for m in passes if m.get("images", 0) >= 32 and m.get("images_per_s")]
    started, ended = status.get("started_at"), status.get("ended_at")
    if started and passes and passes[0].get("time"):
        facts["set_up"].append(max(0.0, passes[0]["time"] - passes[0]["seconds"] - started))
    if ended and epochs and epochs[-1].get("time"):
        facts["finish"].append(max(0.0, ended - epochs[-1]["time"]))
    if started and status.get("process_started_at") and 0 < started - status["process_started_at"] < START_S_LIMIT:
        facts["start"].append(started - status["process_started_at"])
    for phase, learns in _phase_learning(config).items():
        times = [m["epoch_s"] for m in epochs if m.get("phase") == phase and not m.get("partial")]
        if len(times) >= 2:
            steady = statistics.median(times[1:])
            facts["epoch_costs"].setdefault(learns, []).append(steady / train_images)
            facts["traces"].setdefault(learns, []).append(max(0.0, times[0] - steady))
    return facts


def _phase_learning(config: dict) -> dict[str, str]:
    """For each phase name a run's metrics use, what learned in it ("all" for the new layer alone)."""
    freeze = str(config.get("freeze", "all")).strip()
    if config.get("two_phase"):
        return {"head": HEAD_KEY, "fine_tune": freeze}
    return {"train": freeze if freeze != "all" else HEAD_KEY}


def guessed_images_per_s(backbone: str, image_size: int) -> float:
    """The first guess of the frozen pass's speed for a backbone and picture size."""
    return GUESS_FEATURE_IMAGES_PER_S / _cost_factor(backbone, image_size)


def _cost_factor(backbone: str, image_size: int) -> float:
    """How much more a picture costs than with the default backbone at 224 px (the guesses' yardstick)."""
    spec = get_backbone(backbone)
    return (spec.params / GUESS_REFERENCE_PARAMS) ** 0.5 * (image_size / 224) ** 2


def planned_phases(config) -> list[tuple[str, int]]:
    """(what learns, epochs) for each phase `config` plans: "all" is the new layer alone."""
    freeze = config.freeze.strip()
    if config.two_phase:
        return [(HEAD_KEY, config.head_epochs), (freeze, config.epochs - config.head_epochs)]
    return [(freeze if freeze != "all" else HEAD_KEY, config.epochs)]


def estimate_run(config, audit, kept_images: int = 0, speed: MachineSpeed | None = None,
                 cached: bool | None = None) -> RunEstimate:
    """Estimate how long a run of `config` on `audit`'s pictures takes on this machine.

    Args:
        config: the run's `TrainConfig`.
        audit: its `DatasetAudit`.
        kept_images: pictures whose features an earlier run kept (`kept_for_run`).
        speed: this machine's measured speed; read from its earlier runs when None.
        cached: whether the run caches features; by default when its feature
            cache is "auto" (a skip connection across the cut, or features too
            large, would make it train the plain way: the estimate is then low).

    Returns:
        A `RunEstimate`; `describe()` says it in words.
    """
    size = config.resolved_image_size
    speed = speed or measured_speed(config.backbone, size)
    slowdown = _slowdown(speed, config.backbone, size)
    cost = _cost_factor(config.backbone, size) * slowdown
    train_count, val_count = len(audit.split_records("train")), len(audit.split_records("val"))
    rate = speed.images_per_s or guessed_images_per_s(config.backbone, size)
    cached = config.feature_cache == "auto" if cached is None else cached
    set_up = speed.set_up_s if speed.set_up_s is not None else GUESS_SET_UP_S * slowdown
    finish = speed.finish_s if speed.finish_s is not None else GUESS_FINISH_S * slowdown
    start = speed.start_s if speed.start_s is not None else GUESS_START_S * slowdown
    phases = []
    for index, (learns, epochs) in enumerate(planned_phases(config)):
        trace = _trace(speed, learns, slowdown)
        if not cached:
            per_epoch = GUESS_TRAINING_COST * train_count / rate + val_count / rate + GUESS_EPOCH_OVERHEAD_S
            phases.append(PhaseEstimate(learns, 0, 0.0, trace, epochs, per_epoch))
            continue
        views = views_per_image(config.augment)
        kept = kept_images if index == 0 and views == 1 else 0
        pass_images = max(0, train_count * views + val_count - kept)
        guess = (GUESS_HEAD_EPOCH_S_PER_IMAGE if learns == HEAD_KEY else GUESS_BLOCK_EPOCH_S_PER_IMAGE) * cost
        per_image = speed.epoch_s_per_image.get(learns, guess)
        per_epoch = per_image * train_count + GUESS_EPOCH_OVERHEAD_S
        phases.append(PhaseEstimate(learns, pass_images, pass_images / rate, trace, epochs, per_epoch))
    if cached and config.two_phase and config.second_phase_check and len(phases) == 2:
        phases[1] = _after_the_check(phases[0], phases[1], train_count, speed)
    total = set_up + sum(phase.total_s for phase in phases) + finish
    ready = set_up + (phases[0].pass_s if phases else 0.0)
    per_epoch = max((phase.per_epoch_s for phase in phases), default=0.0)
    return RunEstimate(ready, per_epoch, total, kept_images, speed.measured, cached, tuple(phases), set_up, finish, start)


def _after_the_check(head: PhaseEstimate, blocks: PhaseEstimate, train_count: int, speed: MachineSpeed) -> PhaseEstimate:
    """The second phase with its check before it (`tlcore.training.second_phase`), counted in with its tracing.

    The check pools the training pictures' features through the blocks once (a
    forward pass, about a third of a training step), trains the new layer alone
    and the blocks briefly on four fifths of them, and traces both once more.
    When it drops the blocks, the epochs after it cost what the new layer's do:
    the estimate is then high.
    """
    from tlcore.training import second_phase

    learning = (1 - second_phase.HOLD_OUT) * train_count
    head_per_image = (head.per_epoch_s - GUESS_EPOCH_OVERHEAD_S) / max(1, train_count)
    block_per_image = (blocks.per_epoch_s - GUESS_EPOCH_OVERHEAD_S) / max(1, train_count)
    check_s = (block_per_image * train_count / GUESS_TRAINING_COST
               + (second_phase.HEAD_EPOCHS + second_phase.TRIAL_EPOCHS) * (head_per_image * learning + GUESS_EPOCH_OVERHEAD_S)
               + second_phase.TRIAL_EPOCHS * (block_per_image * learning + GUESS_EPOCH_OVERHEAD_S)
               + _trace(speed, head.learns) + _trace(speed, blocks.learns))
    return dataclasses.replace(blocks, trace_s=blocks.trace_s + check_s)


def plain_recipe_s(audit, speed: MachineSpeed | None = None) -> float:
    """How long the plain tutorial recipe takes on `audit`'s pictures on this computer, Python's start not counted.

    Args:
        audit: the pictures' `DatasetAudit` (its training and validation pictures).
        speed: this computer's measured speed for MobileNetV2 0.35 at 224 px; read from its runs when None.

    Returns:
        Seconds, in the terms of `RunEstimate.total_s` (so the two compare directly).
    """
    size = get_backbone(PLAIN_BACKBONE).input_size
    speed = speed or measured_speed(PLAIN_BACKBONE, size)
    rate = speed.images_per_s or guessed_images_per_s(PLAIN_BACKBONE, size)
    slowdown = _slowdown(speed, PLAIN_BACKBONE, size)
    pictures = len(audit.split_records("train")) + len(audit.split_records("val"))
    set_up = speed.set_up_s if speed.set_up_s is not None else GUESS_SET_UP_S * slowdown
    finish = speed.finish_s if speed.finish_s is not None else GUESS_FINISH_S * slowdown
    per_epoch = pictures * PLAIN_PASS_COST / rate + GUESS_EPOCH_OVERHEAD_S
    return set_up + PLAIN_TRACE_S * slowdown + PLAIN_EPOCHS * per_epoch + finish


def _trace(speed: MachineSpeed, learns: str, slowdown: float = 1.0) -> float:
    """A phase's one-time tracing: as measured for what learns in it, else the first guess for that kind of phase."""
    guess = (GUESS_TRACE_S if learns == HEAD_KEY else GUESS_BLOCK_TRACE_S) * slowdown
    return speed.trace_s.get(learns, guess)


def _slowdown(speed: MachineSpeed, backbone: str, image_size: int) -> float:
    """How many times slower this computer's measured feature pass is than the first guess for it (1 unmeasured).

    The first guesses of the other parts (epochs, tracing, set-up) were measured
    on one laptop; a computer measured to be slower (or busier) at the pass is
    taken to be as much slower at them, until its own runs measure them.
    """
    if not speed.images_per_s:
        return 1.0
    ratio = guessed_images_per_s(backbone, image_size) / speed.images_per_s
    return min(SLOWDOWN_LIMITS[1], max(SLOWDOWN_LIMITS[0], ratio))


def remaining_after(estimate: RunEstimate, phase_index: int, epochs_done_in_phase: int,
                    steady_epoch_s: float | None) -> float:
    """Seconds left once `epochs_done_in_phase` epochs of phase `phase_index` are done.

    The current phase's remaining epochs use `steady_epoch_s`, what this run
    measured for one epoch without the first epoch's tracing (the estimate's
    own figure until it has measured one); later phases and finishing use the
    estimate. A run's progress rows and status carry this as `eta_s`.
    """
    phases = estimate.phases
    if not phases:
        return 0.0
    current = phases[min(phase_index, len(phases) - 1)]
    per_epoch = steady_epoch_s if steady_epoch_s is not None else current.per_epoch_s
    left = max(0, current.epochs - epochs_done_in_phase) * per_epoch
    return left + sum(phase.total_s for phase in phases[phase_index + 1:]) + estimate.finish_s
